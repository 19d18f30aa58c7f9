#!/usr/bin/env python3
"""Parameters (by component) and MACs of Panoptic-DeepLab / DeepLab models.

    python benchmarks/panoptic_params.py table3            # swidernet.md Table 3 rows
    python benchmarks/panoptic_params.py table5 --macs     # Table 5 fast variants + M-Adds

Parameters are trainable variables (BN gamma/beta included, moving statistics not), as
deeplab2 and the papers count them. MACs are analytic (tfvision/utils/flops.py):
convolutions and matrix products of one inference pass at the given input size.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from tfvision.models import PanopticDeepLabSWideRNet  # noqa: E402
from tfvision.models.swidernet import FAST_VARIANTS  # noqa: E402
from tfvision.utils.flops import count_macs  # noqa: E402

COCO_CLASSES = 134  # deeplab2 layout: 133 classes + void channel 0
CITYSCAPES_CLASSES = 19


def _count(variables):
  return int(sum(np.prod(v.shape) for v in variables))


def breakdown(model):
  """Trainable parameters per top-level component of a PanopticDeepLab model."""
  parts = {}
  for layer in model.layers:
    count = _count(layer.trainable_variables)
    if not count:
      continue
    if hasattr(layer, "aspp"):
      aspp = _count(layer.aspp.trainable_variables)
      parts[f"{layer.name}.aspp"] = aspp
      parts[f"{layer.name}.fusion"] = count - aspp
    else:
      parts[layer.name] = count
  parts["total"] = _count(model.trainable_variables)
  return parts


TABLE3 = [
    # (label, SWideRNet kwargs, separable_conv, multi_grid, paper params M, M-Adds B)
    ("WR-41 + MG", dict(use_se=False, sac_beyond_stride=0), "none", (1, 2, 4), 147.32, 655.66),
    ("WR-41", dict(use_se=False, sac_beyond_stride=0), "none", None, 147.32, 659.02),
    ("+ SAC", dict(use_se=False), "none", None, 151.26, 680.68),
    ("+ SAC + SE", dict(), "none", None, 168.77, 680.79),
    ("+ SAC + SE + Sep-Conv", dict(), "all", None, 136.92, 499.16),
]

# swidernet.md Table 5: M-Adds (B) at 641x641 (COCO) and 1025x2049 (Cityscapes).
TABLE5_MADDS = {
    (0.25, 0.25, 0.75): (31.67, 151.97), (0.25, 0.35, 0.75): (47.13, 229.49),
    (0.25, 0.35, 1): (64.98, 319.14), (0.25, 0.5, 1): (116.37, 576.83),
    (0.25, 0.75, 1): (240.59, 1199.85),
}


def table3(macs):
  for label, kwargs, sep, grid, paper, paper_madds in TABLE3:
    tf_keras.backend.clear_session()
    backbone_kwargs = dict(kwargs)
    if grid:
      backbone_kwargs["multi_grid"] = list(grid)
    model = PanopticDeepLabSWideRNet(1, 1, 1, num_classes=COCO_CLASSES, separable_conv=sep,
                                     backbone_kwargs=backbone_kwargs)
    parts = breakdown(model)
    line = f"{label:24s} params {parts['total'] / 1e6:8.3f}M (paper {paper}M)"
    if macs:
      value = count_macs(model, (641, 641, 3))
      line += f"  MACs@641 {value / 1e9:8.2f}B (paper {paper_madds}B)"
    print(line, flush=True)
    print("    " + ", ".join(f"{k}={v:,}" for k, v in parts.items()), flush=True)


def table5(macs):
  for variant in FAST_VARIANTS:
    for dataset, classes, size in (("coco", COCO_CLASSES, (641, 641)),
                                   ("cityscapes", CITYSCAPES_CLASSES, (1025, 2049))):
      tf_keras.backend.clear_session()
      model = PanopticDeepLabSWideRNet(*variant, num_classes=classes, separable_conv="all")
      line = f"SWideRNet-{variant} {dataset:10s} params {_count(model.trainable_variables):,}"
      if macs:
        value = count_macs(model, size + (3,))
        paper = TABLE5_MADDS[variant][0 if dataset == "coco" else 1]
        line += f"  MACs@{size[0]}x{size[1]} {value / 1e9:8.2f}B (paper {paper}B)"
      print(line, flush=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("which", choices=["table3", "table5"])
  parser.add_argument("--macs", action="store_true", help="also count MACs")
  args = parser.parse_args(argv)
  (table3 if args.which == "table3" else table5)(args.macs)


if __name__ == "__main__":
  main()
