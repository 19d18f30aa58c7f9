#!/usr/bin/env python3
"""AxialResNetS against deeplab2's `axial_resnet_s`, same graph, same process.

    python benchmarks/deeplab2_axial_compare.py --deeplab2 /path/to/dir [--batch 8]
        [--size 224] [--rounds 6] [--min-seconds 60] [--train]
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/deeplab2_axial_compare.py ...  # Eigen

`--deeplab2` is a directory holding the `deeplab2` package (its source, e.g. a checkout of
google-research/deeplab2 placed at DIR/deeplab2) with its protos compiled next to them
(`python -m grpc_tools.protoc -I DIR --python_out DIR DIR/deeplab2/*.proto`); nothing of
deeplab2 is part of this repository. deeplab2 builds its layers with `tf.keras`, which
this script makes tf_keras (TF_USE_LEGACY_KERAS=1, set before TensorFlow is imported).

Both models are the backbone without a classifier at output stride 32, in deeplab2's
arrangement (no stem max-pool: tfvision `stem_max_pool=False`, deeplab2
`classification_mode=True`), so they compute the same function up to weight layout
(11,466,912 parameters each). They are built first, then timed alternately in
`--rounds` rounds (each model `--min-seconds / --rounds` per round); the script prints
each model's median round and the ratio of the medians, which is steady on a shared
machine where single numbers are not. Inference by default; `--train` times training
steps (forward + backward + SGD update; deeplab2's own recompute-grad default on
in both).
"""
import argparse
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

import run as bench  # noqa: E402  (benchmarks/run.py: timers, machine description)
from tfvision.models import AxialResNetS  # noqa: E402


def build_deeplab2(path):
  """deeplab2's axial_resnet_s backbone, imported from `path`/deeplab2."""
  sys.path.insert(0, os.path.abspath(path))
  try:
    from deeplab2.model.encoder import axial_resnet_instances  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise SystemExit(f"cannot import deeplab2 from {path!r} (need DIR/deeplab2 with its "
                     f"compiled *_pb2.py): {error}") from error
  return axial_resnet_instances.get_model("axial_resnet_s", classification_mode=True,
                                          output_stride=32)


def make_step(model, train, preprocess, output):
  """Inference or training step (SGD) of `model` on preprocess(images); `output` picks
  the backbone's last feature map from its outputs."""
  if not train:
    fn = tf.function(lambda x: output(model(preprocess(x), training=False)))
    return lambda images: fn(images).numpy()
  optimizer = tf_keras.optimizers.SGD(1e-3, momentum=0.9)

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      out = output(model(preprocess(x), training=True))
      loss = tf.reduce_mean(tf.cast(out, tf.float32) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  return lambda images: step(images).numpy()


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--deeplab2", required=True,
                      help="directory holding the deeplab2 package (protos compiled)")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--rounds", type=int, default=6)
  parser.add_argument("--min-seconds", type=float, default=60.0,
                      help="seconds per model over all rounds")
  parser.add_argument("--min-iters", type=int, default=2)
  parser.add_argument("--train", action="store_true", help="time training steps")
  args = parser.parse_args(argv)
  theirs = build_deeplab2(args.deeplab2)
  ours = AxialResNetS(include_top=False, stem_max_pool=False,
                      input_shape=(args.size, args.size, 3))
  images = tf.constant(np.random.RandomState(0).uniform(
      0, 255, (args.batch, args.size, args.size, 3)).astype("float32"))
  theirs(images[:1] / 127.5 - 1.0)
  counts = [int(sum(np.prod(v.shape) for v in m.trainable_variables))
            for m in (ours, theirs)]
  # deeplab2's encoder takes normalised images; ours normalise inside (x / 127.5 - 1).
  steps = {"tfvision AxialResNetS": make_step(ours, args.train, lambda x: x,
                                              lambda out: out["5"]),
           "deeplab2 axial_resnet_s": make_step(theirs, args.train,
                                                lambda x: x / 127.5 - 1.0,
                                                lambda out: out["backbone_output"])}
  print(f"# {bench.machine()}")
  print(f"# batch {args.batch}, size {args.size}, "
        f"{'training' if args.train else 'inference'}, backbone at output stride 32, "
        f"no stem max-pool; params {counts[0]:,d} (tfvision) / {counts[1]:,d} (deeplab2); "
        f"median of {args.rounds} interleaved rounds; load {os.getloadavg()}")
  for step in steps.values():
    for _ in range(3):  # trace, then warm up
      step(images)
  rounds = {name: [] for name in steps}
  for _ in range(args.rounds):
    for name, step in steps.items():
      rounds[name].append(bench.seconds_per_batch(
          step, images, args.min_seconds / args.rounds, args.min_iters))
  medians = {name: float(np.median(times)) for name, times in rounds.items()}
  for name, seconds in medians.items():
    print(f"{name:26s} {args.batch / seconds:8.2f} img/s  {seconds * 1e3:9.1f} ms/batch  "
          f"rounds {', '.join(f'{t * 1e3:.0f}' for t in rounds[name])} ms")
  ratio = medians["deeplab2 axial_resnet_s"] / medians["tfvision AxialResNetS"]
  print(f"tfvision / deeplab2 throughput: {ratio:.2f}x  (load {os.getloadavg()})")
  return ratio


if __name__ == "__main__":
  main()
