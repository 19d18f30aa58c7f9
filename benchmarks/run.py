#!/usr/bin/env python3
"""Benchmark runner: parameters, MACs and images/second of registered models.

    python benchmarks/run.py MODEL [MODEL ...] [--batch 8] [--size 224] [--xla] [--rounds N]

MODEL is a registry name (`tfvision.models.list_models()`) or one of the peer models
below, optionally suffixed `@SIZE` or `@SIZExBATCH` to override --size / --batch for that
model; all are measured in the same process so their numbers are comparable:

    resnet50_keras           tf_keras.applications.ResNet50 (weights=None)
    kecam:<Name>             keras_cv_attention_models.<module>.<Name>(pretrained=None),
                             e.g. kecam:resnest.ResNest50, kecam:botnet.BotNet50
                             (optional [bench] extra; run in TF_USE_LEGACY_KERAS mode)

MACs are analytic: counted from the traced inference graph (convolutions and matrix
products; see tfvision/utils/flops.py). Throughput is inference (training=False) on
random pixels after warm-up, optionally XLA-compiled; `--train` times training steps
(forward + backward + SGD update) instead.
"""
import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# keras_cv_attention_models (kecam:) builds on `tf.keras`; with TF 2.20 that is Keras 3
# unless this is set before TensorFlow is imported, and then its layers are tf_keras.
# tfvision itself imports tf_keras directly and does not depend on this setting.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from tfvision.models import create_model  # noqa: E402
from tfvision.utils.flops import count_macs, format_count  # noqa: E402


def build_peer(name, size, include_top):
  """Builds a model that is not in our registry."""
  if name == "resnet50_keras":
    return tf_keras.applications.ResNet50(
        weights=None, include_top=include_top, input_shape=(size, size, 3))
  if name.startswith("kecam:"):
    import importlib  # pylint: disable=import-outside-toplevel
    module_name, _, cls_name = name[len("kecam:"):].rpartition(".")
    module = importlib.import_module(f"keras_cv_attention_models.{module_name}")
    kwargs = dict(pretrained=None, input_shape=(size, size, 3))
    if not include_top:
      kwargs["num_classes"] = 0
    return getattr(module, cls_name)(**kwargs)
  return None


def build(name, size, include_top, output_stride):
  peer = build_peer(name, size, include_top)
  if peer is not None:
    return peer
  kwargs = dict(include_top=include_top, input_shape=(size, size, 3))
  if output_stride:
    kwargs["output_stride"] = output_stride
  return create_model(name, **kwargs)


def inference_step(model, xla):
  fn = tf.function(lambda x: model(x, training=False), jit_compile=xla)
  return lambda images: tf.nest.map_structure(lambda t: t.numpy(), fn(images))


def training_step(model, xla):
  optimizer = tf_keras.optimizers.SGD(1e-3, momentum=0.9)

  @tf.function(jit_compile=xla)
  def step(x):
    with tf.GradientTape() as tape:
      out = model(x, training=True)
      loss = tf.add_n([tf.reduce_mean(tf.cast(t, tf.float32) ** 2)
                       for t in tf.nest.flatten(out)])
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  return lambda images: step(images).numpy()


def seconds_per_batch(step, images, min_seconds, min_iters):
  """Mean seconds of `step(images)` over at least min_iters calls and min_seconds."""
  iters, start = 0, time.perf_counter()
  while iters < min_iters or time.perf_counter() - start < min_seconds:
    step(images)
    iters += 1
  return (time.perf_counter() - start) / iters


def _timed(step, images, min_seconds, min_iters):
  for _ in range(3):  # trace / compile, then warm up
    step(images)
  return seconds_per_batch(step, images, min_seconds, min_iters)


def time_inference(model, images, xla, min_seconds, min_iters):
  """Seconds per inference batch, after tracing and warm-up."""
  return _timed(inference_step(model, xla), images, min_seconds, min_iters)


def time_training(model, images, xla, min_seconds, min_iters):
  """Seconds per training step (forward, backward, SGD update), after warm-up."""
  return _timed(training_step(model, xla), images, min_seconds, min_iters)


def parse_model_spec(spec, default_size, default_batch):
  """"name@SIZExBATCH" -> (name, size, batch); the suffix parts are optional."""
  name, _, suffix = spec.partition("@")
  size, batch = default_size, default_batch
  if suffix:
    size_text, _, batch_text = suffix.partition("x")
    try:
      size = int(size_text)
      batch = int(batch_text) if batch_text else default_batch
    except ValueError:
      raise SystemExit(f"model spec must be NAME[@SIZE[xBATCH]], received {spec!r}")
  if size < 1 or batch < 1:
    raise SystemExit(f"size and batch must be >= 1, received {spec!r}")
  return name, size, batch


def machine():
  cpu = platform.processor() or ""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
      for line in handle:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  gpus = tf.config.list_physical_devices("GPU")
  return (f"{cpu} x{os.cpu_count()} cores, {kernel_path()}, TF {tf.__version__}"
          + (f", {len(gpus)} GPU(s)" if gpus else ", CPU only"))


def kernel_path():
  """The CPU's AVX-512 support and the kernel path TensorFlow runs (oneDNN or Eigen)."""
  from tfvision.layers.conv import onednn_enabled  # pylint: disable=import-outside-toplevel
  flags = ""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
      flags = next((line for line in handle if line.startswith("flags")), "")
  except OSError:
    pass
  avx512 = "AVX-512" if " avx512f" in flags else "no AVX-512"
  setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
  how = f"TF_ENABLE_ONEDNN_OPTS={setting}" if setting is not None else "TF default"
  return f"{avx512}, {'oneDNN' if onednn_enabled() else 'Eigen'} kernels ({how})"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("models", nargs="+")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--xla", action="store_true", help="jit_compile the timed function")
  parser.add_argument("--train", action="store_true", help="time training steps")
  parser.add_argument("--backbone", action="store_true",
                      help="include_top=False (endpoints) instead of the classifier")
  parser.add_argument("--output-stride", type=int, default=None)
  parser.add_argument("--min-seconds", type=float, default=10.0)
  parser.add_argument("--min-iters", type=int, default=3)
  parser.add_argument("--no-macs", action="store_true")
  parser.add_argument("--reference-macs", action="store_true",
                      help="count MACs as the reference computes them "
                           "(count_macs(training=True)): for axial models every query "
                           "of a strided pass, which our inference skips")
  parser.add_argument("--rounds", type=int, default=1,
                      help="build every model first, then time them in this many "
                           "interleaved rounds of min-seconds / rounds each and report "
                           "each model's median round (steadier on a shared machine)")
  parser.add_argument("--json", default=None, help="append one JSON line per model here")
  args = parser.parse_args(argv)
  for key, value in (("batch", args.batch), ("size", args.size), ("rounds", args.rounds)):
    if value < 1:
      parser.error(f"--{key} must be >= 1, received {value}")

  print(f"# {machine()}")
  print(f"# default batch {args.batch}, size {args.size}, xla={args.xla}, "
        f"{'training' if args.train else 'inference'}, "
        f"{'backbone' if args.backbone else 'with classifier'}"
        + (f", output_stride {args.output_stride}" if args.output_stride else "")
        + (f", median of {args.rounds} interleaved rounds" if args.rounds > 1 else "")
        + (", reference MACs" if args.reference_macs else ""))
  header = f"{'model':34s} {'params':>12s} {'MACs/img':>10s} {'img/s':>8s} {'ms/batch':>9s} {'GMAC/s':>8s}"
  print(header)
  entries = []

  def report(entry, seconds):
    spec, name, size, batch, params, macs = entry[:6]
    ips = batch / seconds
    gmacs = (macs * ips / 1e9) if macs else float("nan")
    print(f"{spec:34s} {params:12,d} {format_count(macs) if macs else '-':>10s} "
          f"{ips:8.2f} {seconds * 1e3:9.1f} {gmacs:8.1f}", flush=True)
    if args.json:
      with open(args.json, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(dict(
            model=name, params=params, macs=macs, images_per_second=ips,
            seconds_per_batch=seconds, batch=batch, size=size, xla=args.xla,
            train=args.train, backbone=args.backbone, output_stride=args.output_stride,
            rounds=args.rounds, reference_macs=args.reference_macs,
            machine=machine())) + "\n")

  for spec in args.models:
    name, size, batch = parse_model_spec(spec, args.size, args.batch)
    if args.rounds == 1:
      tf_keras.backend.clear_session()
    images = tf.constant(np.random.RandomState(0).uniform(
        0, 255, (batch, size, size, 3)).astype("float32"))
    model = build(name, size, not args.backbone, args.output_stride)
    params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    macs = None if args.no_macs else count_macs(model, (size, size, 3),
                                                training=args.reference_macs)
    step = (training_step if args.train else inference_step)(model, args.xla)
    for _ in range(3):  # trace / compile, then warm up
      step(images)
    entry = (spec, name, size, batch, params, macs, step, images)
    if args.rounds == 1:
      report(entry, seconds_per_batch(step, images, args.min_seconds, args.min_iters))
    else:
      entries.append(entry)
  if entries:
    rounds = [[] for _ in entries]
    for _ in range(args.rounds):
      for times, entry in zip(rounds, entries):
        times.append(seconds_per_batch(entry[6], entry[7], args.min_seconds / args.rounds,
                                       args.min_iters))
    for times, entry in zip(rounds, entries):
      report(entry, float(np.median(times)))


if __name__ == "__main__":
  main()
