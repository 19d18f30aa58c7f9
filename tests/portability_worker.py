"""One training step of chosen layers and models, run in a process of its own.

    python -m tests.portability_worker --cases sac_rate2,resnest_dilated_block \
        --out results.npz [--init weights.npz]

tests/test_portability.py runs this twice, once with TensorFlow's default CPU kernels
and once with `TF_ENABLE_ONEDNN_OPTS` flipped (oneDNN off: Eigen kernels; on: oneDNN,
which runs when forced even without AVX-512), and compares the results. The kernel path
is fixed when TensorFlow starts, hence a process per path.

Every case runs in float32 and under `mixed_bfloat16`: forward in training mode, loss,
gradients of every trainable variable, one SGD update, and the loss after it. The first
process saves each case's initial weights to `--out`; the second loads them through
`--init`, so both start from identical values whatever their random streams do.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")
LEARNING_RATE = 0.05


def _mean_square(outputs):
  return tf.add_n([tf.reduce_mean(tf.cast(t, tf.float32) ** 2)
                   for t in tf.nest.flatten(outputs)])


def _layer_case(make_layer, shape):
  """A single layer on random inputs; the loss is the mean square of its outputs."""
  def build():
    layer = make_layer()
    images = np.random.RandomState(7).normal(0.0, 1.0, shape).astype("float32")
    return layer, images, None, lambda labels, outputs: _mean_square(outputs)
  return build


def _model_case(name, **overrides):
  """A registered model at its tiny size with the harness's training loss and labels."""
  def build():
    from tests import harness  # pylint: disable=import-outside-toplevel
    from tfvision.models import get_preset  # pylint: disable=import-outside-toplevel
    entry = get_preset(name)
    model = entry.build_tiny(**entry.no_drop_path_arguments(), **overrides)
    images = harness.sample_images(2, entry.tiny_input_size, seed=1)
    if overrides.get("include_top", True) is False:
      return model, images, None, lambda labels, outputs: _mean_square(outputs)
    labels = harness.TRAINING_LABELS[entry.task](model, 2, entry.tiny_input_size)
    loss_fn = harness.TRAINING_LOSSES[entry.task]
    return model, images, labels, lambda y, out: tf.reduce_mean(loss_fn(y, out))
  return build


def _demo_case():
  """The `make demo` model (its experiment's task builds it) at the demo's 96 x 96."""
  from tests import harness  # pylint: disable=import-outside-toplevel
  from tfvision.demo import EXPERIMENT  # pylint: disable=import-outside-toplevel
  from official.core import exp_factory, task_factory  # pylint: disable=import-outside-toplevel
  import tfvision.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  params = exp_factory.get_exp_config(EXPERIMENT)
  model = task_factory.get_task(params.task).build_model()
  size = params.task.model.input_size[0]
  images = harness.sample_images(2, size, seed=1)
  labels = harness.panoptic_labels(model, 2, size)
  return model, images, labels, lambda y, out: tf.reduce_mean(harness.panoptic_loss(y, out))


def _layers():
  from tfvision import layers  # pylint: disable=import-outside-toplevel
  from tfvision.blocks.resnest import ResNeStBottleneck  # pylint: disable=import-outside-toplevel
  return {
      # SAC at rate 2 (and 6); a non-zero switch so both dilated convs carry gradient.
      "sac_rate2": _layer_case(lambda: layers.SwitchableAtrousConv2D(
          8, 3, dilation_rate=2, use_bias=True), (2, 13, 13, 8)),
      # A dilated ResNeSt stage block: grouped (radix 2 x cardinality 2) atrous conv.
      "resnest_dilated_block": _layer_case(lambda: ResNeStBottleneck(
          4, dilation_rate=2, radix=2, cardinality=2, base_width=64), (2, 11, 11, 16)),
      # SWideRNet's atrous basic conv, a grouped atrous ConvNormAct, ASPP (standard and
      # separable), an atrous separable conv and a depthwise-separable projection.
      "atrous_conv": _layer_case(lambda: layers.ConvNormAct(8, 3, dilation_rate=4),
                                 (2, 12, 12, 8)),
      "grouped_atrous_conv": _layer_case(lambda: layers.ConvNormAct(
          8, 3, dilation_rate=2, groups=4), (2, 12, 12, 8)),
      "aspp": _layer_case(lambda: layers.AtrousSpatialPyramidPooling(
          8, atrous_rates=(2, 3, 5), dropout_rate=0.0), (2, 12, 12, 8)),
      "aspp_separable": _layer_case(lambda: layers.AtrousSpatialPyramidPooling(
          8, atrous_rates=(2, 3, 5), separable=True, dropout_rate=0.0), (2, 12, 12, 8)),
      "separable_atrous_conv": _layer_case(lambda: layers.SeparableConvNormAct(
          8, 3, dilation_rate=3), (2, 12, 12, 8)),
  }


def _models():
  return {
      # One per distinct block layout (tests/test_harness_models.py REPRESENTATIVES) ...
      "swidernet_0.25_0.25_0.75": _model_case("swidernet_0.25_0.25_0.75"),
      "resnest50_fast_4s2x40d": _model_case("resnest50_fast_4s2x40d"),
      "panoptic_deeplab_swidernet_0.25_0.25_0.75": _model_case(
          "panoptic_deeplab_swidernet_0.25_0.25_0.75"),
      "botnet50": _model_case("botnet50"),
      "pale_tiny": _model_case("pale_tiny"),
      "axial_swidernet_1_1_1": _model_case("axial_swidernet_1_1_1"),
      # ... the dilated layouts of the dense backbones (atrous SAC and basic blocks,
      # atrous split attention; the ASPP and decoders are in the Panoptic-DeepLab) ...
      "swidernet_os8": _model_case("swidernet_0.25_0.25_0.75", include_top=False,
                                   output_stride=8),
      "resnest_os8": _model_case("resnest50_fast_4s2x40d", include_top=False,
                                 output_stride=8),
      # ... and the model `make demo` trains.
      "demo": _demo_case,
  }


def cases():
  """Case name -> builder returning (model or layer, inputs, labels, loss_fn)."""
  return {**_layers(), **_models()}


def _initial_weights(variables, init, key):
  if init is None:
    return
  for index, variable in enumerate(variables):
    variable.assign(init[f"{key}/init/{index}"])


def run_case(name, build, policy, init=None):
  """One step of case `name` under `policy`; returns {array name: value}."""
  tf_keras.backend.clear_session()
  tf_keras.utils.set_random_seed(1234)
  tf_keras.mixed_precision.set_global_policy(policy)
  try:
    model, images, labels, loss_fn = build()
    model(images[:1], training=False)  # builds every variable
    key = f"{name}/{policy}"
    variables = model.variables
    _initial_weights(variables, init, key)
    result = {f"{key}/init/{i}": v.numpy() for i, v in enumerate(variables)}
    trainable = model.trainable_variables
    optimizer = tf_keras.optimizers.SGD(LEARNING_RATE)

    @tf.function
    def step(x, y):
      with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
      grads = tape.gradient(loss, trainable)
      optimizer.apply_gradients(zip(grads, trainable))
      return loss, grads

    loss, grads = step(tf.constant(images), labels)
    after = loss_fn(labels, model(images, training=True))
    result[f"{key}/loss"] = np.float64(loss.numpy())
    result[f"{key}/loss_after_update"] = np.float64(after.numpy())
    for index, (variable, grad) in enumerate(zip(trainable, grads)):
      if grad is None:
        raise RuntimeError(f"{name} ({policy}): no gradient for {variable.name}")
      result[f"{key}/grad/{index}"] = tf.cast(grad, tf.float32).numpy()
    return result
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cases", required=True, help="comma-separated case names")
  parser.add_argument("--out", required=True, help=".npz file to write")
  parser.add_argument("--init", default=None, help="initial weights (.npz of a first run)")
  args = parser.parse_args(argv)
  known = cases()
  names = args.cases.split(",")
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ValueError(f"unknown case(s) {unknown}, received cases={args.cases!r}; "
                     f"known: {sorted(known)}")
  init = dict(np.load(args.init)) if args.init else None
  from tfvision.layers.conv import onednn_enabled  # pylint: disable=import-outside-toplevel
  results = {"onednn": np.bool_(onednn_enabled())}
  for name in names:
    for policy in POLICIES:
      tic = time.time()
      results.update(run_case(name, known[name], policy, init))
      print(f"{name} {policy}: {time.time() - tic:.1f} s", file=sys.stderr, flush=True)
  np.savez(args.out, **results)
  return 0


if __name__ == "__main__":
  sys.exit(main())
