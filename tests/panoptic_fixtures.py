"""Hand-made panoptic label maps and the predictions a perfect model would make for them."""
import numpy as np

from tfvision.data.panoptic import PanopticDatasetInfo
from tfvision.ops.panoptic_targets import panoptic_targets

# Classes 0, 1 are stuff, 2, 3 things; ignore 255; divisor 1000.
TOY = PanopticDatasetInfo(name="toy", num_classes=4, thing_classes=(2, 3), ignore_label=255,
                          label_divisor=1000, stuff_area_limit=16, nms_kernel=7)


def toy_label(size=64):
  """Stuff 0 (top) and 1 (bottom), two touching class-2 instances, one class-3 instance."""
  label = np.zeros([size, size], "int32")
  label[size // 2:] = 1 * 1000
  # Two class-2 instances touching between columns 21 and 22; their centers (x = 14 and
  # x = 29) have their midpoint at 21.5, so even without offsets the nearest center
  # separates them exactly.
  label[8:24, 8:22] = 2 * 1000 + 1
  label[8:24, 22:37] = 2 * 1000 + 2
  label[40:56, 40:56] = 3 * 1000 + 7
  return label


def perfect_predictions(labels, info=TOY, confidence=10.0):
  """(semantic_logits, center_heatmap, offsets) that reproduce `labels` [B, H, W]."""
  labels = np.asarray(labels)
  targets = panoptic_targets(labels, **info.target_kwargs())
  semantic = np.asarray(targets["semantic"])
  semantic = np.where(semantic < info.num_classes, semantic, 0)
  logits = confidence * np.eye(info.num_classes, dtype="float32")[semantic]
  return logits, targets["center"].numpy(), targets["offsets"].numpy()


def same_segmentation(a, b, label_divisor=1000):
  """True if two panoptic maps are equal up to renaming instances within each class."""
  a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
  pairs = set(zip(a.tolist(), b.tolist()))
  return (len(pairs) == len(set(a.tolist())) == len(set(b.tolist())) and
          all(x // label_divisor == y // label_divisor for x, y in pairs))
