#!/usr/bin/env python3
"""Forward time and peak memory of one attention layer: pale-shaped vs global.

    python benchmarks/pale_attention_scaling.py [--sides 56 112 224] [--channels 64]
        [--heads 2] [--pale-size 7] [--batch 1] [--max-gib 4] [--repeats 5]

One layer with C channels (C = 64, 2 heads: Pale-T's stage 1) on an s x s token map, for
s in --sides, with the same q/k/v separable convs and output projection in both cases;
only the attention region differs:

  pale    PaleShapedAttention, parallel mode (pale-transformer.md Eq. 1-3): Eq. 16,
          4hwc^2 + hwc(s_c h + s_r w + 27) MACs, logits of size N_r (s_r w)^2 per head.
  global  multi-head attention over all hw tokens: Eq. 12, 4hwc^2 + 2c(hw)^2 MACs, a
          (hw x hw) logit matrix per head.

Every configuration runs in a fresh subprocess, so its peak resident memory (getrusage
ru_maxrss) is its own; "peak memory" is that peak minus the resident memory after
TensorFlow was imported and the layer built, i.e. what the forward pass added.
Before starting a configuration, its largest attention buffers are estimated
analytically (logits, softmax output and the cast copy of the weights, float32); a
configuration estimated above --max-gib is reported as not fitting and not run (global
attention at 224x224 tokens needs a 50176 x 50176 matrix per head: 9.4 GiB each).

Timings are only meaningful on an idle machine.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GIB = 1024 ** 3


def analytic_macs(kind, side, channels, pale):
  """Eq. 12 (global) or Eq. 16 (pale, parallel) MACs for an s x s map (s padded up)."""
  hw = side * side
  if kind == "global":
    return 4 * hw * channels ** 2 + 2 * channels * hw ** 2
  padded = -(-side // pale) * pale
  # Row branch: padded_h * w queries, s_r * w keys each, c / 2 channels, for QK^T and AV;
  # the column branch is its transpose.
  attention = 2 * padded * side * channels * pale * side
  return 4 * hw * channels ** 2 + 27 * hw * channels + attention


def attention_buffer_bytes(kind, side, heads, pale, batch):
  """Largest live attention buffers: logits, softmax and its cast copy, float32."""
  if kind == "global":
    logits = heads * (side * side) ** 2
  else:
    groups = -(-side // pale)
    tokens = pale * side
    logits = 2 * (heads // 2) * groups * tokens ** 2  # row and column branches
  return 3 * 4 * batch * logits


def _rss_bytes():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def worker(kind, side, channels, heads, pale, batch, repeats):
  """Runs one configuration in this process; prints one JSON line."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.path.insert(0, ROOT)
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  # pylint: disable=import-outside-toplevel
  from tfvision.layers import PaleShapedAttention
  from tfvision.layers.pale_attention import grouped_attention, merge_heads, split_heads

  layer = PaleShapedAttention(channels, heads, pale_size=pale)
  layer(tf.zeros([1, 8, 8, channels]))

  def global_forward(x):
    q, k, v = (proj(x, training=False) for proj in (layer.query, layer.key, layer.value))
    tokens = [split_heads(tf.reshape(t, [batch, 1, side * side, channels]), heads)
              for t in (q, k, v)]
    out, _ = grouped_attention(*tokens)
    return layer.proj(tf.reshape(merge_heads(out), [batch, side, side, channels]))

  forward = tf.function(global_forward if kind == "global"
                        else lambda x: layer(x, training=False))
  x = tf.constant(np.random.RandomState(0).normal(
      size=(batch, side, side, channels)).astype("float32"))
  forward.get_concrete_function(x)
  base = _rss_bytes()
  times = []
  for _ in range(repeats + 1):
    start = time.perf_counter()
    forward(x).numpy()
    times.append(time.perf_counter() - start)
  print(json.dumps(dict(kind=kind, side=side, ms=1000 * float(np.median(times[1:])),
                        peak_mib=(_rss_bytes() - base) / 2 ** 20)))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sides", type=int, nargs="+", default=[56, 112, 224])
  parser.add_argument("--channels", type=int, default=64)
  parser.add_argument("--heads", type=int, default=2)
  parser.add_argument("--pale-size", type=int, default=7)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--max-gib", type=float, default=4.0,
                      help="skip configurations whose attention buffers exceed this")
  parser.add_argument("--kinds", nargs="+", default=["pale", "global"],
                      choices=["pale", "global"])
  parser.add_argument("--worker", nargs=2, metavar=("KIND", "SIDE"), help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    worker(args.worker[0], int(args.worker[1]), args.channels, args.heads, args.pale_size,
           args.batch, args.repeats)
    return

  print(f"# one attention layer, C = {args.channels}, {args.heads} heads, pale size "
        f"{args.pale_size}, batch {args.batch}, float32, limit {args.max_gib} GiB")
  print("| tokens | attention | MACs (analytic) | attention buffers (est.) | forward ms "
        "| peak memory added |")
  print("|---|---|---:|---:|---:|---:|")
  for side in args.sides:
    for kind in args.kinds:
      macs = analytic_macs(kind, side, args.channels, args.pale_size)
      need = attention_buffer_bytes(kind, side, args.heads, args.pale_size, args.batch)
      row = f"| {side}x{side} | {kind} | {macs / 1e9:.2f}G | {need / GIB:.2f} GiB |"
      if need > args.max_gib * GIB:
        print(f"{row} does not fit: not run (> {args.max_gib} GiB) | - |", flush=True)
        continue
      command = [sys.executable, os.path.abspath(__file__), "--worker", kind, str(side),
                 "--channels", str(args.channels), "--heads", str(args.heads),
                 "--pale-size", str(args.pale_size), "--batch", str(args.batch),
                 "--repeats", str(args.repeats)]
      result = subprocess.run(command, capture_output=True, text=True, check=False)
      lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
      if result.returncode or not lines:
        tail = (result.stderr.strip().splitlines() or ["?"])[-1]
        print(f"{row} failed: {tail[:80]} | - |", flush=True)
        continue
      measured = json.loads(lines[-1])
      print(f"{row} {measured['ms']:.1f} | {measured['peak_mib']:.0f} MiB |", flush=True)


if __name__ == "__main__":
  main()
