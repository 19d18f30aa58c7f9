#!/usr/bin/env python3
"""Parameters and MACs of Pale Transformer variants against pale-transformer.md Tables 2, 7, 8.

    python benchmarks/pale_macs.py [--tables 2 7 8 dense]

  2      Pale-T / S / B with the 1000-class head at 224 (Table 2).
  7      Pale-T at 224 with pale size 1, 3, 5, 7, 9 in all stages (Table 7).
  8      Pale-T at 224 with the attention modes of Table 8.
  dense  Pale-T backbone (no head) at 512x2048 (ADE20K, Table 4/8) and 800x1280 (COCO,
         Table 3/8), parallel vs vanilla: the papers' whole-model FLOPs include UperNet /
         Mask R-CNN, so only the vanilla - parallel difference is comparable.

MACs are analytic, counted from the traced inference graph (tfvision/utils/flops.py):
deterministic, independent of the machine. "FLOPs" in the paper are MACs.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tfvision.models import PaleTransformerTiny, create_model  # noqa: E402
from tfvision.utils.flops import count_macs  # noqa: E402


def _params(model):
  return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def _row(label, model, shape, paper):
  macs = count_macs(model, shape)
  print(f"| {label} | {_params(model):,} | {macs / 1e9:.2f}G | {paper} |", flush=True)
  return macs


def table2():
  print("\n### Table 2: parameters (1000-class head) and MACs at 224\n")
  print("| model | params | MACs | paper (params / FLOPs) |\n|---|---:|---:|---:|")
  for name, paper in (("pale_tiny", "22M / 4.2G"), ("pale_small", "48M / 9.0G"),
                      ("pale_base", "85M / 15.6G")):
    _row(name, create_model(name, input_shape=(224, 224, 3)), (224, 224, 3), paper)


def padded_input_macs(pale, image=224, embed_dim=64, depths=(2, 2, 16, 2),
                      num_classes=1000):
  """Analytic Pale-T MACs if the whole map were padded before the q/k/v projections.

  Swin's way: pad the block's normalised input on both axes to multiples of the pale
  size, run q/k/v (3 (9c + c^2) per token, Eq. 13), attention and the projection (c^2)
  on the padded map, crop. CPE and MLP run on the real tokens.
  """
  side = (image - 3) // 4 + 1
  total, c_in, kernel = 0, 3, 7
  for index, depth in enumerate(depths):
    c = embed_dim * 2 ** index
    total += side * side * c * c_in * kernel * kernel
    padded = -(-side // pale) * pale
    tokens, padded_tokens = side * side, padded * padded
    block = (tokens * (9 * c + 8 * c * c)                  # CPE, MLP
             + padded_tokens * (27 * c + 4 * c * c)        # q, k, v, projection
             + padded_tokens * c * pale * 2 * padded)      # Eq. 14 on the padded map
    total += depth * block
    c_in, kernel = c, 3
    if index < len(depths) - 1:
      side = (side + 1) // 2
  return total + c_in * num_classes


def table7():
  print("\n### Table 7: Pale-T, pale size in all four stages, 224\n")
  print("| pale size | params | MACs | paper FLOPs | input padded before q/k/v (analytic) |")
  print("|---|---:|---:|---:|---:|")
  for size, paper in ((1, "3.8G"), (3, "4.1G"), (5, "4.4G"), (7, "4.2G"), (9, "5.4G")):
    _row(str(size), PaleTransformerTiny(pale_size=size, input_shape=(224, 224, 3)),
         (224, 224, 3), f"{paper} | {padded_input_macs(size) / 1e9:.2f}G")


def table8():
  print("\n### Table 8: Pale-T, attention mode, 224\n")
  print("| mode | params | MACs | paper FLOPs |\n|---|---:|---:|---:|")
  for mode, paper in (("axial", "3.8G"), ("cross_shaped", "4.2G"), ("vanilla", "5.4G"),
                      ("sequential", "4.2G"), ("parallel", "4.2G")):
    _row(mode, PaleTransformerTiny(mode=mode, input_shape=(224, 224, 3)), (224, 224, 3),
         paper)


def dense():
  print("\n### Pale-T backbone at detection / segmentation sizes: vanilla - parallel\n")
  print("| input | parallel MACs | vanilla MACs | difference | paper difference |")
  print("|---|---:|---:|---:|---:|")
  for (height, width), paper in (((512, 2048), "2677G - 996G = 1681G (Table 8, ADE20K)"),
                                 ((800, 1280), "668G - 306G = 362G (Table 8, COCO)")):
    shape = (height, width, 3)
    macs = {}
    for mode in ("parallel", "vanilla"):
      model = PaleTransformerTiny(mode=mode, include_top=False, input_shape=shape)
      macs[mode] = count_macs(model, shape)
    print(f"| {height}x{width} | {macs['parallel'] / 1e9:.1f}G | {macs['vanilla'] / 1e9:.1f}G "
          f"| {(macs['vanilla'] - macs['parallel']) / 1e9:.1f}G | {paper} |", flush=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--tables", nargs="+", default=["2", "7", "8", "dense"],
                      choices=["2", "7", "8", "dense"])
  args = parser.parse_args(argv)
  for table in args.tables:
    {"2": table2, "7": table7, "8": table8, "dense": dense}[table]()


if __name__ == "__main__":
  main()
