#!/usr/bin/env python3
"""Axial-DeepLab inference at Cityscapes size and beyond: global against local attention.

    python benchmarks/axial_deeplab_inference.py [--model axial_deeplab_s_panoptic]
        [--scales 1,1.75] [--base 1025x2049] [--span 65] [--global-max-span]

For each scale s the image side is (base - 1) * s + 1 (deeplab2's eval-scale sizes:
1025 x 2049 and 1793 x 3585), and the model (random weights, 19 classes) runs one
inference pass:

- "global": the preset as deeplab2 builds it (relative embeddings for axes up to 255):
  its stride-4 stage attends over 257 x 513 positions at 1025 x 2049, which raises;
- "global, max_span = longest axis" (`--global-max-span`, memory permitting): global
  attention with tables grown to the longest axis; the attention logits of one pass
  are [1, rows, 8, L, L] float32 per term (printed as the analytic size);
- "span N": the same weights with local attention (`span`), at any size.

Reported per run: seconds of the second call (the first traces) and the TensorFlow CPU
allocator's peak (`tf.config.experimental.get_memory_info`, reset before the call).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

import run as bench  # noqa: E402  (benchmarks/run.py: machine description)
from tfvision.models import create_model  # noqa: E402


def scaled(size, scale):
  return tuple(int((side - 1) * scale + 1) for side in size)


def logits_bytes(size):
  """Float32 bytes of one similarity term of the widest pass (stride 4, 8 heads)."""
  rows, length = ((side - 1) // 4 + 1 for side in size)
  return rows * 8 * length * length * 4


def run_once(model, size):
  fn = tf.function(lambda x: model(x, training=False))
  images = tf.random.stateless_uniform((1,) + size + (3,), [1, 2], 0, 255)
  tf.nest.map_structure(lambda t: t.numpy(), fn(images))  # trace
  tf.config.experimental.reset_memory_stats("CPU:0")
  start = time.perf_counter()
  tf.nest.map_structure(lambda t: t.numpy(), fn(images))
  seconds = time.perf_counter() - start
  return seconds, tf.config.experimental.get_memory_info("CPU:0")["peak"]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", default="axial_deeplab_s_panoptic")
  parser.add_argument("--base", default="1025x2049", help="HxW at scale 1")
  parser.add_argument("--scales", default="1,1.75")
  parser.add_argument("--span", type=int, default=65)
  parser.add_argument("--global-max-span", action="store_true",
                      help="also run global attention with max_span = the longest axis")
  args = parser.parse_args(argv)
  base = tuple(int(v) for v in args.base.split("x"))
  print(f"# {bench.machine()}")
  print(f"# {args.model}, random weights, batch 1, inference; load {os.getloadavg()}")
  print(f"{'size':>11s} {'attention':28s} {'result':>40s}")
  configs = [("global (max_span 255)", {})]
  if args.global_max_span:
    configs.append(("global, max_span = axis", "grow"))
  configs.append((f"span {args.span}", dict(span=args.span)))
  weights = None
  for scale in (float(v) for v in args.scales.split(",")):
    size = scaled(base, scale)
    label = f"{size[0]}x{size[1]}"
    for name, backbone in configs:
      if backbone == "grow":
        backbone = dict(max_span=max((side - 1) // 4 + 1 for side in size))
      tf_keras.utils.set_random_seed(0)
      try:
        model = create_model(args.model, num_classes=19, backbone_kwargs=backbone)
        if weights is not None and "max_span" not in backbone:
          model.set_weights(weights)
        seconds, peak = run_once(model, size)
        if weights is None and "max_span" not in backbone:
          weights = model.get_weights()
        result = f"{seconds:7.1f} s, peak {peak / 2**30:6.2f} GiB"
      except (ValueError, tf.errors.OpError, MemoryError) as error:
        lines = str(error).strip().splitlines()
        message = next((line.strip() for line in lines if "max_span" in line), lines[0])
        message = message[:140]
        result = f"fails: {type(error).__name__}: {message}"
      if name.startswith("global"):
        result += f" [one logits term: {logits_bytes(size) / 2**30:.2f} GiB]"
      print(f"{label:>11s} {name:28s} {result}", flush=True)
      tf_keras.backend.clear_session()
  print(f"# load {os.getloadavg()}")


if __name__ == "__main__":
  main()
