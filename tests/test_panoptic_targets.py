"""Panoptic-DeepLab targets: centers, Gaussians, offsets, weights, batching, bad labels."""
import numpy as np
import pytest
import tensorflow as tf

from tests.panoptic_fixtures import TOY, toy_label
from tfvision.data.panoptic import (CITYSCAPES_PANOPTIC, COCO_PANOPTIC, synthetic_dataset_info,
                                    synthetic_panoptic_batch)
from tfvision.ops.panoptic_targets import TARGET_KEYS, gaussian_window, panoptic_targets


def _reference(label, info, sigma=8.0, small_area=4096, small_weight=3.0):
  """A per-instance loop over one [H, W] label map, written after deeplab2's generator."""
  divisor, ignore = info.label_divisor, info.ignore_label
  height, width = label.shape
  semantic = label // divisor
  center = np.zeros([height, width])
  offsets = np.zeros([height, width, 2])
  weights = np.where(semantic == ignore, 0.0, 1.0)
  things = np.isin(semantic, info.thing_classes)
  crowd = things & (label % divisor == 0)
  yy, xx = np.mgrid[0:height, 0:width]
  radius = int(round(3 * sigma + 1))
  for panoptic_id in np.unique(label):
    mask = label == panoptic_id
    if panoptic_id // divisor not in info.thing_classes or panoptic_id % divisor == 0:
      continue
    cy = int(np.round(yy[mask].mean()))   # numpy rounds half to even, like tf.round
    cx = int(np.round(xx[mask].mean()))
    gauss = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
    gauss[(np.abs(yy - cy) > radius) | (np.abs(xx - cx) > radius)] = 0
    center = np.maximum(center, gauss)
    offsets[mask] = np.stack([cy - yy[mask], cx - xx[mask]], -1)
    if mask.sum() < small_area:
      weights[mask] = small_weight
  return dict(semantic=semantic, semantic_weights=weights, center=center[..., None],
              center_weights=(~crowd & (semantic != ignore)).astype(float), offsets=offsets,
              offset_weights=(things & ~crowd).astype(float))


def _with_crowd_and_void(label, info):
  label = label.copy()
  label[:3, :5] = info.ignore_label * info.label_divisor          # void
  label[-6:, -6:] = info.thing_classes[0] * info.label_divisor    # crowd
  return label


def test_matches_a_per_instance_reference_on_synthetic_batches():
  info = synthetic_dataset_info(6)
  _, labels = synthetic_panoptic_batch(3, (45, 61), info, seed=4, max_things=4)
  labels = np.stack([_with_crowd_and_void(l, info) for l in labels])
  got = panoptic_targets(labels, **info.target_kwargs(), sigma=3.0, small_instance_area=150)
  for b in range(3):
    want = _reference(labels[b], info, sigma=3.0, small_area=150)
    for key in TARGET_KEYS:
      np.testing.assert_allclose(got[key].numpy()[b], want[key], atol=1e-6, err_msg=key)


def test_gaussian_is_deeplab2s_51_by_51_window_at_sigma_8():
  radius, window = gaussian_window(8)
  assert radius == 25 and window.shape == (51, 51) and window[25, 25] == 1.0
  label = np.zeros([80, 80], "int32")
  label[30:41, 30:41] = 2 * 1000 + 1        # center (35, 35)
  center = panoptic_targets(label, **TOY.target_kwargs())["center"].numpy()[..., 0]
  assert center[35, 35] == 1.0
  np.testing.assert_allclose(center[35, 38], np.exp(-9 / 128), rtol=1e-6)
  np.testing.assert_allclose(center[35, 60], np.exp(-625 / 128), rtol=1e-6)
  assert center[35, 61] == 0.0 and center[61, 35] == 0.0   # truncated past 25 pixels


def test_offsets_point_to_the_instance_center_and_weights_mark_instances():
  label = toy_label()
  targets = {k: v.numpy() for k, v in panoptic_targets(label, **TOY.target_kwargs()).items()}
  # Instance 1 of class 2: rows 8..23, cols 8..21 -> center (16, 14) (15.5, 14.5 rounded
  # half to even).
  assert targets["offsets"][8, 8].tolist() == [8.0, 6.0]
  assert targets["offsets"][23, 21].tolist() == [-7.0, -7.0]
  assert targets["center"][16, 14, 0] == 1.0
  assert np.all(targets["offsets"][label // 1000 < 2] == 0)
  assert np.all(targets["offset_weights"] == (label // 1000 >= 2))
  assert np.all(targets["center_weights"] == 1.0)
  # Instances below 4096 pixels weigh 3 in the semantic loss.
  assert np.all(targets["semantic_weights"][label // 1000 >= 2] == 3.0)
  assert np.all(targets["semantic_weights"][label // 1000 < 2] == 1.0)
  unweighted = panoptic_targets(label, **TOY.target_kwargs(), small_instance_area=100)
  assert unweighted["semantic_weights"].numpy()[10, 10] == 1.0   # 224 pixels >= 100


def test_crowd_and_void_are_masked():
  label = _with_crowd_and_void(toy_label(), TOY)
  targets = {k: v.numpy() for k, v in panoptic_targets(label, **TOY.target_kwargs()).items()}
  crowd = (slice(-6, None), slice(-6, None))
  assert np.all(targets["semantic"][crowd] == 2)          # crowd keeps its class
  assert np.all(targets["center_weights"][crowd] == 0)
  assert np.all(targets["offset_weights"][crowd] == 0)
  assert np.all(targets["offsets"][crowd] == 0)
  assert np.all(targets["semantic"][:3, :5] == 255)
  assert np.all(targets["semantic_weights"][:3, :5] == 0)
  assert np.all(targets["center_weights"][:3, :5] == 0)


def test_batched_input_equals_single_images_and_channel_axis_is_accepted():
  info = synthetic_dataset_info(5)
  _, labels = synthetic_panoptic_batch(3, 40, info, seed=2)
  batched = panoptic_targets(labels[..., None], **info.target_kwargs())
  for b in range(3):
    single = panoptic_targets(labels[b], **info.target_kwargs())
    for key in TARGET_KEYS:
      assert single[key].shape.rank == batched[key].shape.rank - 1
      np.testing.assert_array_equal(batched[key].numpy()[b], single[key].numpy())


def test_runs_in_a_tf_data_pipeline_and_asserts_on_bad_ids_there():
  info = CITYSCAPES_PANOPTIC
  labels = np.full([2, 32, 32], 7000, "int32")
  labels[:, 5:15, 5:15] = 11 * 1000 + 3
  dataset = tf.data.Dataset.from_tensor_slices(labels).map(
      lambda l: panoptic_targets(l, **info.target_kwargs()))
  element = next(iter(dataset))
  assert element["center"].shape == (32, 32, 1)
  assert float(tf.reduce_max(element["center"])) == 1.0
  bad = tf.data.Dataset.from_tensor_slices(labels + 30000).map(
      lambda l: panoptic_targets(l, **info.target_kwargs()))
  with pytest.raises(tf.errors.InvalidArgumentError, match="label divisor"):
    next(iter(bad))


@pytest.mark.parametrize("value", [26001, -1])
def test_label_ids_outside_the_divisor_scheme_raise_value_error(value):
  labels = np.full([8, 8], 1000, "int32")
  labels[2, 2] = value
  with pytest.raises(ValueError, match=f"label value {value}"):
    panoptic_targets(labels, **CITYSCAPES_PANOPTIC.target_kwargs())


def test_coco_layout_void_class_zero_is_ignored():
  labels = np.zeros([16, 16], "int32")            # all void (class 0)
  labels[4:8, 4:8] = 1 * 256 + 1                 # a COCO thing
  targets = panoptic_targets(labels, **COCO_PANOPTIC.target_kwargs())
  assert float(tf.reduce_sum(targets["semantic_weights"])) == 16 * 3.0


@pytest.mark.parametrize("kwargs, arg", [
    (dict(num_classes=0), "num_classes"), (dict(label_divisor=0), "label_divisor"),
    (dict(ignore_label=1000), "ignore_label"), (dict(thing_classes=[2, 4]), "thing_classes"),
    (dict(sigma=0), "sigma"), (dict(small_instance_weight=-1.0), "small_instance_weight"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, arg):
  args = dict(TOY.target_kwargs())
  args.update(kwargs)
  with pytest.raises(ValueError, match=arg):
    panoptic_targets(toy_label(), **args)


def test_rejects_float_labels_and_wrong_ranks():
  with pytest.raises(ValueError, match="integers"):
    panoptic_targets(np.zeros([4, 4], "float32"), **TOY.target_kwargs())
  with pytest.raises(ValueError, match="shape"):
    panoptic_targets(np.zeros([4], "int32"), **TOY.target_kwargs())
