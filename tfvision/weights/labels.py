"""The label sets of the released heads: class names by index.

    class_names("cityscapes19")[13]  -> "car"
    class_names("imagenet1k")[1]     -> "goldfish, Carassius auratus"
    synsets("imagenet1k")[1]         -> "n01443537"

ImageNet-1k's 1000 classes are in the WordNet-ID order every released classifier uses
(torchvision, timm, the ResNeSt authors); the names and IDs are read from
tensorflow-datasets (a dependency), which ships both. Cityscapes' 19 evaluation classes
are its `trainId` order, the order of deeplab2's semantic logits.
"""
import os
from typing import List

LABEL_SETS = ("cityscapes19", "imagenet1k")

# Cityscapes' 19 evaluated classes by trainId (cityscapesScripts `labels.py`).
CITYSCAPES19 = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                "truck", "bus", "train", "motorcycle", "bicycle")
CITYSCAPES_THINGS = tuple(range(11, 19))  # person .. bicycle have instances


def _check(label_set):
  if label_set not in LABEL_SETS:
    raise ValueError(f"label_set must be one of {list(LABEL_SETS)}, received "
                     f"label_set={label_set!r}")


def class_names(label_set: str) -> List[str]:
  """The class names of a label set, by output index."""
  _check(label_set)
  if label_set == "cityscapes19":
    return list(CITYSCAPES19)
  from tensorflow_datasets.datasets.siscore.labels import IMAGENET_LABELS_LIST  # pylint: disable=import-outside-toplevel
  names = list(IMAGENET_LABELS_LIST)
  if len(names) != 1000:
    raise ValueError(f"tensorflow-datasets' ImageNet class list has {len(names)} names, "
                     f"expected 1000")
  return names


def synsets(label_set: str = "imagenet1k") -> List[str]:
  """The WordNet IDs of ImageNet-1k's classes, by output index."""
  _check(label_set)
  if label_set != "imagenet1k":
    raise ValueError(f"only imagenet1k has WordNet IDs, received label_set={label_set!r}")
  import tensorflow_datasets  # pylint: disable=import-outside-toplevel
  path = os.path.join(os.path.dirname(tensorflow_datasets.__file__), "datasets",
                      "imagenet2012", "labels.txt")
  with open(path) as f:
    ids = f.read().split()
  if len(ids) != 1000:
    raise ValueError(f"{path} has {len(ids)} WordNet IDs, expected 1000")
  return ids
