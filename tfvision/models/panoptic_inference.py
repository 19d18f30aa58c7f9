"""End-to-end panoptic inference: uint8 images -> panoptic maps, in one traced function.

`PanopticInference` chains a Panoptic-DeepLab model and the pure-TF post-processing, so
the whole pipeline runs under `tf.function(jit_compile=True)` for any batch size:

    inference = PanopticInference(model, dataset="cityscapes")
    maps = inference(images_uint8)              # {"panoptic", "semantic", "instance"}

The SavedModel of the same pipeline is `tfvision.export.export_saved_model(model, dir,
dataset="cityscapes")` (its post-processor is this class's), the one exporter.

Test-time augmentation (`multi_scale_predictions`; `PanopticInference(eval_scales=...,
flip=True)`, `tfvision.evaluation.panoptic --eval-scales/--flip` and
`tfvision.export.export_saved_model(eval_scales=..., flip=True)`) follows deeplab2
(`model/deeplab.py`, `eval_scales` / `add_flipped_images`; the papers evaluate
multi-scale at 0.5 .. 1.75, swidernet.md and axial-deeplab Sec. 4): the image is resized
(bilinear, corners aligned) to (size - 1) * scale + 1 per axis, optionally also mirrored,
each prediction is resized back to the image, mirrored back (x offsets negated) and
rescaled (offsets by the resize ratio), and the predictions are averaged: softmax
probabilities, centre heatmaps and offsets. It sits above the model, so every backbone
family gets it; axial models need a local span (or max_span) covering the largest scale.
"""
import numbers

import tensorflow as tf

from tfvision.data.panoptic import get_dataset_info
from tfvision.layers.resize import rescale_offsets, resize_align_corners
from tfvision.ops.panoptic_postprocess import PanopticDeepLabPostProcessor

OUTPUT_KEYS = ("panoptic", "semantic", "instance")
# The papers' multi-scale test (swidernet.md, axial-deeplab Sec. 4; deeplab2 configs).
PAPER_EVAL_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
_SEMANTIC, _CENTER, _OFFSETS = "semantic_logits", "center_heatmap", "offsets"
# Probabilities this small are 0 for the argmax; the floor keeps their log finite, so
# that the averaged "logits" can still be resized bilinearly.
_PROBABILITY_FLOOR = 1e-30


def check_eval_scales(eval_scales):
  """Validates test-time scales: a non-empty sequence of positive numbers; a tuple."""
  try:
    scales = tuple(eval_scales)
  except TypeError:
    scales = None
  if not scales or any(not isinstance(s, numbers.Real) or isinstance(s, bool) or s <= 0
                       for s in scales):
    raise ValueError(f"eval_scales must be a non-empty sequence of positive numbers, "
                     f"received eval_scales={eval_scales!r}")
  return tuple(float(s) for s in scales)


def check_flip(flip):
  if not isinstance(flip, bool):
    raise ValueError(f"flip must be True or False, received flip={flip!r}")
  return flip


def is_augmented(eval_scales, flip):
  """Whether test-time augmentation changes anything (not just scale 1, no flip)."""
  return flip or tuple(eval_scales) != (1.0,)


def _scaled_size(images, scale):
  """deeplab2's `scale_mutable_sequence`: int((side - 1) * scale + 1) per axis."""
  size = tf.shape(images)[1:3]
  return tf.cast(tf.cast(size - 1, tf.float32) * scale + 1.0, tf.int32)


def multi_scale_predictions(model_fn, images, eval_scales=(1.0,), flip=False):
  """Dense predictions averaged over scales and horizontal flips (see the module doc).

  Args:
    model_fn: float images [B, h, w, 3] -> dict with "semantic_logits" [B, h', w', C]
      and, for a panoptic model, "center_heatmap" [B, h', w', 1] and "offsets"
      [B, h', w', 2] ((dy, dx) in pixels of that grid); other keys are dropped.
    images: float32 [B, H, W, 3] pixels.
    eval_scales: image scales (deeplab2's eval_scales).
    flip: also run each scale on the mirrored image (deeplab2's add_flipped_images).

  Returns:
    The same keys at [B, H, W, ..]: "semantic_logits" holds the log of the averaged
    softmax probabilities (its softmax and argmax are those of the average, which is
    what deeplab2's post-processing reads), the others are averaged. Without any
    augmentation (scale 1 only, no flip) `model_fn(images)` is returned unchanged.
  """
  eval_scales = check_eval_scales(eval_scales)
  check_flip(flip)
  if not is_augmented(eval_scales, flip):
    return model_fn(images)
  target = tf.shape(images)[1:3]
  totals = {}
  count = 0
  for scale in eval_scales:
    scaled = images if scale == 1.0 else resize_align_corners(
        images, _scaled_size(images, scale))
    for mirrored in ((False, True) if flip else (False,)):
      outputs = model_fn(tf.reverse(scaled, [2]) if mirrored else scaled)
      for key, value in outputs.items():
        if key not in (_SEMANTIC, _CENTER, _OFFSETS):
          continue
        value = tf.cast(value, tf.float32)
        if mirrored:
          value = tf.reverse(value, [2])
          if key == _OFFSETS:
            value = value * tf.constant([1.0, -1.0])
        if key == _OFFSETS:
          grid = tf.shape(value)
          value = rescale_offsets(value, (grid[1], grid[2]), (target[0], target[1]))
        value = resize_align_corners(value, target)
        if key == _SEMANTIC:
          value = tf.nn.softmax(value, axis=-1)
        totals[key] = value if key not in totals else totals[key] + value
      count += 1
  averaged = {key: value / count for key, value in totals.items()}
  averaged[_SEMANTIC] = tf.math.log(tf.maximum(averaged[_SEMANTIC], _PROBABILITY_FLOOR))
  return averaged


class PanopticInference(tf.Module):
  """Model + post-processing: [B, H, W, 3] uint8 (or float) pixels -> int32 [B, H, W] maps.

  Args:
    model: a PanopticDeepLab model (outputs semantic_logits, center_heatmap, offsets).
    postprocessor: a `PanopticDeepLabPostProcessor`; None uses `dataset`'s settings.
    dataset: "cityscapes", "coco" or a `PanopticDatasetInfo` (when no postprocessor).
    eval_scales: test-time image scales (e.g. PAPER_EVAL_SCALES); (1.0,) is one pass.
    flip: also average the predictions of the mirrored images.
  """

  def __init__(self, model, postprocessor=None, dataset="cityscapes", name=None,
               eval_scales=(1.0,), flip=False):
    super().__init__(name=name)
    self.model = model
    if postprocessor is None:
      postprocessor = PanopticDeepLabPostProcessor(**get_dataset_info(dataset)
                                                   .postprocess_kwargs())
    self.postprocessor = postprocessor
    self.eval_scales = check_eval_scales(eval_scales)
    self.flip = check_flip(flip)

  def predictions(self, images):
    """The model's (augmented) predictions for float or uint8 [B, H, W, 3] images."""
    return multi_scale_predictions(lambda x: self.model(x, training=False),
                                   tf.cast(images, tf.float32), self.eval_scales,
                                   self.flip)

  def __call__(self, images):
    outputs = self.predictions(images)
    maps = self.postprocessor(outputs)
    return {key: maps[key] for key in OUTPUT_KEYS}
