"""Stochastic depth (DropPath) and DropBlock.

DropPath: Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016. One Bernoulli
draw per sample scales the whole residual branch; survivors are divided by the keep
probability so the expectation is unchanged (deeplab2 `drop_path.py`, timm `drop_path`).

DropBlock: Ghiasi, Lin, Le, "DropBlock: A regularization method for convolutional
networks", NeurIPS 2018, Algorithm 1: block centres are sampled with rate gamma inside
the region where a whole block fits, expanded to block_size x block_size squares,
and the kept activations are renormalised by the kept fraction.
"""
import math

import tensorflow as tf
import tf_keras

from tfvision.layers import recompute
from tfvision.utils import validation

_SCHEDULES = ("constant", "linear")


def drop_path_rate_for_stride(drop_path_rate, schedule, stride, beyond_stride=4,
                              final_stride=32):
  """Drop-path rate of a block working at `stride` (deeplab2's schedule by stride).

  deeplab2 (`drop_path.get_drop_path_keep_prob`) numbers the stages by
  log2(stride) - 1 (stride 4 -> 1, ..., stride 32 -> 4) and either uses the same keep
  probability everywhere ("constant") or ramps it linearly from 1 at the stem to
  1 - drop_path_rate at the last stage ("linear"). Blocks below `beyond_stride` get 0.

  Args:
    drop_path_rate: drop probability of the last stage, in [0, 1).
    schedule: "constant" or "linear".
    stride: the (original, undilated) stride at which the block's input lives.
    beyond_stride: blocks at strides below this get no drop path.
    final_stride: the stride of the last stage (its stage number is the ramp's end).
  """
  validation.check_probability("drop_path_rate", drop_path_rate)
  validation.check_in("drop_path_schedule", schedule, _SCHEDULES)
  if stride < beyond_stride or drop_path_rate == 0:
    return 0.0
  if schedule == "constant":
    return float(drop_path_rate)
  num_stages = math.log2(final_stride) - 1
  stage = round(math.log2(stride) - 1)
  return float(drop_path_rate) * stage / num_stages


def linear_drop_path_rates(drop_path_rate, num_blocks):
  """Per-block rates rising linearly from 0 to `drop_path_rate` over `num_blocks` blocks.

  The ramp of Swin / CvT / Pale (`torch.linspace(0, rate, depth)`).
  """
  validation.check_probability("drop_path_rate", drop_path_rate)
  validation.check_non_negative("num_blocks", num_blocks, integer=True)
  if num_blocks <= 1:
    return [0.0] * num_blocks
  return [drop_path_rate * i / (num_blocks - 1) for i in range(num_blocks)]


@tf_keras.utils.register_keras_serializable(package="tfvision")
class DropPath(tf_keras.layers.Layer):
  """Stochastic depth on a residual branch: per-sample keep mask / keep probability.

  Args:
    rate: drop probability in [0, 1). Identity when 0 or at inference.
  Input: [B, ...] residual-branch output; output: same shape.
  """

  def __init__(self, rate=0.0, **kwargs):
    super().__init__(**kwargs)
    self.rate = validation.check_probability("rate", rate)

  def call(self, inputs, training=None):
    if not training or self.rate == 0.0:
      return inputs
    keep = 1.0 - self.rate
    shape = tf.concat([tf.shape(inputs)[:1], tf.ones([tf.rank(inputs) - 1], tf.int32)], 0)
    # floor(keep + U[0, 1)) is 1 with probability `keep`.
    # Drawn through `recompute`: a recomputed block (recompute-grad) replays the mask.
    mask = tf.floor(keep + recompute.random_uniform(shape))
    return inputs * tf.cast(mask / keep, inputs.dtype)

  def get_config(self):
    config = super().get_config()
    config.update(rate=self.rate)
    return config


@tf_keras.utils.register_keras_serializable(package="tfvision")
class DropBlock(tf_keras.layers.Layer):
  """DropBlock (Ghiasi et al. 2018) for NHWC feature maps; identity at inference.

  Args:
    block_size: side of the square blocks that are dropped (clipped to the feature
      map's smaller side).
    keep_prob: probability of keeping an activation, in (0, 1]; 1 disables it.
  Input: [B, H, W, C]; output: same shape.
  """

  def __init__(self, block_size=7, keep_prob=0.9, **kwargs):
    super().__init__(**kwargs)
    self.block_size = validation.check_positive("block_size", block_size, integer=True)
    if not isinstance(keep_prob, (int, float)) or not 0.0 < keep_prob <= 1.0:
      raise ValueError(f"keep_prob must be in (0, 1], received keep_prob={keep_prob!r}")
    self.keep_prob = float(keep_prob)

  def call(self, inputs, training=None):
    if not training or self.keep_prob >= 1.0:
      return inputs
    # The block side is static (a max-pool window); clip it to the map where the map's
    # size is known, as the reference does when block_size reaches the feature width.
    block = self.block_size
    for dim in inputs.shape[1:3]:
      if dim is not None:
        block = min(block, dim)
    shape = tf.shape(inputs)
    height, width = shape[1], shape[2]
    h_f = tf.cast(height, tf.float32)
    w_f = tf.cast(width, tf.float32)
    b_f = float(block)
    # Eq. (1) of the paper, for a rectangular map.
    gamma = ((1.0 - self.keep_prob) / (b_f * b_f) * (h_f * w_f) /
             tf.maximum((h_f - b_f + 1.0) * (w_f - b_f + 1.0), 1.0))
    # Centres may only fall where the whole block lies inside the map.
    rows = tf.range(height)
    cols = tf.range(width)
    row_ok = (rows >= block // 2) & (rows < height - (block - 1) // 2)
    col_ok = (cols >= block // 2) & (cols < width - (block - 1) // 2)
    valid = tf.cast(row_ok[:, None] & col_ok[None, :], tf.float32)[None, :, :, None]
    noise = recompute.random_uniform(shape)  # replayed when recomputed
    seeds = tf.cast(noise < gamma, tf.float32) * valid
    # Each seed grows into a block x block square: a stride-1 max-pool.
    dropped = tf.nn.max_pool2d(seeds, ksize=block, strides=1, padding="SAME")
    keep_mask = 1.0 - dropped
    kept_fraction = tf.reduce_sum(keep_mask) / tf.cast(tf.size(keep_mask), tf.float32)
    scale = keep_mask / tf.maximum(kept_fraction, 1e-6)
    return inputs * tf.cast(scale, inputs.dtype)

  def get_config(self):
    config = super().get_config()
    config.update(block_size=self.block_size, keep_prob=self.keep_prob)
    return config

