"""Panoptic-DeepLab training targets from panoptic label maps (pure TF, batched).

From `semantic * label_divisor + instance` labels this builds what deeplab2's
`data/sample_generator.py` (`PanopticSampleGenerator`) builds, vectorised over
instances and images instead of a Python loop over instance ids:

- "semantic" [B, H, W] int32: the semantic label (crowd pixels keep their class; void
  pixels keep `ignore_label`).
- "semantic_weights" [B, H, W]: 1, `small_instance_weight` (3) on instances smaller than
  `small_instance_area` (4096) pixels, 0 on ignored pixels.
- "center" [B, H, W, 1]: per instance a Gaussian of standard deviation `sigma` (8)
  centred at the rounded mean of its pixel coordinates, truncated to a
  (2r + 1) x (2r + 1) window with r = round(3 sigma + 1) (deeplab2's 51 x 51 at
  sigma 8), combined by maximum.
- "center_weights" [B, H, W]: 1 on pixels that are neither crowd nor ignored.
- "offsets" [B, H, W, 2]: (center_y - y, center_x - x) on instance pixels, 0 elsewhere.
- "offset_weights" [B, H, W]: 1 on non-crowd thing pixels.

Instance centers use `tf.round` (round half to even), as deeplab2. A thing pixel with
instance 0 is a crowd region: it keeps its semantic label but has no center and no
offset, and is masked out of the center and offset losses.
"""
import numpy as np
import tensorflow as tf

from tfvision.data.panoptic import check_label_scheme
from tfvision.utils import validation

TARGET_KEYS = ("semantic", "semantic_weights", "center", "center_weights", "offsets",
               "offset_weights")


def _check_label_values(labels, semantic, num_classes, ignore_label, label_divisor):
  """ValueError (eagerly) or a failing assertion (in a graph) on ids outside the scheme."""
  bad = (labels < 0) | ((semantic >= num_classes) & (semantic != ignore_label))
  if tf.executing_eagerly():
    bad_values = tf.boolean_mask(labels, bad).numpy()
    if bad_values.size:
      value = int(bad_values[0])
      raise ValueError(
          f"panoptic labels must be semantic * label_divisor + instance with semantic in "
          f"[0, num_classes={num_classes}) or ignore_label={ignore_label} and "
          f"label_divisor={label_divisor}; received a label value {value!r} "
          f"(semantic {value // label_divisor}) in panoptic_labels")
    return []
  return [tf.debugging.assert_equal(
      tf.reduce_any(bad), False,
      message=(f"panoptic_labels hold ids outside the label divisor scheme "
               f"(num_classes={num_classes}, ignore_label={ignore_label}, "
               f"label_divisor={label_divisor})"))]


def gaussian_window(sigma):
  """(radius, [2r + 1, 2r + 1] float32 Gaussian with peak 1 at the centre)."""
  radius = int(round(3 * sigma + 1))
  grid = np.arange(-radius, radius + 1, dtype="float64")
  window = np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2.0 * sigma ** 2))
  return radius, window.astype("float32")


def panoptic_targets(panoptic_labels, num_classes, thing_classes, label_divisor,
                     ignore_label, sigma=8.0, small_instance_area=4096,
                     small_instance_weight=3.0):
  """Builds the Panoptic-DeepLab targets of one label map or a batch of them.

  Args:
    panoptic_labels: int [H, W], [B, H, W] or [B, H, W, 1].
    num_classes: semantic classes.
    thing_classes: ids of the classes with instances.
    label_divisor: panoptic id = semantic * label_divisor + instance.
    ignore_label: semantic id of void pixels.
    sigma: standard deviation of the center Gaussian (Panoptic-DeepLab: 8).
    small_instance_area: instances with fewer pixels get `small_instance_weight`.
    small_instance_weight: semantic loss weight of small instances (deeplab2: 3).

  Returns:
    A dict with the TARGET_KEYS (see the module docstring), batched like the input.

  Raises:
    ValueError: bad arguments, or (eagerly) label ids outside the scheme. Inside a
      graph (e.g. `tf.data.Dataset.map`) bad ids fail a `tf.debugging` assertion.
  """
  things = check_label_scheme(num_classes, thing_classes, ignore_label, label_divisor)
  validation.check_positive("sigma", sigma)
  validation.check_non_negative("small_instance_area", small_instance_area)
  validation.check_non_negative("small_instance_weight", small_instance_weight)
  labels = tf.convert_to_tensor(panoptic_labels)
  if not labels.dtype.is_integer:
    raise ValueError(f"panoptic_labels must be integers, received dtype={labels.dtype!r}")
  if labels.shape.rank == 4 and labels.shape[-1] == 1:
    labels = tf.squeeze(labels, axis=-1)
  if labels.shape.rank not in (2, 3):
    raise ValueError(f"panoptic_labels must be [H, W], [B, H, W] or [B, H, W, 1], "
                     f"received shape {tuple(labels.shape)!r}")
  unbatched = labels.shape.rank == 2
  if unbatched:
    labels = labels[tf.newaxis]
  labels = tf.cast(labels, tf.int32)

  semantic = labels // label_divisor
  instance = labels % label_divisor
  checks = _check_label_values(labels, semantic, num_classes, ignore_label, label_divisor)
  with tf.control_dependencies(checks):
    semantic = tf.identity(semantic)

  table = np.zeros([num_classes], dtype=bool)
  table[things] = True
  in_range = semantic < num_classes
  is_thing = tf.gather(tf.constant(table), tf.where(in_range, semantic, 0)) & in_range
  is_ignored = tf.equal(semantic, ignore_label)
  is_thing &= ~is_ignored
  is_crowd = is_thing & tf.equal(instance, 0)
  is_instance = is_thing & (instance > 0)

  shape = tf.shape(labels)
  batch, height, width = shape[0], shape[1], shape[2]
  ys = tf.broadcast_to(tf.range(height)[None, :, None], shape)
  xs = tf.broadcast_to(tf.range(width)[None, None, :], shape)
  bs = tf.broadcast_to(tf.range(batch)[:, None, None], shape)

  # One segment per (image, panoptic id) of an instance; everything else in bucket -1.
  stride = tf.cast(tf.reduce_max(labels) + 1, tf.int64)
  keys = tf.where(is_instance, tf.cast(bs, tf.int64) * stride + tf.cast(labels, tf.int64),
                  tf.constant(-1, tf.int64))
  unique_keys, segment = tf.unique(tf.reshape(keys, [-1]))
  num_segments = tf.size(unique_keys)
  ones = tf.ones_like(segment, tf.float32)
  area = tf.math.unsorted_segment_sum(ones, segment, num_segments)
  mean_y = tf.math.unsorted_segment_sum(
      tf.cast(tf.reshape(ys, [-1]), tf.float32), segment, num_segments) / area
  mean_x = tf.math.unsorted_segment_sum(
      tf.cast(tf.reshape(xs, [-1]), tf.float32), segment, num_segments) / area
  center_y = tf.cast(tf.round(mean_y), tf.int32)
  center_x = tf.cast(tf.round(mean_x), tf.int32)

  pixel_area = tf.reshape(tf.gather(area, segment), shape)
  offset_y = tf.reshape(tf.gather(center_y, segment), shape) - ys
  offset_x = tf.reshape(tf.gather(center_x, segment), shape) - xs
  offsets = tf.cast(tf.stack([offset_y, offset_x], axis=-1), tf.float32)
  offsets *= tf.cast(is_instance, tf.float32)[..., None]

  semantic_weights = tf.where(is_instance & (pixel_area < float(small_instance_area)),
                              float(small_instance_weight), 1.0)
  semantic_weights = tf.where(is_ignored, 0.0, semantic_weights)
  center_weights = tf.cast(~is_crowd & ~is_ignored, tf.float32)
  offset_weights = tf.cast(is_instance, tf.float32)

  center = _center_heatmap(unique_keys, stride, center_y, center_x, batch, height, width,
                           sigma)
  targets = dict(semantic=semantic, semantic_weights=semantic_weights, center=center,
                 center_weights=center_weights, offsets=offsets,
                 offset_weights=offset_weights)
  if unbatched:
    targets = {key: value[0] for key, value in targets.items()}
  return targets


def _center_heatmap(unique_keys, stride, center_y, center_x, batch, height, width, sigma):
  """Max of truncated Gaussians at the instance centers, [B, H, W, 1]."""
  radius, window = gaussian_window(sigma)
  size = 2 * radius + 1
  valid = unique_keys >= 0
  images = tf.cast(tf.boolean_mask(unique_keys, valid) // stride, tf.int32)
  cy = tf.boolean_mask(center_y, valid)
  cx = tf.boolean_mask(center_x, valid)
  grid_y, grid_x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
  # Canvas padded by `radius` on every side: the window of a center at (cy, cx) starts
  # at (cy, cx) in padded coordinates.
  rows = cy[:, None] + tf.constant(grid_y.reshape(1, -1), tf.int32)
  cols = cx[:, None] + tf.constant(grid_x.reshape(1, -1), tf.int32)
  image_index = tf.broadcast_to(images[:, None], tf.shape(rows))
  indices = tf.reshape(tf.stack([image_index, rows, cols], axis=-1), [-1, 3])
  updates = tf.reshape(tf.broadcast_to(tf.constant(window.reshape(1, -1)), tf.shape(rows)),
                       [-1])
  canvas = tf.zeros(tf.stack([batch, height + 2 * radius, width + 2 * radius]), tf.float32)
  canvas = tf.tensor_scatter_nd_max(canvas, indices, updates)
  return canvas[:, radius:radius + height, radius:radius + width, tf.newaxis]
