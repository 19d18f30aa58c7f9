"""Panoptic (PQ / SQ / RQ) and semantic (mIoU) evaluation, and an evaluation entry point.

PQ (Kirillov et al. 2019) is computed by Model Garden's `PanopticQuality`
(`official.vision.evaluation.panoptic_quality`), fed with category / instance masks
split from `semantic * label_divisor + instance` maps:

- ground truth: void pixels and crowd regions (thing pixels with instance 0) become the
  ignored category, so a prediction over them is neither matched nor a false positive
  when more than half of it lies there;
- predictions: void (`void_label * label_divisor`) is the ignored category too.

mIoU comes from a confusion matrix over the pixels whose ground truth is not ignored;
the ignore class is left out of the mean (COCO's void class 0) and so are classes absent
from both ground truth and prediction.

    python -m tfvision.evaluation.panoptic --model panoptic_deeplab_swidernet_0.25_0.5_1 \\
        --weights ckpt.keras --data val.npz --dataset cityscapes

`--eval-scales 0.5,0.75,1,1.25,1.5,1.75 --flip` evaluates with the papers' multi-scale
and flip test-time augmentation (`tfvision.models.panoptic_inference.
multi_scale_predictions`, deeplab2's eval_scales / add_flipped_images).
"""
import argparse
import json
import sys

import numpy as np
import tensorflow as tf

from tfvision.data.panoptic import get_dataset_info

_MAX_INSTANCES = 256


class PanopticEvaluator:
  """Accumulates PQ / SQ / RQ (all, things, stuff) and mIoU over images.

  Args:
    info: a `PanopticDatasetInfo` or a dataset name ("cityscapes", "coco").
  """

  def __init__(self, info):
    from official.vision.evaluation.panoptic_quality import PanopticQuality  # pylint: disable=import-outside-toplevel
    self.info = get_dataset_info(info)
    classes = self.info.num_classes
    # Void gets a category of its own right after the classes unless the ignore label is
    # one of them (COCO's class 0). Categories and instance ids are kept compact: Model
    # Garden's PanopticQuality multiplies uint32 segment ids, which overflows with
    # Cityscapes' divisor of 1000 and ignore label 255.
    self._void_category = (self.info.ignore_label if self.info.ignore_label < classes
                           else classes)
    self._num_categories = max(classes, self._void_category + 1)
    self._pq = PanopticQuality(
        num_categories=self._num_categories, ignored_label=self._void_category,
        max_instances_per_category=_MAX_INSTANCES,
        offset=self._num_categories * _MAX_INSTANCES)
    self.reset()

  def reset(self):
    """Forgets everything accumulated."""
    self._pq.reset()
    self._confusion = np.zeros([self.info.num_classes] * 2, dtype=np.int64)
    # Ground-truth pixels predicted as void / outside the classes, per true class.
    self._missed = np.zeros([self.info.num_classes], dtype=np.int64)

  def _split(self, panoptic, groundtruth):
    """Category and compact instance masks of one panoptic map."""
    info = self.info
    category = panoptic // info.label_divisor
    instance = panoptic % info.label_divisor
    void = (category < 0) | (category >= info.num_classes) | (category == info.ignore_label)
    if groundtruth:
      void |= info.is_thing[np.clip(category, 0, info.num_classes - 1)] & (instance == 0)
    category = np.where(void, self._void_category, category)
    instance = np.where(void, 0, instance)
    # Renumber the instances of each category 1, 2, ... (PQ ignores the numbering).
    keys, inverse = np.unique(category * info.label_divisor + instance, return_inverse=True)
    key_category, key_instance = keys // info.label_divisor, keys % info.label_divisor
    compact = np.zeros_like(keys)
    for value in np.unique(key_category):
      members = np.flatnonzero((key_category == value) & (key_instance > 0))
      if len(members) >= _MAX_INSTANCES:
        raise ValueError(f"at most {_MAX_INSTANCES - 1} instances per class and image are "
                         f"supported, received {len(members)} of class {int(value)}")
      compact[members] = np.arange(1, len(members) + 1)
    instance = compact[inverse].reshape(panoptic.shape)
    return category.astype(np.uint32), instance.astype(np.uint32)

  def update(self, groundtruth_panoptic, predicted_panoptic, predicted_semantic=None):
    """Adds images.

    Args:
      groundtruth_panoptic: int [H, W] or [B, H, W] labels.
      predicted_panoptic: int maps of the same shape.
      predicted_semantic: optional int semantic predictions for mIoU (by default the
        semantic part of `predicted_panoptic`, where void counts as a miss).
    """
    gt = np.asarray(groundtruth_panoptic).astype(np.int64)
    pred = np.asarray(predicted_panoptic).astype(np.int64)
    if gt.shape != pred.shape:
      raise ValueError(f"ground truth and prediction shapes differ, received "
                       f"predicted_panoptic shape {pred.shape} for ground truth {gt.shape}")
    if gt.ndim == 2:
      gt, pred = gt[None], pred[None]
      if predicted_semantic is not None:
        predicted_semantic = np.asarray(predicted_semantic)[None]
    for index in range(gt.shape[0]):
      gt_category, gt_instance = self._split(gt[index], groundtruth=True)
      pred_category, pred_instance = self._split(pred[index], groundtruth=False)
      self._pq.compare_and_accumulate(
          dict(category_mask=gt_category, instance_mask=gt_instance),
          dict(category_mask=pred_category, instance_mask=pred_instance))
      semantic = (np.asarray(predicted_semantic[index]) if predicted_semantic is not None
                  else pred[index] // self.info.label_divisor)
      self._update_confusion(gt[index] // self.info.label_divisor, semantic)

  def _update_confusion(self, gt_semantic, pred_semantic):
    classes = self.info.num_classes
    valid = (gt_semantic >= 0) & (gt_semantic < classes) & (
        gt_semantic != self.info.ignore_label)
    gt_valid = gt_semantic[valid]
    pred_valid = pred_semantic[valid]
    # Predictions outside the classes (void) count as misses of the true class.
    in_range = (pred_valid >= 0) & (pred_valid < classes)
    np.add.at(self._confusion, (gt_valid[in_range], pred_valid[in_range]), 1)
    self._missed += np.bincount(gt_valid[~in_range], minlength=classes)

  def result(self):
    """Dict of floats: pq, sq, rq (+ _things / _stuff), miou, and per-class IoU."""
    is_thing = np.concatenate([self.info.is_thing, np.zeros(
        self._num_categories - self.info.num_classes, bool)])
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 for absent classes
      raw = self._pq.result(is_thing=is_thing)
    results = {}
    for prefix, key in (("All", ""), ("Things", "_things"), ("Stuff", "_stuff")):
      for metric in ("pq", "sq", "rq"):
        results[metric + key] = float(raw[f"{prefix}_{metric}"])
    intersection = np.diag(self._confusion).astype(np.float64)
    gt_area = self._confusion.sum(axis=1) + self._missed
    pred_area = self._confusion.sum(axis=0)
    union = gt_area + pred_area - intersection
    present = union > 0
    if 0 <= self.info.ignore_label < self.info.num_classes:
      present[self.info.ignore_label] = False
    iou = np.where(union > 0, intersection / np.maximum(union, 1), np.nan)
    results["miou"] = float(np.mean(iou[present])) if present.any() else 0.0
    results["iou_per_class"] = [None if np.isnan(v) else float(v) for v in iou]
    return results


def evaluate_panoptic(model, dataset, info, postprocessor=None, max_batches=None,
                      jit_compile=False, eval_scales=(1.0,), flip=False):
  """Runs a panoptic model and its post-processing over a dataset and returns metrics.

  Args:
    model: a PanopticDeepLab-style model (dict of semantic_logits / center_heatmap /
      offsets).
    dataset: iterable of (images [B, H, W, 3] in [0, 255], panoptic labels [B, H, W]).
    info: `PanopticDatasetInfo` or dataset name.
    postprocessor: a `PanopticDeepLabPostProcessor`; by default the dataset's settings.
    max_batches: stop after this many batches.
    jit_compile: XLA-compile the model + post-processing step.
    eval_scales: test-time image scales whose predictions are averaged (1.0: none).
    flip: also average the predictions of the horizontally mirrored images.

  Returns:
    `PanopticEvaluator.result()` plus "images".
  """
  from tfvision.models.panoptic_inference import PanopticInference  # pylint: disable=import-outside-toplevel
  from tfvision.ops.panoptic_postprocess import PanopticDeepLabPostProcessor  # pylint: disable=import-outside-toplevel
  info = get_dataset_info(info)
  if postprocessor is None:
    postprocessor = PanopticDeepLabPostProcessor(**info.postprocess_kwargs())

  inference = PanopticInference(model, postprocessor, eval_scales=eval_scales, flip=flip)

  @tf.function(jit_compile=jit_compile)
  def step(images):
    return inference(images)

  evaluator = PanopticEvaluator(info)
  images_seen = 0
  for index, (images, labels) in enumerate(dataset):
    if max_batches is not None and index >= max_batches:
      break
    out = step(images)
    evaluator.update(np.asarray(labels), out["panoptic"].numpy(), out["semantic"].numpy())
    images_seen += int(np.shape(labels)[0])
  results = evaluator.result()
  results["images"] = images_seen
  return results


def _load_model(args):
  import tf_keras  # pylint: disable=import-outside-toplevel
  from tfvision.models import create_model, get_preset  # pylint: disable=import-outside-toplevel
  if args.weights and args.weights.endswith(".keras"):
    return tf_keras.models.load_model(args.weights)
  entry = get_preset(args.model)
  kwargs = {}
  if args.num_classes:
    kwargs["num_classes"] = args.num_classes
  model = entry.build_tiny(**kwargs) if args.tiny else create_model(args.model, **kwargs)
  if args.weights:
    model.load_weights(args.weights)
  return model


def main(argv=None):
  """Command-line evaluation (see the module docstring)."""
  from tfvision.data.panoptic import synthetic_dataset_info, synthetic_panoptic_batch  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", default="panoptic_deeplab_swidernet_0.25_0.25_0.75",
                      help="registry name (ignored with a .keras --weights file)")
  parser.add_argument("--weights", default=None,
                      help="a .keras model file or a checkpoint for --model")
  parser.add_argument("--tiny", action="store_true", help="build the tiny configuration")
  parser.add_argument("--num-classes", type=int, default=None)
  parser.add_argument("--dataset", default="cityscapes",
                      help="label scheme: cityscapes, coco or synthetic")
  parser.add_argument("--data", default=None,
                      help=".npz with arrays 'images' [N,H,W,3] and 'panoptic' [N,H,W]")
  parser.add_argument("--synthetic", type=int, default=0,
                      help="evaluate on N synthetic images instead of --data")
  parser.add_argument("--size", type=int, default=65, help="synthetic image side")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--jit-compile", action="store_true")
  parser.add_argument("--eval-scales", default="1",
                      help="comma-separated test-time scales, e.g. 0.5,0.75,1,1.25,1.5,1.75")
  parser.add_argument("--flip", action="store_true",
                      help="also average the predictions of the mirrored images")
  args = parser.parse_args(argv)
  try:
    eval_scales = tuple(float(v) for v in args.eval_scales.split(","))
  except ValueError:
    parser.error(f"--eval-scales takes comma-separated numbers, received "
                 f"{args.eval_scales!r}")
  model = _load_model(args)
  num_classes = model.get_config()["num_classes"]
  info = (synthetic_dataset_info(num_classes) if args.dataset == "synthetic"
          else get_dataset_info(args.dataset))
  if args.synthetic:
    images, labels = synthetic_panoptic_batch(args.synthetic, args.size, info)
  elif args.data:
    with np.load(args.data) as data:
      images, labels = data["images"], data["panoptic"]
  else:
    parser.error("give --data FILE.npz or --synthetic N")
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(args.batch)
  results = evaluate_panoptic(model, dataset, info, jit_compile=args.jit_compile,
                              eval_scales=eval_scales, flip=args.flip)
  json.dump(results, sys.stdout, indent=1)
  sys.stdout.write("\n")
  return results


if __name__ == "__main__":
  main()
