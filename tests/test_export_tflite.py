"""TFLite export: the four quantizations, LiteRT parity, the ops report, representative data."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from PIL import Image

from tests import export_models
from tfvision import export
from tfvision.export import tflite as tflite_lib
from tfvision.models import get_preset

NAME = "swidernet_0.25_0.25_0.75"
SIZE = 64


@pytest.fixture(scope="module")
def images():
  return export.load_images("shapes", 8, (SIZE, SIZE))


@pytest.fixture(scope="module")
def classifier():
  tf_keras.utils.set_random_seed(5)
  return get_preset(NAME).build_tiny(num_classes=3)


def _write_calibration_folder(folder, size):
  """Shapes train images as RGB, grayscale and RGBA PNGs, plus a file that is no image."""
  folder.mkdir()
  for index, image in enumerate(export.load_images("shapes", 12, size, split="train")):
    mode, array = (("L", image.mean(-1).astype("uint8")) if index % 3 == 1 else
                   ("RGBA", np.concatenate([image, np.full(image.shape[:2] + (1,), 128,
                                                           "uint8")], -1))
                   if index % 3 == 2 else ("RGB", image))
    Image.fromarray(array, mode).save(folder / f"{index:02d}.png")
  (folder / "notes.txt").write_text("not an image")
  return str(folder)


@pytest.fixture(scope="module")
def converted(classifier, tmp_path_factory):
  """The classifier in every quantization (written to files).

  The one int8 conversion of the tests (they are slow): calibrated on a folder of
  mixed-mode images, with integer input / output.
  """
  directory = tmp_path_factory.mktemp("tflite")
  folder = _write_calibration_folder(directory / "calibration", (48, 80))
  results = {}
  for quantization in export.QUANTIZATIONS:
    int8 = quantization == "int8"
    results[quantization] = export.export_tflite(
        classifier, str(directory / f"{quantization}.tflite"), input_size=SIZE,
        quantization=quantization, representative_data=folder if int8 else None,
        integer_io=int8)
  return results


def test_float32_matches_keras_within_1e4(classifier, converted, images):
  result = converted["float32"]
  assert os.path.getsize(result.path) == len(result.flatbuffer) == result.ops_report.size_bytes
  report = export.verify_tflite(result.path, classifier, images)
  assert report.task == "classification" and report.num_images == len(images)
  assert report.max_abs_error["logits"] <= 1e-4, report.format()
  assert report.agreement["top1"] == 1.0
  ops = result.ops_report
  assert ops.inputs == [{"name": "image", "shape": [1, SIZE, SIZE, 3], "type": "FLOAT32"}]
  assert ops.outputs == [{"name": "logits", "shape": [1, 3], "type": "FLOAT32"}]
  assert ops.ops["CONV_2D"] > 10 and ops.custom_ops == []
  assert "CONV_2D" in ops.format()


def test_quantized_sizes_types_and_errors(classifier, converted, images):
  float_size = converted["float32"].ops_report.size_bytes
  assert converted["float16"].ops_report.size_bytes < 0.6 * float_size
  assert converted["dynamic"].ops_report.size_bytes < 0.35 * float_size
  assert converted["int8"].ops_report.size_bytes < 0.35 * float_size
  # float16 keeps float32 compute on dequantized weights: error near float16 precision.
  fp16 = export.verify_tflite(converted["float16"].flatbuffer, classifier, images)
  logit_range = float(np.ptp(classifier(images.astype("float32")).numpy()))
  assert fp16.max_abs_error["logits"] <= 5e-3 * max(1.0, logit_range), fp16.format()
  # Full-integer int8 with integer I/O: every op runs on integer tensors, uint8 pixels
  # in, int8 logits out (run_tflite quantizes / dequantizes with their parameters).
  int8 = converted["int8"].ops_report
  assert int8.float_ops == [], int8.format()
  assert int8.op_types["CONV_2D"] == ["INT8"]
  assert int8.inputs == [{"name": "image", "shape": [1, SIZE, SIZE, 3], "type": "UINT8"}]
  assert int8.outputs == [{"name": "logits", "shape": [1, 3], "type": "INT8"}]
  for quantization in ("dynamic", "int8"):
    report = export.verify_tflite(converted[quantization].flatbuffer, classifier, images)
    # Random-weight logits: only their scale is meaningful (see BENCHMARKS.md for top-1
    # agreement measured on trained models).
    assert report.max_abs_error["logits"] <= 0.15 * logit_range, report.format()


def test_semantic_float32_and_dynamic_range():
  model = export_models.tiny_semantic()
  images = export.load_images("shapes", 4, (48, 64))
  for quantization in ("float32", "dynamic"):
    result = export.export_tflite(model, None, input_size=(48, 64), quantization=quantization)
    assert result.path is None and result.task == "semantic"
    ops = result.ops_report
    assert ops.inputs[0]["shape"] == [1, 48, 64, 3] and ops.custom_ops == []
    assert ops.outputs[0]["name"] == "semantic_logits"
    assert ops.outputs[0]["shape"] == [1, 48, 64, export_models.NUM_CLASSES]
    report = export.verify_tflite(result.flatbuffer, model, images)
    if quantization == "float32":
      assert report.failures(max_abs_error=1e-4) == [], report.format()
      assert report.agreement["semantic_map"] >= 0.999
    else:
      scale = report.reference_scale["semantic_logits"]
      assert report.max_abs_error["semantic_logits"] <= 0.2 * scale, report.format()
  with pytest.raises(ValueError, match="takes 48x64 images"):
    export.run_tflite(result.flatbuffer, export.load_images("shapes", 1, (SIZE, SIZE)))


def test_panoptic_float32_parity_with_postprocessing():
  model = export_models.tiny_panoptic()
  result = export.export_tflite(model, None, input_size=SIZE)
  assert {o["name"] for o in result.ops_report.outputs} == {
      "semantic_logits", "center_heatmap", "offsets"}
  assert result.ops_report.custom_ops == []
  images = export.load_images("shapes", 4, (SIZE, SIZE))
  report = export.verify_tflite(result.flatbuffer, model, images, dataset="shapes")
  assert report.failures(max_abs_error=1e-4) == [], report.format()
  for key in ("semantic_map", "instance_map", "panoptic_map"):
    assert report.agreement[key] >= 0.999, report.format()
  maps = export.run_tflite(result.flatbuffer, images[:1])
  assert maps["center_heatmap"].max() > 0.1  # centres found: instance maps are compared
  # Without a label scheme (6 classes match no built-in one) only raw outputs compare.
  assert "panoptic_map" not in export.verify_tflite(result.flatbuffer, model, images[:1]).agreement


def test_load_images_sources(tmp_path):
  shapes = export.load_images("shapes", 3, (40, 56))
  assert shapes.shape == (3, 40, 56, 3) and shapes.dtype == np.uint8
  np.testing.assert_array_equal(shapes, export.load_images("shapes", 3, (40, 56)))
  train = export.load_images("shapes", 3, (40, 56), split="train")
  assert not np.array_equal(train, shapes)  # calibration and verification never overlap
  examples = export.shapes_examples(2, (40, 56))
  assert examples["semantic"].shape == (2, 40, 56) and examples["label"].shape == (2,)
  gray = (np.arange(30 * 20) % 251).reshape(30, 20).astype("uint8")
  buffer = io.BytesIO()
  Image.fromarray(gray, "L").save(buffer, "JPEG", quality=100)
  (tmp_path / "b.jpg").write_bytes(buffer.getvalue())
  Image.fromarray(gray, "L").save(tmp_path / "a.png")
  loaded = export.load_images(str(tmp_path), None, (30, 20))
  assert loaded.shape == (2, 30, 20, 3)
  np.testing.assert_array_equal(loaded[0], np.repeat(gray[..., None], 3, -1))  # a.png first
  from_array = export.load_images(np.repeat(gray[None, ..., None], 3, -1).astype("float32"),
                                  None, (15, 10))
  assert from_array.shape == (1, 15, 10, 3)


def test_bad_arguments_name_the_argument(classifier, tmp_path):
  with pytest.raises(ValueError, match="quantization='int4'"):
    export.export_tflite(classifier, input_size=SIZE, quantization="int4")
  with pytest.raises(ValueError, match="representative_data=None"):
    export.export_tflite(classifier, input_size=SIZE, quantization="int8")
  with pytest.raises(ValueError, match="integer_io"):
    export.export_tflite(classifier, input_size=SIZE, integer_io=True)
  with pytest.raises(ValueError, match="input_size=None"):
    export.export_tflite(classifier)
  with pytest.raises(ValueError, match="cannot take input_size=40"):
    export.export_tflite(export_models.fixed_size_classifier(32), input_size=40)
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(ValueError, match="representative_data="):
    export.export_tflite(classifier, input_size=SIZE, quantization="int8",
                         representative_data=str(empty))
  with pytest.raises(ValueError, match="representative_data='no/such/folder'"):
    export.export_tflite(classifier, input_size=SIZE, quantization="int8",
                         representative_data="no/such/folder")
  (empty / "broken.png").write_bytes(b"\x89PNG broken")
  with pytest.raises(ValueError, match="cannot decode broken.png"):
    export.export_tflite(classifier, input_size=SIZE, quantization="int8",
                         representative_data=str(empty))
  with pytest.raises(ValueError, match="images must be"):
    export.export_tflite(classifier, input_size=SIZE, quantization="int8",
                         representative_data=np.zeros((2, SIZE, SIZE)))
  with pytest.raises(ValueError, match="count=0"):
    export.load_images("shapes", 0, (SIZE, SIZE))
  assert tf.io.gfile.listdir(str(tmp_path)) == ["empty"]  # nothing written on errors


def _dead_unit_classifier():
  """A classifier with an SE-like bottleneck whose ReLU units are dead on every input.

  The bottleneck conv's bias of -100 keeps its output at 0, so its calibrated range
  collapses: the case of BoTNet-T3's tiny 2-channel SE after the parity sweep's fit.
  """
  tf_keras.utils.set_random_seed(2)
  images = tf_keras.Input([32, 32, 3], name="image")
  x = tf_keras.layers.Conv2D(8, 3, strides=2, activation="relu")(images / 255.0)
  pooled = tf_keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
  dead = tf_keras.layers.Conv2D(
      2, 1, activation="relu", bias_initializer=tf_keras.initializers.Constant(-100.0))(pooled)
  gate = tf_keras.layers.Conv2D(8, 1, activation="sigmoid")(dead)
  x = tf_keras.layers.GlobalAveragePooling2D()(x * gate)
  return tf_keras.Model(images, tf_keras.layers.Dense(3)(x))


def test_int8_widens_collapsed_ranges_so_xnnpack_runs_it():
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  model = _dead_unit_classifier()
  calibration = export.load_images("shapes", 16, (32, 32), split="train")
  # The converter alone: the dead conv's output scale collapses, its requantization
  # scale passes XNNPACK's limit of 256 and the delegate refuses the model.
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = tflite_lib.representative_dataset(calibration)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  plain = converter.convert()
  collapsed = tflite_lib.collapsed_outputs(plain)
  assert len(collapsed) == 1 and all(v > 0 for v in collapsed.values()), collapsed
  with pytest.raises(RuntimeError, match="XNNPACK"):
    Interpreter(model_content=plain, num_threads=2).allocate_tensors()
  # export_tflite widens that range and quantizes again: XNNPACK takes it, every op is
  # still integer, and the outputs match Keras to int8 precision.
  result = export.export_tflite(model, None, quantization="int8",
                                representative_data=calibration)
  assert tflite_lib.collapsed_outputs(result.flatbuffer) == {}
  assert result.ops_report.float_ops == [], result.ops_report.format()
  images = export.load_images("shapes", 8, (32, 32))
  report = export.verify_tflite(result.flatbuffer, model, images)
  logit_range = float(np.ptp(model(images.astype("float32")).numpy()))
  assert report.max_abs_error["logits"] <= 0.05 * max(1.0, logit_range), report.format()


def _layer_norm_classifier():
  """Conv -> LayerNorm -> pooled logits: LayerNorm's int8 pieces fall outside XNNPACK."""
  tf_keras.utils.set_random_seed(3)
  images = tf_keras.Input([16, 16, 3], name="image")
  x = tf_keras.layers.Conv2D(8, 3, padding="same", activation="relu")(images / 255.0)
  x = tf_keras.layers.LayerNormalization()(x)
  x = tf_keras.layers.GlobalAveragePooling2D()(x)
  return tf_keras.Model(images, tf_keras.layers.Dense(3)(x))


@pytest.fixture(scope="module")
def layer_norm_int8():
  model = _layer_norm_classifier()
  calibration = export.load_images("shapes", 8, (16, 16), split="train")
  plain = export.export_tflite(model, None, quantization="int8",
                               representative_data=calibration)
  kept = export.export_tflite(model, None, quantization="int8",
                              representative_data=calibration,
                              keep_float_ops=["SQUARED_DIFFERENCE", "RSQRT"])
  return model, calibration, plain, kept


def test_ops_report_says_which_ops_run_int8_float_and_outside_xnnpack(layer_norm_int8):
  _, _, plain, _ = layer_norm_int8
  ops = plain.ops_report
  # Every compute op is int8; LiteRT's XNNPACK has no int8 SQUARED_DIFFERENCE or RSQRT,
  # so those run on the builtin kernels (the delegation is read from an interpreter).
  assert ops.float_ops == [] and "CONV_2D" in ops.int8_ops
  assert ops.kinds["CONV_2D"] == {"int8": 1}
  assert ops.outside_xnnpack["SQUARED_DIFFERENCE"] == 1
  assert ops.outside_xnnpack["RSQRT"] == 1
  assert ops.outside_xnnpack.get("CONV_2D", 0) == 0
  assert ops.outside_xnnpack.get("FULLY_CONNECTED", 0) == 0
  delegated = tflite_lib.xnnpack_delegated(plain.flatbuffer)
  assert len(delegated) == sum(ops.ops.values())
  assert sum(not d for d in delegated) == sum(ops.outside_xnnpack.values())
  text = ops.format()
  assert "outside XNNPACK" in text and "RSQRT" in text.split("outside XNNPACK:")[-1]


def test_keep_float_ops_keeps_those_op_types_in_float(layer_norm_int8, images):
  model, _, plain, kept = layer_norm_int8
  ops = kept.ops_report
  assert ops.float_ops == ["RSQRT", "SQUARED_DIFFERENCE"], ops.format()
  assert "CONV_2D" in ops.int8_ops and "RSQRT" not in ops.int8_ops
  # Float SQUARED_DIFFERENCE and RSQRT run in XNNPACK; dequantize / quantize around them.
  assert ops.outside_xnnpack.get("RSQRT", 0) == 0
  assert ops.outside_xnnpack.get("SQUARED_DIFFERENCE", 0) == 0
  assert ops.ops["DEQUANTIZE"] > plain.ops_report.ops["DEQUANTIZE"]
  small = export.load_images("shapes", 8, (16, 16))
  logit_range = float(np.ptp(model(small.astype("float32")).numpy()))
  for result in (plain, kept):
    report = export.verify_tflite(result.flatbuffer, model, small)
    assert report.max_abs_error["logits"] <= 0.1 * max(1.0, logit_range), report.format()


def test_keep_float_ops_bad_input(layer_norm_int8):
  model, calibration, _, _ = layer_norm_int8
  # An op type the model does not have: the error lists the op types it has.
  with pytest.raises(ValueError, match=r"SOFTMAX.*\['ADD', 'CONV_2D'.*'RSQRT'"):
    export.export_tflite(model, None, quantization="int8", representative_data=calibration,
                         keep_float_ops=["SOFTMAX"])
  with pytest.raises(ValueError, match="keep_float_ops needs quantization='int8'"):
    export.export_tflite(model, None, keep_float_ops=["RSQRT"])
  with pytest.raises(ValueError, match="received keep_float_ops='RSQRT'"):
    export.export_tflite(model, None, quantization="int8", representative_data=calibration,
                         keep_float_ops="RSQRT")


def test_op_profile_times_every_op_alone(layer_norm_int8):
  from tfvision.export import profile  # pylint: disable=import-outside-toplevel
  _, _, plain, _ = layer_norm_int8
  ops = profile.op_profile(plain.flatbuffer, num_threads=1, runs=2, warmup=1)
  report = plain.ops_report
  assert len(ops) == sum(report.ops.values())
  assert all(op.ms >= 0 for op in ops)
  # Each op cut out on its own is delegated exactly as in the whole model.
  assert [op.xnnpack for op in ops] == tflite_lib.xnnpack_delegated(plain.flatbuffer)
  assert {op.op for op in ops} == set(report.ops)
  assert "SQUARED_DIFFERENCE" in profile.format_profile(ops)


def test_keep_float_ops_auto_keeps_what_xnnpack_cannot_run_in_int8(layer_norm_int8):
  model, calibration, plain, _ = layer_norm_int8
  assert tflite_lib.mostly_outside_xnnpack(plain.ops_report) == [
      "RSQRT", "SQUARED_DIFFERENCE", "SUB"]
  auto = export.export_tflite(model, None, quantization="int8",
                              representative_data=calibration, keep_float_ops="auto")
  ops = auto.ops_report
  assert ops.float_ops == ["RSQRT", "SQUARED_DIFFERENCE", "SUB"], ops.format()
  # XNNPACK now runs every op.
  assert sum(ops.outside_xnnpack.values()) == 0, ops.format()
  assert sum(plain.ops_report.outside_xnnpack.values()) >= 3
