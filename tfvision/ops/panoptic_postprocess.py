"""Panoptic-DeepLab post-processing: pure TensorFlow, batched, XLA-compilable.

From semantic logits, the center heatmap and the center offsets this computes the
panoptic map `semantic * label_divisor + instance` (Cheng et al. 2020, Sec. 3.3; deeplab2
`model/post_processor/panoptic_deeplab.py`):

1. semantic prediction: argmax of the logits;
2. centers: heatmap values <= `center_threshold` are zeroed, a `nms_kernel` max-pool
   keeps local maxima only, and the `keep_k_centers` highest remain;
3. grouping: every thing pixel joins the center nearest to (its position + its offset);
4. each instance takes the majority semantic class of its pixels (DeeperLab's vote);
   instances are numbered 1, 2, ... per class;
5. stuff segments (all pixels of a stuff class) with fewer than `stuff_area_limit`
   pixels and thing pixels without any center become void
   (`void_label * label_divisor`), as swidernet.md Sec. 4 does with 4096 / 2048.

Shapes are static and nothing depends on the batch size of 1: centers are a fixed
`keep_k_centers` top-k slots with a validity mask, grouping is a `tf.while_loop` over the
valid centers, 16 at a time, keeping a running nearest-center index (memory
O(16 B H W) instead of deeplab2's O(K H W) distance matrix, and XLA-compilable), and the class vote is one
`unsorted_segment_sum` over (image, instance, class). deeplab2's TF fallback handles
batch 1 only and its fast path needs a compiled C++ op.

Differences from deeplab2 that do not change the panoptic segmentation:
- deeplab2 keeps the centers scoring strictly above the k-th score (fewer than k on
  ties); we keep exactly the top k.
- Instance numbers within a class follow center score order instead of deeplab2's raster
  order of first appearance (PQ does not depend on the numbering).
- `keep_k_centers` defaults to 200 (Panoptic-DeepLab; deeplab2's default is 400) and must
  be smaller than `label_divisor`, so per-class instance ids never overflow (COCO's
  divisor is 256).
"""
import numpy as np
import tensorflow as tf
import tf_keras

from tfvision.utils import validation

_INF = float("inf")


def _check_postprocess_args(thing_classes, label_divisor, void_label, center_threshold,
                            nms_kernel, keep_k_centers, stuff_area_limit):
  validation.check_positive("label_divisor", label_divisor, integer=True)
  validation.check_non_negative("void_label", void_label, integer=True)
  validation.check_non_negative("center_threshold", center_threshold)
  validation.check_positive("nms_kernel", nms_kernel, integer=True)
  validation.check_positive("keep_k_centers", keep_k_centers, integer=True)
  validation.check_non_negative("stuff_area_limit", stuff_area_limit, integer=True)
  if keep_k_centers >= label_divisor:
    raise ValueError(f"keep_k_centers must be smaller than label_divisor={label_divisor!r} "
                     f"so that instance ids fit, received keep_k_centers={keep_k_centers!r}")
  try:
    things = sorted({int(c) for c in thing_classes})
  except (TypeError, ValueError):
    raise ValueError(f"thing_classes must be a sequence of class ids, received "
                     f"thing_classes={thing_classes!r}")
  if any(c < 0 for c in things):
    raise ValueError(f"thing_classes must be non-negative, received "
                     f"thing_classes={list(thing_classes)!r}")
  return things


def find_instance_centers(center_heatmap, center_threshold=0.1, nms_kernel=13,
                          keep_k_centers=200):
  """Top-k local maxima of the center heatmap above a threshold.

  Args:
    center_heatmap: [B, H, W] or [B, H, W, 1] float.
    center_threshold: minimum score.
    nms_kernel: max-pool kernel of the non-maximum suppression.
    keep_k_centers: number of center slots K.

  Returns:
    (scores [B, K] sorted descending, 0 for empty slots; coordinates [B, K, 2] int32
    (y, x); valid [B, K] bool).
  """
  heat = tf.cast(center_heatmap, tf.float32)
  if heat.shape.rank == 4:
    heat = heat[..., 0]
  heat = tf.where(heat > center_threshold, heat, 0.0)
  # A k x k max-pool is a k x 1 max-pool followed by a 1 x k one: 2k instead of k^2
  # comparisons per pixel (k = 41 on COCO). "SAME" max-pooling ignores the padding,
  # which equals deeplab2's zero padding because the heatmap is >= 0 here.
  pooled = tf.nn.max_pool2d(heat[..., tf.newaxis], [nms_kernel, 1], 1, "SAME")
  pooled = tf.nn.max_pool2d(pooled, [1, nms_kernel], 1, "SAME")[..., 0]
  peaks = tf.where(tf.equal(heat, pooled) & (heat > 0.0), heat, 0.0)
  height, width = heat.shape[1], heat.shape[2]
  if height is not None and width is not None:
    flat = tf.reshape(peaks, [-1, height * width])
    k = min(keep_k_centers, height * width)
  else:
    dynamic = tf.shape(heat)
    width = dynamic[2]
    flat = tf.reshape(peaks, [dynamic[0], -1])
    k = tf.minimum(keep_k_centers, dynamic[1] * dynamic[2])
  scores, indices = tf.math.top_k(flat, k)
  coordinates = tf.stack([indices // width, indices % width], axis=-1)
  return scores, coordinates, scores > 0.0


def _nearest_center(offsets, coordinates, valid, block=16):
  """Index of the center nearest to (pixel + offset), [B, H, W] int32 (0 if none).

  Centers are visited in blocks of `block`: each step computes a [B, H, W, block]
  distance and keeps a running minimum, so memory stays O(B H W block) whatever the
  number of centers and the loop runs ceil(valid centers / block) times.
  """
  offsets = tf.cast(offsets, tf.float32)
  shape = tf.shape(offsets)
  rows = tf.cast(tf.range(shape[1]), tf.float32)[None, :, None] + offsets[..., 0]
  cols = tf.cast(tf.range(shape[2]), tf.float32)[None, None, :] + offsets[..., 1]
  slots = tf.shape(valid)[1]
  padding = (-slots) % block
  center_rows = tf.pad(tf.cast(coordinates[..., 0], tf.float32), [[0, 0], [0, padding]])
  center_cols = tf.pad(tf.cast(coordinates[..., 1], tf.float32), [[0, 0], [0, padding]])
  valid = tf.pad(valid, [[0, 0], [0, padding]])
  # Valid centers come first (scores are sorted), so the blocks up to the largest count
  # of valid centers in the batch hold every one of them.
  count = tf.reduce_max(tf.reduce_sum(tf.cast(valid, tf.int32), axis=1))
  num_blocks = (count + block - 1) // block

  def body(i, best_distance, best_index):
    index = i * block + tf.range(block)
    dy = rows[..., None] - tf.gather(center_rows, index, axis=1)[:, None, None, :]
    dx = cols[..., None] - tf.gather(center_cols, index, axis=1)[:, None, None, :]
    ok = tf.gather(valid, index, axis=1)[:, None, None, :]
    distance = tf.where(ok, dy * dy + dx * dx, _INF)
    block_best = tf.reduce_min(distance, axis=-1)
    block_index = tf.argmin(distance, axis=-1, output_type=tf.int32) + i * block
    # Strictly closer: on ties the earlier (higher-scoring) center wins, as an argmin
    # over all centers would (argmin within a block also keeps the first).
    closer = block_best < best_distance
    return (i + 1, tf.where(closer, block_best, best_distance),
            tf.where(closer, block_index, best_index))

  initial = (tf.constant(0), tf.fill(tf.shape(rows), _INF), tf.zeros_like(rows, tf.int32))
  _, _, index = tf.while_loop(lambda i, *_: i < num_blocks, body, initial)
  return index


def panoptic_deeplab_postprocess(semantic_logits, center_heatmap, offsets, thing_classes,
                                 label_divisor, void_label, center_threshold=0.1,
                                 nms_kernel=13, keep_k_centers=200, stuff_area_limit=2048):
  """Panoptic maps from Panoptic-DeepLab outputs (see the module docstring).

  Args:
    semantic_logits: [B, H, W, C] logits (or probabilities).
    center_heatmap: [B, H, W, 1] or [B, H, W].
    offsets: [B, H, W, 2] (dy, dx) in pixels.
    thing_classes: semantic ids with instances.
    label_divisor: panoptic id = semantic * label_divisor + instance.
    void_label: semantic id written to void pixels (the dataset's ignore label).
    center_threshold: minimum center score (0.1).
    nms_kernel: center max-pool kernel (13 Cityscapes, 41 COCO).
    keep_k_centers: center slots per image (200).
    stuff_area_limit: smallest kept stuff segment in pixels (2048 Cityscapes, 4096 COCO).

  Returns:
    A dict of int32 [B, H, W] maps: "panoptic", "semantic" and "instance" (the
    class-agnostic instance index 1..K of thing pixels, 0 elsewhere).
  """
  things = _check_postprocess_args(thing_classes, label_divisor, void_label,
                                   center_threshold, nms_kernel, keep_k_centers,
                                   stuff_area_limit)
  logits = tf.convert_to_tensor(semantic_logits)
  num_classes = logits.shape[-1]
  if num_classes is None:
    raise ValueError("semantic_logits needs a static class dimension")
  if things and things[-1] >= num_classes:
    raise ValueError(f"thing_classes must be smaller than the {num_classes} classes of "
                     f"semantic_logits, received thing_classes={list(thing_classes)!r}")
  semantic = tf.argmax(logits, axis=-1, output_type=tf.int32)
  table = np.zeros([num_classes], dtype=bool)
  table[things] = True
  is_thing = tf.gather(tf.constant(table), semantic)

  scores, coordinates, valid = find_instance_centers(center_heatmap, center_threshold,
                                                     nms_kernel, keep_k_centers)
  del scores
  has_center = tf.reduce_any(valid, axis=1)[:, None, None]
  nearest = _nearest_center(offsets, coordinates, valid)
  instance = tf.where(is_thing & has_center, nearest + 1, 0)

  shape = tf.shape(semantic)
  batch = shape[0]
  slots = tf.shape(valid)[1] + 1  # instance 0 is "no instance"
  image_index = tf.range(batch)[:, None, None]
  # Majority vote: class histogram of every (image, instance).
  votes = tf.cast(instance > 0, tf.int32)
  vote_ids = (image_index * slots + instance) * num_classes + semantic
  counts = tf.math.unsorted_segment_sum(tf.reshape(votes, [-1]), tf.reshape(vote_ids, [-1]),
                                        batch * slots * num_classes)
  counts = tf.reshape(counts, tf.stack([batch, slots, num_classes]))
  instance_class = tf.argmax(counts, axis=-1, output_type=tf.int32)
  present = tf.reduce_sum(counts, axis=-1) > 0
  # Instance number within its class: 1 + earlier present instances of the same class.
  slot_range = tf.range(slots)
  earlier = slot_range[None, :] < slot_range[:, None]
  same_class = tf.equal(instance_class[:, :, None], instance_class[:, None, :])
  rank = 1 + tf.reduce_sum(
      tf.cast(same_class & present[:, None, :] & earlier[None], tf.int32), axis=2)
  instance_ids = instance_class * label_divisor + rank
  flat_slot = tf.reshape(image_index * slots + instance, [-1])
  thing_panoptic = tf.reshape(tf.gather(tf.reshape(instance_ids, [-1]), flat_slot), shape)

  # Stuff: keep a class's stuff pixels when there are at least stuff_area_limit of them.
  is_stuff = ~is_thing
  stuff_ids = image_index * num_classes + semantic
  stuff_area = tf.math.unsorted_segment_sum(
      tf.reshape(tf.cast(is_stuff, tf.int32), [-1]), tf.reshape(stuff_ids, [-1]),
      batch * num_classes)
  pixel_stuff_area = tf.reshape(tf.gather(stuff_area, tf.reshape(stuff_ids, [-1])), shape)
  keep_stuff = is_stuff & (pixel_stuff_area >= stuff_area_limit)

  void = tf.fill(shape, void_label * label_divisor)
  panoptic = tf.where(instance > 0, thing_panoptic,
                      tf.where(keep_stuff, semantic * label_divisor, void))
  return dict(panoptic=panoptic, semantic=semantic, instance=instance)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class PanopticDeepLabPostProcessor(tf_keras.layers.Layer):
  """Layer form of `panoptic_deeplab_postprocess` (no weights).

  Args: as `panoptic_deeplab_postprocess`; `PanopticDatasetInfo.postprocess_kwargs()`
    gives a dataset's settings.
  Input: the PanopticDeepLab output dict; output: dict of int32 [B, H, W] maps
    "panoptic", "semantic", "instance".
  """

  def __init__(self, thing_classes, label_divisor, void_label, center_threshold=0.1,
               nms_kernel=13, keep_k_centers=200, stuff_area_limit=2048, **kwargs):
    kwargs.setdefault("autocast", False)
    kwargs.setdefault("trainable", False)
    super().__init__(**kwargs)
    self.thing_classes = _check_postprocess_args(
        thing_classes, label_divisor, void_label, center_threshold, nms_kernel,
        keep_k_centers, stuff_area_limit)
    self.label_divisor = label_divisor
    self.void_label = void_label
    self.center_threshold = float(center_threshold)
    self.nms_kernel = nms_kernel
    self.keep_k_centers = keep_k_centers
    self.stuff_area_limit = stuff_area_limit

  def call(self, inputs):
    return panoptic_deeplab_postprocess(
        inputs["semantic_logits"], inputs["center_heatmap"], inputs["offsets"],
        self.thing_classes, self.label_divisor, self.void_label, self.center_threshold,
        self.nms_kernel, self.keep_k_centers, self.stuff_area_limit)

  def get_config(self):
    config = super().get_config()
    config.update(thing_classes=list(self.thing_classes), label_divisor=self.label_divisor,
                  void_label=self.void_label, center_threshold=self.center_threshold,
                  nms_kernel=self.nms_kernel, keep_k_centers=self.keep_k_centers,
                  stuff_area_limit=self.stuff_area_limit)
    return config
