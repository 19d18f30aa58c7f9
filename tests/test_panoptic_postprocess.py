"""Panoptic-DeepLab post-processing on hand-made label maps: grouping, voting, stuff, batching."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tests.panoptic_fixtures import TOY, perfect_predictions, same_segmentation, toy_label
from tfvision.evaluation.panoptic import PanopticEvaluator
from tfvision.ops.panoptic_postprocess import (PanopticDeepLabPostProcessor,
                                               find_instance_centers,
                                               panoptic_deeplab_postprocess)

VOID = TOY.ignore_label * TOY.label_divisor


def _run(logits, heat, offsets, **overrides):
  kwargs = TOY.postprocess_kwargs()
  kwargs.update(overrides)
  out = panoptic_deeplab_postprocess(logits, heat, offsets, **kwargs)
  return {key: value.numpy() for key, value in out.items()}


def test_perfect_predictions_give_pq_one():
  label = toy_label()[None]
  out = _run(*perfect_predictions(label))
  assert same_segmentation(out["panoptic"], label)
  evaluator = PanopticEvaluator(TOY)
  evaluator.update(label, out["panoptic"], out["semantic"])
  result = evaluator.result()
  for key in ("pq", "sq", "rq", "pq_things", "pq_stuff"):
    assert result[key] == 1.0, (key, result)
  assert result["miou"] == 1.0


@pytest.mark.parametrize("use_offsets", [True, False])
def test_touching_instances_of_one_class_are_separated_by_their_centers(use_offsets):
  label = toy_label()[None]
  logits, heat, offsets = perfect_predictions(label)
  if not use_offsets:
    offsets = np.zeros_like(offsets)  # nearest center by position alone
  out = _run(logits, heat, offsets)
  panoptic = out["panoptic"][0]
  left, right = panoptic[8:24, 8:22], panoptic[8:24, 22:37]
  assert len(np.unique(left)) == 1 and len(np.unique(right)) == 1
  assert left[0, 0] != right[0, 0]
  assert left[0, 0] // 1000 == right[0, 0] // 1000 == 2
  # The semantic map alone cannot separate them: one connected class-2 region.
  assert np.all(out["semantic"][0, 8:24, 8:37] == 2)


def test_stuff_below_the_area_threshold_becomes_void():
  semantic = np.zeros([32, 32], "int64")
  semantic[4:7, 4:7] = 1      # 9 pixels of stuff class 1
  logits = 5.0 * np.eye(4, dtype="float32")[semantic][None]
  heat = np.zeros([1, 32, 32, 1], "float32")
  offsets = np.zeros([1, 32, 32, 2], "float32")
  small = _run(logits, heat, offsets, stuff_area_limit=10)["panoptic"][0]
  assert np.all(small[4:7, 4:7] == VOID)
  assert np.all(small[semantic == 0] == 0)
  kept = _run(logits, heat, offsets, stuff_area_limit=9)["panoptic"][0]
  assert np.all(kept[4:7, 4:7] == 1000)


def test_thing_pixels_without_any_center_are_void():
  semantic = np.zeros([16, 16], "int64")
  semantic[2:6, 2:6] = 3
  logits = 5.0 * np.eye(4, dtype="float32")[semantic][None]
  heat = np.full([1, 16, 16, 1], 0.05, "float32")   # below the 0.1 threshold
  out = _run(logits, heat, np.zeros([1, 16, 16, 2], "float32"), stuff_area_limit=0)
  assert np.all(out["panoptic"][0, 2:6, 2:6] == VOID)
  assert np.all(out["instance"][0] == 0)


def test_instance_class_is_the_majority_vote_and_ids_count_per_class():
  semantic = np.zeros([24, 24], "int64")
  semantic[2:10, 2:10] = 2
  semantic[2:10, 8:10] = 3          # 16 of 64 pixels of instance A say class 3
  semantic[14:20, 2:8] = 2          # instance B, class 2
  semantic[14:20, 14:20] = 3        # instance C, class 3
  logits = 5.0 * np.eye(4, dtype="float32")[semantic][None]
  heat = np.zeros([1, 24, 24, 1], "float32")
  heat[0, 5, 5], heat[0, 17, 4], heat[0, 17, 17] = 0.9, 0.8, 0.7
  offsets = np.zeros([1, 24, 24, 2], "float32")
  panoptic = _run(logits, heat, offsets, stuff_area_limit=0, nms_kernel=3)["panoptic"][0]
  assert np.all(panoptic[2:10, 2:10] == 2001)    # highest score: first class-2 id
  assert np.all(panoptic[14:20, 2:8] == 2002)
  assert np.all(panoptic[14:20, 14:20] == 3001)  # class 3 numbering starts again


def test_nms_kernel_and_top_k_limit_the_centers():
  heat = np.zeros([1, 20, 20, 1], "float32")
  heat[0, 5, 5], heat[0, 5, 7], heat[0, 15, 15], heat[0, 2, 15] = 0.9, 0.8, 0.7, 0.6
  scores, coords, valid = find_instance_centers(heat, 0.1, nms_kernel=3, keep_k_centers=10)
  assert valid.numpy().sum() == 4
  scores, coords, valid = find_instance_centers(heat, 0.1, nms_kernel=5, keep_k_centers=10)
  assert valid.numpy().sum() == 3      # (5, 7) lies within 2 pixels of the stronger (5, 5)
  scores, coords, valid = find_instance_centers(heat, 0.1, nms_kernel=5, keep_k_centers=2)
  np.testing.assert_allclose(scores.numpy()[0], [0.9, 0.7])
  assert coords.numpy()[0].tolist() == [[5, 5], [15, 15]]
  _, _, valid = find_instance_centers(heat, 0.75, nms_kernel=1, keep_k_centers=10)
  assert valid.numpy().sum() == 2


def _random_inputs(batch, seed, size=(33, 47), classes=4):
  rng = np.random.RandomState(seed)
  logits = rng.normal(0, 2, (batch, size[0], size[1], classes)).astype("float32")
  yy, xx = np.mgrid[0:size[0], 0:size[1]]
  heat = np.zeros((batch, size[0], size[1], 1), "float32")
  for b in range(batch):
    for _ in range(rng.randint(2, 6)):
      cy, cx = rng.uniform(0, size[0]), rng.uniform(0, size[1])
      heat[b, ..., 0] = np.maximum(heat[b, ..., 0], rng.uniform(0.2, 1) * np.exp(
          -((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0))
  offsets = rng.normal(0, 4, (batch, size[0], size[1], 2)).astype("float32")
  return logits, heat, offsets


def test_batch_of_four_equals_four_calls_of_batch_one():
  logits, heat, offsets = _random_inputs(4, seed=3)
  heat[2] = 0.0                        # one image without centers
  batched = _run(logits, heat, offsets, stuff_area_limit=40)
  assert len(np.unique(batched["instance"])) > 3
  for b in range(4):
    single = _run(logits[b:b + 1], heat[b:b + 1], offsets[b:b + 1], stuff_area_limit=40)
    for key in batched:
      np.testing.assert_array_equal(batched[key][b:b + 1], single[key], err_msg=key)


@pytest.mark.parametrize("batch", [1, 3])
def test_runs_under_xla_with_the_same_results(batch):
  logits, heat, offsets = _random_inputs(batch, seed=batch)
  kwargs = TOY.postprocess_kwargs()
  compiled = tf.function(lambda a, b, c: panoptic_deeplab_postprocess(a, b, c, **kwargs),
                         jit_compile=True)
  got = compiled(logits, heat, offsets)
  want = _run(logits, heat, offsets)
  for key in want:
    np.testing.assert_array_equal(got[key].numpy(), want[key], err_msg=key)


def test_layer_matches_function_and_round_trips_its_config():
  layer = PanopticDeepLabPostProcessor(**TOY.postprocess_kwargs())
  config = json.loads(json.dumps(layer.get_config()))
  clone = PanopticDeepLabPostProcessor.from_config(config)
  logits, heat, offsets = _random_inputs(2, seed=5)
  out = clone(dict(semantic_logits=logits, center_heatmap=heat, offsets=offsets))
  want = _run(logits, heat, offsets)
  for key in want:
    np.testing.assert_array_equal(out[key].numpy(), want[key])
  assert out["panoptic"].dtype == tf.int32


@pytest.mark.parametrize("overrides, arg", [
    (dict(keep_k_centers=1000), "keep_k_centers"), (dict(nms_kernel=0), "nms_kernel"),
    (dict(center_threshold=-0.1), "center_threshold"), (dict(label_divisor=0), "label_divisor"),
    (dict(stuff_area_limit=-1), "stuff_area_limit"), (dict(thing_classes=[2, 9]),
                                                      "thing_classes"),
])
def test_bad_arguments_raise_value_errors_naming_them(overrides, arg):
  kwargs = TOY.postprocess_kwargs()
  kwargs.update(overrides)
  logits, heat, offsets = _random_inputs(1, seed=0)
  with pytest.raises(ValueError, match=arg):
    panoptic_deeplab_postprocess(logits, heat, offsets, **kwargs)


def test_converts_to_tflite_builtins_with_the_same_panoptic_map():
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  kwargs = TOY.postprocess_kwargs()
  inputs = _random_inputs(1, seed=3)
  function = tf.function(
      lambda a, b, c: panoptic_deeplab_postprocess(a, b, c, **kwargs)["panoptic"],
      input_signature=[tf.TensorSpec(x.shape, tf.float32) for x in inputs])
  module = tf.Module()
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [function.get_concrete_function()], module)
  interpreter = Interpreter(model_content=converter.convert())
  interpreter.allocate_tensors()
  for detail in interpreter.get_input_details():   # shapes are distinct: match by shape
    interpreter.set_tensor(detail["index"], next(x for x in inputs
                                                 if x.shape == tuple(detail["shape"])))
  interpreter.invoke()
  got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  np.testing.assert_array_equal(got, function(*inputs).numpy())
