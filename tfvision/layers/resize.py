"""Bilinear resizing with aligned corners, as deeplab2 resizes features and predictions.

deeplab2 (`model/utils.py`: `resize_align_corners`, `resize_bilinear`,
`resize_and_rescale_offsets`) upsamples with `align_corners=True`: with the odd crop
sizes it trains on (641, 1025, 2049 = k * stride + 1) the corner pixels of every
feature map are exactly aligned with the input's corners. Offsets predicted on a coarse
grid are in that grid's pixel units, so they are multiplied by the resize ratio
(out - 1) / (in - 1) of each axis.
"""
import tensorflow as tf
import tf_keras


def resize_align_corners(images, size):
  """Bilinear resize of [B, H, W, C] `images` to `size` (h, w), corners aligned.

  Returns a tensor of the input's dtype (TensorFlow's kernel computes in float32).
  """
  dtype = images.dtype
  # tf.compat.v1.image.resize_bilinear(align_corners=True) without its deprecation
  # warning; TFLite's RESIZE_BILINEAR and XLA support aligned corners.
  resized = tf.raw_ops.ResizeBilinear(images=images, size=tf.cast(size, tf.int32),
                                      align_corners=True, half_pixel_centers=False)
  return tf.cast(resized, dtype)


def _spatial_size(tensor):
  """(h, w) as Python ints when static, else as scalar tensors."""
  static = tensor.shape[1:3]
  dynamic = tf.shape(tensor)[1:3]
  return tuple(static[i] if static[i] is not None else dynamic[i] for i in range(2))


def _is_same_static_size(source, target):
  return all(isinstance(s, int) and isinstance(t, int) and s == t
             for s, t in zip(source, target))


def rescale_offsets(offsets, source_size, target_size):
  """Scales (dy, dx) offsets from a source grid to a target grid (deeplab2 convention).

  Args:
    offsets: [B, h, w, 2] offsets in source-grid pixels, (y, x) order.
    source_size: (h, w) of the source grid.
    target_size: (H, W) of the target grid.
  """
  scales = []
  for source, target in zip(source_size, target_size):
    scales.append(tf.math.divide_no_nan(tf.cast(target, tf.float32) - 1.0,
                                        tf.cast(source, tf.float32) - 1.0))
  scale = tf.cast(tf.stack(scales), offsets.dtype)
  return offsets * scale


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ResizeToMatch(tf_keras.layers.Layer):
  """Resizes `inputs[0]` to the spatial size of `inputs[1]` (bilinear, corners aligned).

  Args:
    rescale_offsets: treat the two channels of `inputs[0]` as (dy, dx) offsets and
      multiply them by the resize ratio of each axis (deeplab2
      `resize_and_rescale_offsets`).
  Input: [x [B, h, w, C], reference [B, H, W, ...]]; output: [B, H, W, C].
  """

  def __init__(self, rescale_offsets=False, **kwargs):
    super().__init__(**kwargs)
    self.rescale_offsets = bool(rescale_offsets)

  def call(self, inputs):
    x, reference = inputs
    source_size = _spatial_size(x)
    target_size = _spatial_size(reference)
    if _is_same_static_size(source_size, target_size):
      return x
    if self.rescale_offsets:
      x = rescale_offsets(x, source_size, target_size)
    static = all(isinstance(v, int) for v in target_size)
    return resize_align_corners(x, target_size if static else tf.stack(target_size))

  def compute_output_shape(self, input_shape):
    x_shape, ref_shape = (tf.TensorShape(s) for s in input_shape)
    return tf.TensorShape([x_shape[0], ref_shape[1], ref_shape[2], x_shape[-1]])

  def get_config(self):
    config = super().get_config()
    config.update(rescale_offsets=self.rescale_offsets)
    return config
