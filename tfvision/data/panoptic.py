"""Panoptic label conventions of the datasets, and synthetic panoptic samples.

A panoptic label map stores `semantic * label_divisor + instance` per pixel. Instance 0
of a thing class marks a crowd region; stuff classes use instance 0; the ignore label is
a semantic id (`ignore_label * label_divisor` is void). The dataset constants follow
deeplab2 (`data/dataset.py`) and its evaluator configs; the post-processing settings
(`stuff_area_limit`, `nms_kernel`) follow swidernet.md Sec. 4 and deeplab2's
`configs/{coco,cityscapes}/panoptic_deeplab/*.textproto`.
"""
import dataclasses
from typing import Tuple

import numpy as np

from tfvision.utils import validation


@dataclasses.dataclass(frozen=True)
class PanopticDatasetInfo:
  """How a dataset encodes panoptic labels, and its evaluation settings.

  Attributes:
    name: dataset name.
    num_classes: semantic classes the model predicts.
    thing_classes: semantic ids that have instances.
    ignore_label: semantic id of void / ignored pixels.
    label_divisor: panoptic id = semantic * label_divisor + instance.
    stuff_area_limit: stuff segments smaller than this become void (swidernet.md Sec. 4).
    nms_kernel: max-pool kernel of center non-maximum suppression.
    center_threshold: minimum center heatmap score of an instance.
    keep_k_centers: at most this many centers per image (Panoptic-DeepLab keeps 200).
  """
  name: str
  num_classes: int
  thing_classes: Tuple[int, ...]
  ignore_label: int
  label_divisor: int
  stuff_area_limit: int
  nms_kernel: int
  center_threshold: float = 0.1
  keep_k_centers: int = 200

  def __post_init__(self):
    check_label_scheme(self.num_classes, self.thing_classes, self.ignore_label,
                       self.label_divisor)

  @property
  def is_thing(self):
    """Boolean numpy array [num_classes]: True for thing classes."""
    table = np.zeros([self.num_classes], dtype=bool)
    table[list(self.thing_classes)] = True
    return table

  def postprocess_kwargs(self):
    """Keyword arguments of `tfvision.ops.panoptic_postprocess.panoptic_deeplab_postprocess`."""
    return dict(thing_classes=list(self.thing_classes), label_divisor=self.label_divisor,
                void_label=self.ignore_label, center_threshold=self.center_threshold,
                nms_kernel=self.nms_kernel, keep_k_centers=self.keep_k_centers,
                stuff_area_limit=self.stuff_area_limit)

  def target_kwargs(self):
    """Keyword arguments of `tfvision.ops.panoptic_targets.panoptic_targets`."""
    return dict(num_classes=self.num_classes, thing_classes=list(self.thing_classes),
                label_divisor=self.label_divisor, ignore_label=self.ignore_label)


def check_label_scheme(num_classes, thing_classes, ignore_label, label_divisor):
  """Validates a panoptic label scheme; returns the thing classes as a sorted list."""
  validation.check_positive("num_classes", num_classes, integer=True)
  validation.check_positive("label_divisor", label_divisor, integer=True)
  validation.check_non_negative("ignore_label", ignore_label, integer=True)
  if ignore_label >= label_divisor:
    # deeplab2 (`dataset_utils.get_semantic_and_panoptic_label`) requires it as well.
    raise ValueError(f"ignore_label must be smaller than label_divisor={label_divisor!r}, "
                     f"received ignore_label={ignore_label!r}")
  try:
    things = sorted({int(c) for c in thing_classes})
  except (TypeError, ValueError):
    raise ValueError(f"thing_classes must be a sequence of class ids, received "
                     f"thing_classes={thing_classes!r}")
  for c in things:
    if not 0 <= c < num_classes or c == ignore_label:
      raise ValueError(f"thing_classes must lie in [0, num_classes={num_classes}) and "
                       f"differ from ignore_label={ignore_label}, received "
                       f"thing_classes={list(thing_classes)!r}")
  return things


CITYSCAPES_PANOPTIC = PanopticDatasetInfo(
    name="cityscapes", num_classes=19, thing_classes=tuple(range(11, 19)), ignore_label=255,
    label_divisor=1000, stuff_area_limit=2048, nms_kernel=13)
# deeplab2 layout: 133 classes at 1..133, class 0 is void (and the ignore label).
COCO_PANOPTIC = PanopticDatasetInfo(
    name="coco", num_classes=134, thing_classes=tuple(range(1, 81)), ignore_label=0,
    label_divisor=256, stuff_area_limit=4096, nms_kernel=41)

DATASETS = {"cityscapes": CITYSCAPES_PANOPTIC, "coco": COCO_PANOPTIC}


def get_dataset_info(name):
  """The PanopticDatasetInfo called `name` ("cityscapes" or "coco")."""
  if isinstance(name, PanopticDatasetInfo):
    return name
  validation.check_in("dataset", name, tuple(DATASETS))
  return DATASETS[name]


def synthetic_dataset_info(num_classes):
  """A label scheme for synthetic data: the upper half of the classes are things."""
  validation.check_positive("num_classes", num_classes, integer=True)
  things = tuple(range(num_classes // 2, num_classes)) if num_classes > 1 else ()
  return PanopticDatasetInfo(name=f"synthetic{num_classes}", num_classes=num_classes,
                             thing_classes=things, ignore_label=255, label_divisor=1000,
                             stuff_area_limit=16, nms_kernel=7)


def synthetic_panoptic_batch(batch, size, info, seed=0, max_things=3):
  """Images and panoptic labels of rectangles on two stuff regions, colour-coded by class.

  Each image has a horizontal border between two stuff classes and up to `max_things`
  thing rectangles (instances 1, 2, ... of random thing classes, possibly overlapping
  the border); every class has its own colour plus noise, so a model can learn them.

  Args:
    batch: number of samples.
    size: int side or (height, width).
    info: a PanopticDatasetInfo.
    seed: random seed.
    max_things: most thing instances per image.

  Returns:
    (images float32 [batch, H, W, 3] in [0, 255], panoptic int32 [batch, H, W]).
  """
  height, width = (size, size) if isinstance(size, int) else size
  rng = np.random.RandomState(seed)
  things = list(info.thing_classes)
  stuff = [c for c in range(info.num_classes)
           if c not in things and c != info.ignore_label] or [0]
  colours = np.random.RandomState(1234).uniform(20, 235, (info.num_classes, 3))
  images = np.zeros([batch, height, width, 3], "float32")
  labels = np.zeros([batch, height, width], "int32")
  for b in range(batch):
    border = rng.randint(height // 4, 3 * height // 4 + 1)
    top, bottom = rng.choice(stuff, 2)
    semantic = np.full([height, width], bottom, "int32")
    semantic[:border] = top
    panoptic = semantic * info.label_divisor
    if things:
      for instance in range(1, rng.randint(1, max_things + 1) + 1):
        cls = int(rng.choice(things))
        h = rng.randint(max(2, height // 6), max(3, height // 3))
        w = rng.randint(max(2, width // 6), max(3, width // 3))
        y0 = rng.randint(0, height - h)
        x0 = rng.randint(0, width - w)
        semantic[y0:y0 + h, x0:x0 + w] = cls
        panoptic[y0:y0 + h, x0:x0 + w] = cls * info.label_divisor + instance
    image = colours[semantic] + rng.normal(0, 8, (height, width, 3))
    images[b] = np.clip(image, 0, 255)
    labels[b] = panoptic
  return images, labels
