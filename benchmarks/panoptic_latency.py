#!/usr/bin/env python3
"""End-to-end Panoptic-DeepLab latency (image -> panoptic map) and post-processing alone.

    python benchmarks/panoptic_latency.py                      # Table 5 fast variants,
                                                               # 1025x2049, batch 1
    python benchmarks/panoptic_latency.py --xla                # XLA-compiled pipeline
    python benchmarks/panoptic_latency.py --postprocess-only   # post-processing per image

End-to-end is what swidernet.md Table 5 reports: uint8 pixels in, the panoptic map out,
"including all operations such as merging semantic and instance segmentation", batch 1,
single scale, no flipping, Cityscapes settings (19 classes, NMS kernel 13, stuff area
2048, 200 centers). Each timed call ends with `.numpy()` on the panoptic map, so the
device has finished. The ratio column divides each variant's time by the first one's,
next to the same ratio of Table 5's V100 times, so machines can be compared by pattern.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from tfvision.data.panoptic import CITYSCAPES_PANOPTIC  # noqa: E402
from tfvision.models import get_preset, panoptic_variant_name  # noqa: E402
from tfvision.models.panoptic_inference import PanopticInference  # noqa: E402
from tfvision.models.swidernet import FAST_VARIANTS  # noqa: E402
from tfvision.ops.panoptic_postprocess import panoptic_deeplab_postprocess  # noqa: E402

# swidernet.md Table 5, Cityscapes 1025x2049, Tesla V100-SXM2, batch 1 (ms).
TABLE5_CITYSCAPES_MS = {
    (0.25, 0.25, 0.75): 63.05, (0.25, 0.35, 0.75): 73.14, (0.25, 0.35, 1): 83.25,
    (0.25, 0.5, 1): 108.58, (0.25, 0.75, 1): 166.83,
}


def _time(fn, args, warmup, min_iters, min_seconds):
  for _ in range(warmup):
    fn(*args)["panoptic"].numpy()
  times = []
  start = time.perf_counter()
  while len(times) < min_iters or time.perf_counter() - start < min_seconds:
    begin = time.perf_counter()
    fn(*args)["panoptic"].numpy()
    times.append(time.perf_counter() - begin)
  return float(np.median(times)), float(np.mean(times)), len(times)


def synthetic_outputs(height, width, num_classes=19, centers=30, seed=0):
  """Model-like outputs: smooth logits, `centers` Gaussian peaks, offsets toward them."""
  rng = np.random.RandomState(seed)
  small = rng.normal(0, 3, (1, height // 16 + 1, width // 16 + 1, num_classes))
  logits = tf.image.resize(small.astype("float32"), (height, width))
  heat = np.zeros((height, width), "float32")
  yy, xx = np.mgrid[0:height, 0:width].astype("float32")
  points = np.stack([rng.uniform(0, height, centers), rng.uniform(0, width, centers)], 1)
  for cy, cx in points:
    y0, y1 = int(max(cy - 25, 0)), int(min(cy + 26, height))
    x0, x1 = int(max(cx - 25, 0)), int(min(cx + 26, width))
    window = np.exp(-((yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2) / 128.0)
    heat[y0:y1, x0:x1] = np.maximum(heat[y0:y1, x0:x1], window)
  offsets = rng.normal(0, 5, (1, height, width, 2)).astype("float32")
  return logits, tf.constant(heat[None, ..., None]), tf.constant(offsets)


def bench_postprocess(args, height, width):
  kwargs = CITYSCAPES_PANOPTIC.postprocess_kwargs()
  inputs = synthetic_outputs(height, width)
  for xla in (False, True):
    fn = tf.function(lambda a, b, c: panoptic_deeplab_postprocess(a, b, c, **kwargs),
                     jit_compile=xla)
    median, mean, iters = _time(fn, inputs, args.warmup, args.min_iters, args.min_seconds)
    print(f"post-processing {height}x{width} xla={xla}: median {median * 1e3:.2f} ms, "
          f"mean {mean * 1e3:.2f} ms over {iters} runs", flush=True)
    _append_json(args, dict(kind="postprocess", xla=xla, height=height, width=width,
                            median_ms=median * 1e3, mean_ms=mean * 1e3))


def bench_end_to_end(args, height, width):
  print(f"{'model':40s} {'params':>12s} {'median ms':>10s} {'mean ms':>9s} "
        f"{'ratio':>6s} {'Table 5 ms':>10s} {'T5 ratio':>8s}")
  first, first_paper = None, None
  for variant in args.variants:
    tf_keras.backend.clear_session()
    entry = get_preset(panoptic_variant_name(*variant))
    model = (entry.build_tiny(input_shape=(height, width, 3), num_classes=19) if args.tiny
             else entry.build(input_shape=(height, width, 3)))
    inference = PanopticInference(model, dataset=CITYSCAPES_PANOPTIC)
    fn = tf.function(inference.__call__, jit_compile=args.xla)
    image = tf.constant(np.random.RandomState(0).randint(
        0, 256, (args.batch, height, width, 3)).astype("uint8"))
    median, mean, _ = _time(fn, (image,), args.warmup, args.min_iters, args.min_seconds)
    paper = TABLE5_CITYSCAPES_MS.get(tuple(variant))
    first = first or median
    first_paper = first_paper or paper
    params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    print(f"{entry.name:40s} {params:12,d} {median * 1e3:10.2f} {mean * 1e3:9.2f} "
          f"{median / first:6.2f} {paper or float('nan'):10.2f} "
          f"{(paper / first_paper) if paper else float('nan'):8.2f}", flush=True)
    _append_json(args, dict(kind="end_to_end", model=entry.name, xla=args.xla,
                            batch=args.batch, height=height, width=width,
                            median_ms=median * 1e3, mean_ms=mean * 1e3, params=params,
                            policy=args.policy, tiny=args.tiny))


def _append_json(args, record):
  if args.json:
    record["device"] = ", ".join(d.name for d in tf.config.list_logical_devices()) or "?"
    with open(args.json, "a", encoding="utf-8") as handle:
      handle.write(json.dumps(record) + "\n")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--height", type=int, default=1025)
  parser.add_argument("--width", type=int, default=2049)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--xla", action="store_true", help="jit_compile the whole pipeline")
  parser.add_argument("--policy", default="float32",
                      choices=["float32", "mixed_float16", "mixed_bfloat16"])
  parser.add_argument("--variants", default="all",
                      help="'all' or e.g. '0.25,0.5,1;0.25,0.75,1'")
  parser.add_argument("--postprocess-only", action="store_true")
  parser.add_argument("--tiny", action="store_true", help="tiny models (smoke test)")
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--min-iters", type=int, default=10)
  parser.add_argument("--min-seconds", type=float, default=10.0)
  parser.add_argument("--json", default=None, help="append one JSON line per measurement")
  args = parser.parse_args(argv)
  args.variants = (list(FAST_VARIANTS) if args.variants == "all" else
                   [tuple(float(v) if "." in v else int(v) for v in group.split(","))
                    for group in args.variants.split(";")])
  tf_keras.mixed_precision.set_global_policy(args.policy)
  gpus = tf.config.list_physical_devices("GPU")
  print(f"# TF {tf.__version__}, {len(gpus)} GPU(s), policy {args.policy}, "
        f"xla={args.xla}, batch {args.batch}, {args.height}x{args.width}")
  if args.postprocess_only:
    bench_postprocess(args, args.height, args.width)
  else:
    bench_end_to_end(args, args.height, args.width)


if __name__ == "__main__":
  main()
