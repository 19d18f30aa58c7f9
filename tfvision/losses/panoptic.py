"""Panoptic-DeepLab losses (Cheng et al. 2020 Sec. 3.2; deeplab2 `model/loss/base_loss.py`).

- semantic: softmax cross-entropy weighted per pixel, bootstrapped to the hardest
  `top_k_percent` (20%) of the pixels of each image;
- center: squared error against the Gaussian heatmap, weight 200;
- offsets: L1 on (dy, dx) (mean over the two), weight 0.01.

Every term is normalised per image as deeplab2's `compute_average_top_k_loss` does: the
sum of the weighted per-pixel losses (of the top k when bootstrapping) divided by the
number of those that are non-zero. All losses are per image ([B]), so that distribution
strategies can average them over the global batch.
"""
import tensorflow as tf
import tf_keras

from tfvision.utils import validation


def average_top_k(pixel_losses, top_k_percent=1.0):
  """Per-image mean of the largest `top_k_percent` of [B, ...] losses over non-zeros.

  deeplab2 `compute_average_top_k_loss`: k = round(top_k_percent * pixels); the sum of
  the kept losses is divided by how many of them are non-zero (0 when none is).
  """
  flat = tf.reshape(pixel_losses, tf.stack([tf.shape(pixel_losses)[0], -1]))
  if top_k_percent < 1.0:
    count = flat.shape[1]
    if count is not None:
      k = max(1, int(round(top_k_percent * count)))
    else:
      k = tf.maximum(1, tf.cast(tf.round(top_k_percent * tf.cast(tf.shape(flat)[1],
                                                                  tf.float32)), tf.int32))
    flat = tf.math.top_k(flat, k, sorted=False).values
  non_zero = tf.reduce_sum(tf.cast(tf.not_equal(flat, 0.0), flat.dtype), axis=1)
  return tf.math.divide_no_nan(tf.reduce_sum(flat, axis=1), non_zero)


def top_k_cross_entropy(labels, logits, weights=None, top_k_percent=0.2, ignore_label=None):
  """Bootstrapped softmax cross-entropy per image.

  Args:
    labels: [B, H, W] int semantic labels.
    logits: [B, H, W, C].
    weights: [B, H, W] per-pixel weights or None.
    top_k_percent: fraction of the pixels kept (hardest first).
    ignore_label: label whose pixels get no loss; labels outside [0, C) get none either.
  Returns: [B] float32.
  """
  logits = tf.cast(logits, tf.float32)
  labels = tf.cast(labels, tf.int32)
  num_classes = tf.shape(logits)[-1]
  valid = (labels >= 0) & (labels < num_classes)
  if ignore_label is not None:
    valid &= tf.not_equal(labels, ignore_label)
  safe = tf.where(valid, labels, 0)
  pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
  pixel *= tf.cast(valid, tf.float32)
  if weights is not None:
    pixel *= tf.cast(weights, tf.float32)
  return average_top_k(pixel, top_k_percent)


def _per_pixel(target, prediction, weights, fn):
  target = tf.cast(target, tf.float32)
  prediction = tf.cast(prediction, tf.float32)
  if prediction.shape.rank == 4 and target.shape.rank == 3:
    target = target[..., tf.newaxis]
  pixel = tf.reduce_mean(fn(target - prediction), axis=-1)
  if weights is not None:
    pixel *= tf.cast(weights, tf.float32)
  return pixel


def center_mse(target, prediction, weights=None):
  """Per-image weighted squared error of the center heatmap ([B, H, W, 1]) -> [B]."""
  return average_top_k(_per_pixel(target, prediction, weights, tf.square))


def offset_l1(target, prediction, weights=None):
  """Per-image weighted L1 of the (dy, dx) offsets ([B, H, W, 2]) -> [B]."""
  return average_top_k(_per_pixel(target, prediction, weights, tf.abs))


@tf_keras.utils.register_keras_serializable(package="tfvision")
class PanopticDeepLabLoss(tf_keras.losses.Loss):
  """Weighted sum of the three Panoptic-DeepLab losses, per image.

  `y_true` is the dict of `tfvision.ops.panoptic_targets.panoptic_targets`, `y_pred` the
  PanopticDeepLab output dict. Calling the loss returns the [B] totals;
  `components(y_true, y_pred)` returns the weighted terms and the total. With
  `PanopticDeepLab.compile(loss=PanopticDeepLabLoss(...))`, `model.fit` trains on
  (images, targets) and logs each term.

  Args:
    ignore_label: semantic label without loss (255 Cityscapes, 0 COCO).
    top_k_percent: bootstrapping fraction of the semantic loss (0.2).
    semantic_weight, center_weight, offset_weight: 1, 200, 0.01 (Cheng et al. 2020).
  """

  component_names = ("semantic_loss", "center_loss", "offset_loss", "total")

  def __init__(self, ignore_label=255, top_k_percent=0.2, semantic_weight=1.0,
               center_weight=200.0, offset_weight=0.01, name="panoptic_deeplab_loss",
               reduction=tf_keras.losses.Reduction.NONE):
    super().__init__(reduction=reduction, name=name)
    self.ignore_label = (None if ignore_label is None else
                         validation.check_non_negative("ignore_label", ignore_label,
                                                       integer=True))
    if not isinstance(top_k_percent, (int, float)) or not 0.0 < top_k_percent <= 1.0:
      raise ValueError(f"top_k_percent must be in (0, 1], received "
                       f"top_k_percent={top_k_percent!r}")
    self.top_k_percent = float(top_k_percent)
    self.semantic_weight = validation.check_non_negative("semantic_weight", semantic_weight)
    self.center_weight = validation.check_non_negative("center_weight", center_weight)
    self.offset_weight = validation.check_non_negative("offset_weight", offset_weight)

  def components(self, y_true, y_pred):
    """Dict of [B] losses: "semantic_loss", "center_loss", "offset_loss", "total"."""
    semantic = self.semantic_weight * top_k_cross_entropy(
        y_true["semantic"], y_pred["semantic_logits"], y_true["semantic_weights"],
        self.top_k_percent, self.ignore_label)
    center = self.center_weight * center_mse(
        y_true["center"], y_pred["center_heatmap"], y_true["center_weights"])
    offset = self.offset_weight * offset_l1(
        y_true["offsets"], y_pred["offsets"], y_true["offset_weights"])
    return dict(semantic_loss=semantic, center_loss=center, offset_loss=offset,
                total=semantic + center + offset)

  def call(self, y_true, y_pred):
    return self.components(y_true, y_pred)["total"]

  def get_config(self):
    config = super().get_config()
    config.update(ignore_label=self.ignore_label, top_k_percent=self.top_k_percent,
                  semantic_weight=self.semantic_weight, center_weight=self.center_weight,
                  offset_weight=self.offset_weight)
    return config


def semantic_segmentation_loss(labels, logits, ignore_label=255, top_k_percent=1.0):
  """Per-image pixel-averaged cross-entropy of a semantic model (DeepLabV3/V3+) -> [B]."""
  return top_k_cross_entropy(labels, logits, None, top_k_percent, ignore_label)
