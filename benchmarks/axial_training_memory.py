#!/usr/bin/env python3
"""Peak memory and time of one training step: recompute-grad on / off, global / local span.

    python benchmarks/axial_training_memory.py [--size 1025x2049] [--batch 1]
        [--configs global,global+recompute,global+recompute+decoder,span65,...] [--rounds 3]

Model: Panoptic-DeepLab (tfvision defaults, 19 classes) on Axial-SWideRNet-(0.25, 0.25,
0.75) at output stride 16 (`axial_swidernet_1_1_1` with w1=0.25, w2=0.25, l=0.75; axial
blocks from stride 16 on, which attend over 65 x 129 at 1025 x 2049). A config is
"global" or "spanN" (every axial layer local with span N), optionally "+recompute"
(`recompute_grad="all"`: every residual block of the backbone recomputed in the backward
pass, as deeplab2 trains Axial-SWideRNet; without it "none") and "+decoder"
(`decoder_recompute_grad=True`: both decoders and the three heads too, which deeplab2
does not do). Same weights in every config.

One step: forward, the loss (mean squares of the three outputs: the activations to keep
do not depend on the loss), backward, SGD with momentum. Every config is built and
traced first, then the configs are run alternately in `--rounds` rounds; per round and
config the TensorFlow CPU allocator's peak (`tf.config.experimental.get_memory_info`,
reset before the step; weights, optimizer slots and the step's activations and
gradients) and the step's wall time are recorded, and the medians are printed with the
ratios to the first config. Needs several GB at 1025 x 2049; the machine is named with
its kernel path and load.
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
from tfvision.models import AxialSWideRNet, PanopticDeepLab  # noqa: E402

BACKBONE = dict(w1=0.25, w2=0.25, l=0.75)


def parse_config(text):
  """"global" / "spanN" [+recompute [+decoder]] -> (span, recompute_grad, decoder)."""
  attention, *extras = text.split("+")
  if extras not in ([], ["recompute"], ["recompute", "decoder"]):
    raise SystemExit(f"a config is global|spanN[+recompute[+decoder]], received {text!r}")
  if attention == "global":
    span = None
  elif attention.startswith("span") and attention[4:].isdigit():
    span = int(attention[4:])
  else:
    raise SystemExit(f"a config is global|spanN[+recompute[+decoder]], received {text!r}")
  return span, "all" if extras else "none", "decoder" in extras


def build(span, recompute_grad, decoder, size):
  tf_keras.utils.set_random_seed(0)
  backbone = AxialSWideRNet(**BACKBONE, include_top=False, output_stride=16, span=span,
                            recompute_grad=recompute_grad, input_shape=(size[0], size[1], 3))
  # The heads of the fast-regime Panoptic-DeepLab presets (separable convs everywhere).
  return PanopticDeepLab(backbone, num_classes=19, separable_conv="all",
                         decoder_recompute_grad=decoder, input_shape=(size[0], size[1], 3))


def train_step(model):
  optimizer = tf_keras.optimizers.SGD(1e-3, momentum=0.9)

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      out = model(x, training=True)
      loss = tf.add_n([tf.reduce_mean(tf.cast(t, tf.float32) ** 2) for t in out.values()])
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  return step


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--size", default="1025x2049", help="HxW")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--configs", default="global,global+recompute,global+recompute+decoder,"
                      "span65,span65+recompute,span65+recompute+decoder")
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args(argv)
  size = tuple(int(v) for v in args.size.split("x"))
  names = args.configs.split(",")
  print(f"# {bench.machine()}")
  print(f"# Panoptic-DeepLab + Axial-SWideRNet-(0.25, 0.25, 0.75), {size[0]}x{size[1]}, "
        f"batch {args.batch}, training step (SGD), median of {args.rounds} interleaved "
        f"rounds; load {os.getloadavg()}")
  images = tf.constant(np.random.RandomState(0).uniform(
      0, 255, (args.batch,) + size + (3,)).astype("float32"))
  steps, weights = {}, None
  for name in names:
    model = build(*parse_config(name), size)
    if weights is None:
      weights = model.get_weights()
    model.set_weights(weights)
    steps[name] = train_step(model)
    for _ in range(2):  # trace, then warm up (the first runs are slower)
      steps[name](images)
  peaks = {name: [] for name in names}
  times = {name: [] for name in names}
  for _ in range(args.rounds):
    for name in names:
      tf.config.experimental.reset_memory_stats("CPU:0")
      start = time.perf_counter()
      steps[name](images).numpy()
      times[name].append(time.perf_counter() - start)
      peaks[name].append(tf.config.experimental.get_memory_info("CPU:0")["peak"])
  base_peak = np.median(peaks[names[0]])
  base_time = np.median(times[names[0]])
  print(f"{'config':22s} {'peak MB':>9s} {'x first':>8s} {'step s':>8s} {'x first':>8s}")
  for name in names:
    peak, seconds = np.median(peaks[name]), np.median(times[name])
    print(f"{name:22s} {peak / 2**20:9.0f} {peak / base_peak:8.2f} {seconds:8.2f} "
          f"{seconds / base_time:8.2f}   rounds: "
          + ", ".join(f"{p / 2**20:.0f} MB {t:.1f} s" for p, t in zip(peaks[name],
                                                                       times[name])))
  print(f"# load {os.getloadavg()}")


if __name__ == "__main__":
  main()
