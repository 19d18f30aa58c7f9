#!/usr/bin/env python3
"""BoTNet speed against ResNet-50 and keras_cv_attention_models' BotNet50, one process.

    TF_USE_LEGACY_KERAS=1 python benchmarks/botnet_compare.py [--batch 8] [--rounds 3] [--xla]

Times inference and training steps (forward + backward + SGD update, as
benchmarks/run.py) of

    resnet50         tfvision ResNet-50 (the baseline, same blocks as BoTNet-50)
    resnet50_keras   tf_keras.applications.ResNet50
    botnet50         tfvision BoTNet-50 (c5 at stride 32, botnet.md Table 1)
    botnet_s1_50     tfvision BoTNet-S1-50 (c5 at stride 16, Sec. 4.7.1)
    kecam_botnet50   keras_cv_attention_models BotNet50(): its default strides=1 is the
                     S1 layout (20,859,176 parameters, as botnet_s1_50)
    kecam_botnet50_s2  BotNet50(strides=2): the Table 1 layout of botnet50

and prints the ratios the BoTNet issue asks for: BoTNet-50 / ResNet-50 step time
(paper, Table 1: 1.3x on TPU) and BoTNet-50 images/second over keras_cv_attention_models'
BotNet50 (target >= 1.15x), with the same-layout pairs next to it. keras_cv_attention_models
is the optional [bench] extra; without it those rows are skipped.
"""
import argparse
import os
import sys

# keras_cv_attention_models builds tf.keras models; with TF 2.20 tf.keras must be
# tf_keras, which this selects before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

import run as bench  # noqa: E402  (benchmarks/run.py: timers, machine description)
from tfvision.models import create_model  # noqa: E402

MODELS = ("resnet50", "resnet50_keras", "botnet50", "botnet_s1_50", "kecam_botnet50",
          "kecam_botnet50_s2")


def build(name, size):
  """Builds one of MODELS with its classifier at a static size (None if unavailable)."""
  shape = (size, size, 3)
  if name == "resnet50_keras":
    return tf_keras.applications.ResNet50(weights=None, input_shape=shape)
  if name.startswith("kecam_"):
    try:
      from keras_cv_attention_models import botnet  # pylint: disable=import-outside-toplevel
    except ImportError:
      return None
    strides = 2 if name.endswith("_s2") else 1
    return botnet.BotNet50(input_shape=shape, pretrained=None, strides=strides,
                           classifier_activation=None)
  return create_model(name, input_shape=shape)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--xla", action="store_true", help="jit_compile the timed functions")
  parser.add_argument("--min-seconds", type=float, default=10.0)
  parser.add_argument("--min-iters", type=int, default=3)
  parser.add_argument("--rounds", type=int, default=1,
                      help="interleaved rounds over the models; the median is reported")
  parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
  args = parser.parse_args(argv)

  print(f"# {bench.machine()}")
  print(f"# batch {args.batch}, size {args.size}, xla={args.xla}")
  images = tf.constant(np.random.RandomState(0).uniform(
      0, 255, (args.batch, args.size, args.size, 3)).astype("float32"))
  models = {}
  for name in args.models:
    model = build(name, args.size)
    if model is None:
      print(f"{name:20s} skipped (keras-cv-attention-models not installed)")
      continue
    models[name] = model
  # Rounds interleave the models, so a slow spell of a shared machine hits every model
  # instead of whichever ran then; each model reports its median over the rounds.
  rounds = {name: [] for name in models}
  for index in range(args.rounds):
    for name, model in models.items():
      infer = bench.time_inference(model, images, args.xla, args.min_seconds,
                                   args.min_iters)
      train = bench.time_training(model, images, args.xla, args.min_seconds,
                                  args.min_iters)
      rounds[name].append((infer, train))
      print(f"# round {index + 1}: {name:20s} {args.batch / infer:8.2f} "
            f"{args.batch / train:8.2f} img/s", flush=True)
  seconds = {name: tuple(float(np.median([r[i] for r in runs])) for i in range(2))
             for name, runs in rounds.items()}
  print(f"{'model':20s} {'params':>12s} {'infer img/s':>12s} {'train img/s':>12s}")
  for name, (infer, train) in seconds.items():
    params = int(sum(np.prod(v.shape) for v in models[name].trainable_variables))
    print(f"{name:20s} {params:12,d} {args.batch / infer:12.2f} {args.batch / train:12.2f}",
          flush=True)

  def ratio(a, b, index):
    if a in seconds and b in seconds:
      return seconds[a][index] / seconds[b][index]
    return float("nan")

  print()
  for index, mode in enumerate(("inference", "training")):
    print(f"{mode}: botnet50 / resnet50 step time {ratio('botnet50', 'resnet50', index):.3f}"
          f" (paper Table 1: 1.3, target <= 1.3); botnet50 / resnet50_keras "
          f"{ratio('botnet50', 'resnet50_keras', index):.3f}")
    print(f"{mode}: botnet50 speed-up over kecam BotNet50 (S1 layout) "
          f"{ratio('kecam_botnet50', 'botnet50', index):.3f} (target >= 1.15); "
          f"same layouts: botnet50 / kecam strides=2 "
          f"{ratio('kecam_botnet50_s2', 'botnet50', index):.3f}, botnet_s1_50 / kecam "
          f"{ratio('kecam_botnet50', 'botnet_s1_50', index):.3f}")


if __name__ == "__main__":
  main()
