#!/usr/bin/env python3
"""One axial-attention layer: local span against global attention, same process.

    python benchmarks/axial_local_span.py [--lengths 129,257,513] [--span 65]
        [--shape swidernet|deeplab_s] [--rounds 7] [--train]

A width pass of `PositionSensitiveAxialAttention` over [1, rows, L, C] for each axis
length L, global (max_span raised to L where L > 255, so that it runs at all) and with
`span`, the same weights, alternately in `--rounds` rounds; prints each one's median
milliseconds and local / global. Shapes of the axial layers the issue is about:

    swidernet   Axial-SWideRNet-(0.25, 0.25, 0.75) at output stride 16: C 512, key depth
                256, value depth 512, 8 heads, 65 rows (1025 x 2049 -> 65 x 129)
    deeplab_s   Axial-DeepLab-S's first stage: C 128, key 64, value 128, 8 heads, 64 rows

Inference folds the norms (`training=False`); `--train` times forward + backward with
batch statistics instead.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import run as bench  # noqa: E402  (benchmarks/run.py: machine description)
from tfvision.layers import PositionSensitiveAxialAttention  # noqa: E402
from tfvision.layers.axial_attention import DEFAULT_MAX_SPAN  # noqa: E402

SHAPES = {"swidernet": dict(channels=512, key_depth=256, value_depth=512, rows=65),
          "deeplab_s": dict(channels=128, key_depth=64, value_depth=128, rows=64)}


def make_step(layer, train):
  if not train:
    fn = tf.function(lambda x: layer(x, training=False))
    return lambda x: fn(x).numpy()

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(layer(x, training=True) ** 2)
    return tape.gradient(loss, layer.trainable_variables)[0]

  return lambda x: step(x).numpy()


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--lengths", default="129,257,513")
  parser.add_argument("--span", type=int, default=65)
  parser.add_argument("--shape", default="swidernet", choices=sorted(SHAPES))
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--train", action="store_true")
  args = parser.parse_args(argv)
  shape = SHAPES[args.shape]
  print(f"# {bench.machine()}")
  print(f"# width pass over [1, {shape['rows']}, L, {shape['channels']}], key / value depth "
        f"{shape['key_depth']} / {shape['value_depth']}, 8 heads; "
        f"{'training' if args.train else 'inference'}; median of {args.rounds} interleaved "
        f"rounds; load {os.getloadavg()}")
  print(f"{'L':>5s} {'global ms':>10s} {f'span {args.span} ms':>12s} {'local/global':>13s}")
  for length in (int(v) for v in args.lengths.split(",")):
    x = tf.random.stateless_normal([1, shape["rows"], length, shape["channels"]], [1, 2])
    max_span = max(DEFAULT_MAX_SPAN, length)
    layers = {}
    for span in (None, args.span):
      layer = PositionSensitiveAxialAttention(shape["key_depth"], shape["value_depth"], 8,
                                              axis="width", max_span=max_span, span=span)
      layer.build(x.shape)
      layers[span] = layer
    layers[args.span].set_weights(layers[None].get_weights())
    steps = {span: make_step(layer, args.train) for span, layer in layers.items()}
    for step in steps.values():
      step(x)
      step(x)
    times = {span: [] for span in steps}
    for _ in range(args.rounds):
      for span, step in steps.items():
        start = time.perf_counter()
        step(x)
        times[span].append(time.perf_counter() - start)
    glob, local = (np.median(times[s]) * 1e3 for s in (None, args.span))
    print(f"{length:5d} {glob:10.1f} {local:12.1f} {local / glob:13.2f}", flush=True)
  print(f"# load {os.getloadavg()}")


if __name__ == "__main__":
  main()
