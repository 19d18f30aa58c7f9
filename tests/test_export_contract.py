"""The export output contract: task inference, raw outputs, input sizes, panoptic
post-processing (no model builds)."""
import numpy as np
import pytest
import tensorflow as tf

from tfvision import export
from tfvision.data.panoptic import CITYSCAPES_PANOPTIC
from tfvision.export import contract, serving
from tfvision.ops.panoptic_postprocess import PanopticDeepLabPostProcessor


def test_infer_task_from_output_structure():
  assert contract.infer_task(tf.TensorSpec([None, 10])) == "classification"
  assert contract.infer_task(tf.TensorSpec([None, 8, 8, 5])) == "semantic"
  assert contract.infer_task({"logits": tf.zeros([1, 3])}) == "classification"
  assert contract.infer_task({"semantic_logits": 0, "aux": 0}) == "semantic"
  assert contract.infer_task({"semantic_logits": 0, "center_heatmap": 0,
                              "offsets": 0}) == "panoptic"
  with pytest.raises(ValueError, match="keys=\\['boxes'\\]"):
    contract.infer_task({"boxes": 0})
  with pytest.raises(ValueError, match="shape="):
    contract.infer_task(tf.TensorSpec([None, 4, 4]))


def test_raw_outputs_normalise_and_check():
  raw = contract.raw_outputs(tf.zeros([2, 5], tf.bfloat16), "classification")
  assert list(raw) == ["logits"] and raw["logits"].dtype == tf.float32
  panoptic = contract.raw_outputs({"semantic_logits": tf.zeros([1, 4, 4, 3]),
                                   "center_heatmap": tf.zeros([1, 4, 4]),
                                   "offsets": tf.zeros([1, 4, 4, 2]), "extra": 1}, "panoptic")
  assert sorted(panoptic) == ["center_heatmap", "offsets", "semantic_logits"]
  assert panoptic["center_heatmap"].shape == (1, 4, 4, 1)
  with pytest.raises(ValueError, match="missing \\['offsets'\\]"):
    contract.raw_outputs({"semantic_logits": tf.zeros([1, 4, 4, 3]),
                          "center_heatmap": tf.zeros([1, 4, 4, 1])}, "panoptic")
  with pytest.raises(ValueError, match="single tensor"):
    contract.raw_outputs(tf.zeros([1, 4, 4, 3]), "panoptic")
  with pytest.raises(ValueError, match="offsets shape"):
    contract.raw_outputs({"semantic_logits": tf.zeros([1, 4, 4, 3]),
                          "center_heatmap": tf.zeros([1, 4, 4, 1]),
                          "offsets": tf.zeros([1, 4, 4, 3])}, "panoptic")
  with pytest.raises(ValueError, match="semantic_logits must have rank 4"):
    contract.raw_outputs({"semantic_logits": tf.zeros([1, 3])}, "semantic")


def test_input_sizes_and_signature_names():
  assert contract.normalize_input_size(None) is None
  assert contract.normalize_input_size(64) == (64, 64)
  assert contract.normalize_input_size((48, np.int64(80))) == (48, 80)
  for bad in (0, -3, True, (64,), (64, 0), (1, 2, 3), 64.0):
    with pytest.raises(ValueError, match="input_size="):
      contract.normalize_input_size(bad)
  assert contract.check_task(None) is None
  with pytest.raises(ValueError, match="task='depth'"):
    contract.check_task("depth")
  assert serving.check_signatures("image_bytes") == ("image_bytes",)
  with pytest.raises(ValueError, match="signatures=\\[\\]"):
    serving.check_signatures([])


def test_restore_pads_mixed_sizes_and_rescales_offsets():
  """Dense outputs: per-image resize to the original size (corners aligned, as the
  models upsample), offsets rescaled by (out - 1) / (in - 1) into the new pixels."""
  raw = {"semantic_logits": tf.random.normal([2, 4, 4, 3], seed=1),
         "center_heatmap": tf.ones([2, 4, 4, 1]),
         "offsets": tf.ones([2, 4, 4, 2])}
  calls = []

  def postprocess(outputs):
    calls.append({k: v.shape.as_list() for k, v in outputs.items()})
    semantic = tf.argmax(outputs["semantic_logits"], -1, output_type=tf.int32)
    return {"semantic": semantic, "instance": tf.zeros_like(semantic),
            "panoptic": semantic * 256}

  spec = serving.ServingSpec("panoptic", None, num_classes=3)
  computation = serving.ServingComputation(lambda _: raw, spec, postprocess)
  outputs = computation.run(None, tf.constant([[8, 12], [4, 6]]))
  assert outputs["semantic_map"].shape == (2, 8, 12)
  np.testing.assert_array_equal(outputs["image_size"].numpy(), [[8, 12], [4, 6]])
  offsets = outputs["offsets"].numpy()
  np.testing.assert_allclose(offsets[0, :, :, 0], 7 / 3, rtol=1e-6)   # 4 -> 8 rows
  np.testing.assert_allclose(offsets[0, :, :, 1], 11 / 3, rtol=1e-6)  # 4 -> 12 columns
  np.testing.assert_allclose(offsets[1, :4, :6, 0], 1.0, rtol=1e-6)   # 4 -> 4 rows
  np.testing.assert_allclose(offsets[1, :4, :6, 1], 5 / 3, rtol=1e-6)  # 4 -> 6 columns
  assert (offsets[1, 4:] == 0).all() and (outputs["semantic_map"].numpy()[1, :, 6:] == -1).all()
  assert outputs["center_heatmap"].shape == (2, 8, 12)
  assert calls[0]["semantic_logits"][0] == 1  # post-processing sees one image at a time

  def broken(outputs):
    return {"semantic": tf.argmax(outputs["semantic_logits"], -1)}
  with pytest.raises(ValueError, match="missing \\['instance', 'panoptic'\\]"):
    serving.ServingComputation(lambda _: raw, spec, broken).run(None, tf.constant([[4, 4]] * 2))


def test_default_panoptic_postprocessing_is_panoptic_inferences():
  """No post-processing of the exporter's own: PanopticInference's, with dataset settings."""
  fn, settings = serving.resolve_postprocess(None, "panoptic", dataset="shapes",
                                             num_classes=6)
  assert isinstance(fn, PanopticDeepLabPostProcessor)
  assert settings == export.shapes_panoptic_info().postprocess_kwargs()
  rebuilt = serving.postprocess_from_settings(settings).get_config()
  assert {**rebuilt, "name": ""} == {**fn.get_config(), "name": ""}
  cityscapes, settings = serving.resolve_postprocess(None, "panoptic", num_classes=19)
  assert settings == CITYSCAPES_PANOPTIC.postprocess_kwargs()
  assert serving.resolve_postprocess(None, "panoptic", num_classes=134)[1]["label_divisor"] \
      == 256
  assert serving.resolve_postprocess(None, "semantic", num_classes=6) == (None, None)

  def custom(outputs):
    return outputs
  assert serving.resolve_postprocess(None, "panoptic", custom, num_classes=6) == (custom, None)
  with pytest.raises(ValueError, match="dataset=None"):
    serving.resolve_postprocess(None, "panoptic", num_classes=6)
  with pytest.raises(ValueError, match="dataset='kitti'"):
    serving.resolve_postprocess(None, "panoptic", dataset="kitti", num_classes=6)
  with pytest.raises(ValueError, match="has 134, received dataset='coco'"):
    serving.resolve_postprocess(None, "panoptic", dataset="coco", num_classes=19)
  with pytest.raises(ValueError, match="postprocess_fn='shapes'"):
    serving.resolve_postprocess(None, "panoptic", "shapes", num_classes=6)
  # The restored raw outputs go through it unchanged: semantic, instance, panoptic maps.
  raw = {"semantic_logits": tf.one_hot(tf.fill([1, 16, 16], 4), 6) * 5.0,
         "center_heatmap": tf.pad(tf.ones([1, 1, 1, 1]), [[0, 0], [7, 8], [7, 8], [0, 0]]),
         "offsets": tf.zeros([1, 16, 16, 2])}
  spec = serving.ServingSpec("panoptic", None, num_classes=6)
  outputs = serving.ServingComputation(lambda _: raw, spec, fn).run(
      None, tf.constant([[16, 16]]))
  assert outputs["semantic_map"].shape == (1, 16, 16)
  assert set(np.unique(outputs["instance_map"].numpy())) == {1}   # one centre, all thing
  assert set(np.unique(outputs["panoptic_map"].numpy())) == {4 * 256 + 1}
