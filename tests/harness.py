"""The checks every registered model goes through (DESIGN.md, "The harness").

1. builds at its tiny configuration; a forward pass gives the documented shapes and
   finite values, also under `tf.function(jit_compile=True)`; with `include_top=False`
   the endpoints "2".."5" have the documented strides;
2. `get_config` -> `from_config` gives an equal config and, with copied weights, equal
   outputs; the `.keras` file format round-trips too;
   (test_harness_models.py runs 1-2 on every model and the rest on one representative
   per family layout; see its docstring for why)
3. a SavedModel (serving signature) save/load gives equal outputs;
4. TFLite conversion runs and the LiteRT interpreter matches Keras within 1e-4;
5. a training step under `MirroredStrategy` over two logical CPU devices gives every
   trainable variable a non-zero gradient and lowers the loss on a fixed batch (one
   representative per block layout, see test_harness_models.py);
6. full-size parameter counts equal the references (in each family's tests, `slow`).
Mixed precision: the tiny model also builds, runs forward and differentiates under the
`mixed_bfloat16` policy with float32, finite outputs.
"""
import json
import math
import os
import tempfile

import numpy as np
import tensorflow as tf
import tf_keras

from tfvision.models import get_preset

TFLITE_ATOL = 1e-4


def sample_images(batch, size, seed=0):
  """Deterministic float32 pixels in [0, 255], shape [batch, size, size, 3]."""
  height, width = (size, size) if isinstance(size, int) else size
  rng = np.random.RandomState(seed)
  return rng.uniform(0.0, 255.0, (batch, height, width, 3)).astype("float32")


def _flat(outputs):
  return [np.asarray(t) for t in tf.nest.flatten(outputs)]


def assert_outputs_close(actual, expected, atol, rtol=0.0, what=""):
  """Compares two (nested) outputs leaf by leaf with a scale-aware tolerance."""
  actual_flat, expected_flat = _flat(actual), _flat(expected)
  assert len(actual_flat) == len(expected_flat), what
  for a, e in zip(actual_flat, expected_flat):
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
    err = float(np.max(np.abs(a.astype("float64") - e.astype("float64")))) if e.size else 0.0
    assert err <= atol * scale + rtol * scale, f"{what}: max abs error {err} (scale {scale})"


def expected_endpoint_size(size, level, output_stride=32):
  """Spatial size of endpoint `level` for input side `size` (symmetric "same" convs)."""
  stride = min(2 ** level, output_stride)
  return math.ceil(size / stride)


def check_forward(name, batch=2, jit_compile=True, **overrides):
  """Step 1 (and XLA when `jit_compile`). Returns (model, images, outputs)."""
  entry = get_preset(name)
  model = entry.build_tiny(**overrides)
  images = sample_images(batch, entry.tiny_input_size)
  outputs = model(images, training=False)
  for leaf in _flat(outputs):
    assert np.all(np.isfinite(leaf)), f"{name}: non-finite output"
  if entry.task == "classification" and model.get_config().get("include_top", True):
    num_classes = model.get_config()["num_classes"]
    assert outputs.shape == (batch, num_classes), outputs.shape
    assert outputs.dtype == tf.float32
  if jit_compile:
    compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)
    assert_outputs_close(compiled(images), outputs, atol=1e-4, what=f"{name} XLA")
  return model, images, outputs


def check_backbone_endpoints(name, size=None, output_stride=None, **overrides):
  """Step 1 for `include_top=False`: endpoints "2".."5" at their strides."""
  entry = get_preset(name)
  kwargs = dict(include_top=False, **overrides)
  if output_stride is not None:
    kwargs["output_stride"] = output_stride
  model = entry.build_tiny(**kwargs)
  size = size or entry.tiny_input_size
  # A registered default output stride (e.g. BoTNet-S1's 16) counts like a passed one.
  output_stride = output_stride or model.get_config().get("output_stride") or 32
  outputs = model(sample_images(1, size), training=False)
  assert isinstance(outputs, dict), type(outputs)
  for level in (2, 3, 4, 5):
    key = str(level)
    assert key in outputs, f"{name}: endpoint {key} missing from {sorted(outputs)}"
    expected = expected_endpoint_size(size, level, output_stride)
    assert outputs[key].shape[1:3] == (expected, expected), (key, outputs[key].shape)
    assert tuple(model.output_specs[key][-1:]) == tuple(outputs[key].shape[-1:])
    assert np.all(np.isfinite(outputs[key].numpy()))
  return model, outputs


def check_config_roundtrip(model, images, outputs, keras_file=True, tmp_dir=None):
  """Step 2: config equality through JSON, weights copied give equal outputs.

  With `keras_file`, also saves and reloads the `.keras` format.
  """
  config = model.get_config()
  json_config = json.loads(json.dumps(config))
  clone = type(model).from_config(json_config)
  assert clone.get_config() == config, "config changed through from_config"
  clone.set_weights(model.get_weights())
  assert_outputs_close(clone(images, training=False), outputs, atol=1e-6,
                       what="from_config clone")
  if not keras_file:
    return
  tmp_dir = tmp_dir or tempfile.mkdtemp()
  path = os.path.join(tmp_dir, "model.keras")
  model.save(path)
  loaded = tf_keras.models.load_model(path)
  assert type(loaded) is type(model)
  assert_outputs_close(loaded(images, training=False), outputs, atol=1e-6,
                       what=".keras round trip")


def serving_module(model, input_signature):
  """A tf.Module holding the model's variables and one traced serving function."""
  module = tf.Module()
  module.variables_ = model.variables
  module.serve = tf.function(lambda x: model(x, training=False),
                             input_signature=input_signature)
  return module


def check_saved_model(model, images, outputs, tmp_dir=None):
  """Step 3: SavedModel with a serving signature; returns the SavedModel path."""
  tmp_dir = tmp_dir or tempfile.mkdtemp()
  path = os.path.join(tmp_dir, "saved_model")
  spec = tf.TensorSpec([None] + list(images.shape[1:]), tf.float32, name="image")
  module = serving_module(model, [spec])
  tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
  loaded = tf.saved_model.load(path)
  restored = loaded.serve(tf.constant(images))
  assert_outputs_close(restored, outputs, atol=1e-5, what="SavedModel")
  signature_out = loaded.signatures["serving_default"](image=tf.constant(images))
  assert len(tf.nest.flatten(signature_out)) == len(tf.nest.flatten(outputs))
  return path


def check_tflite(model, images, outputs, atol=TFLITE_ATOL):
  """Step 4: float32 TFLite conversion and LiteRT parity on the first image."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  spec = tf.TensorSpec([1] + list(images.shape[1:]), tf.float32, name="image")
  module = serving_module(model, [spec])
  concrete = module.serve.get_concrete_function()
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
  flatbuffer = converter.convert()
  interpreter = Interpreter(model_content=flatbuffer)
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images[:1])
  interpreter.invoke()
  expected = [leaf[:1] for leaf in _flat(outputs)]
  details = interpreter.get_output_details()
  got = [interpreter.get_tensor(d["index"]) for d in details]
  # LiteRT may order outputs differently; match them by shape, then by closeness.
  assert len(got) == len(expected), (len(got), len(expected))
  for want in expected:
    candidates = [g for g in got if g.shape == want.shape]
    assert candidates, f"no TFLite output with shape {want.shape}"
    errors = [float(np.max(np.abs(g - want))) for g in candidates]
    scale = max(1.0, float(np.max(np.abs(want))))
    assert min(errors) <= atol * scale, f"TFLite max abs error {min(errors)}"
  return flatbuffer


def check_mixed_bfloat16(name, batch=2, **overrides):
  """Builds under mixed_bfloat16; forward and gradients finite; logits float32."""
  entry = get_preset(name)
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    model = entry.build_tiny(**overrides)
    images = sample_images(batch, entry.tiny_input_size)
    with tf.GradientTape() as tape:
      outputs = model(images, training=True)
      loss = tf.add_n([tf.reduce_mean(tf.cast(t, tf.float32) ** 2)
                       for t in tf.nest.flatten(outputs)])
    grads = tape.gradient(loss, model.trainable_variables)
    for leaf in tf.nest.flatten(outputs):
      assert np.all(np.isfinite(tf.cast(leaf, tf.float32).numpy()))
    if entry.task == "classification":
      assert outputs.dtype == tf.float32, outputs.dtype
    assert all(g is not None for g in grads), "a variable got no gradient under bf16"
    assert all(np.all(np.isfinite(g.numpy())) for g in grads if g is not None)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")


def classification_loss(labels, outputs):
  """Per-example softmax cross-entropy on logits."""
  return tf_keras.losses.sparse_categorical_crossentropy(labels, outputs, from_logits=True)


def _synthetic_panoptic(model, batch, size):
  from tfvision.data.panoptic import (  # pylint: disable=import-outside-toplevel
      synthetic_dataset_info, synthetic_panoptic_batch)
  info = synthetic_dataset_info(model.get_config()["num_classes"])
  return info, synthetic_panoptic_batch(batch, size, info, seed=1)[1]


def semantic_labels(model, batch, size):
  """[batch, size, size] int32 semantic maps of synthetic panoptic samples."""
  info, panoptic = _synthetic_panoptic(model, batch, size)
  return (panoptic // info.label_divisor).astype("int32")


def semantic_loss(labels, outputs):
  """Per-example pixel-averaged cross-entropy of [B, H, W, C] logits."""
  from tfvision.losses.panoptic import (  # pylint: disable=import-outside-toplevel
      semantic_segmentation_loss)
  return semantic_segmentation_loss(labels, outputs, ignore_label=255)


def panoptic_labels(model, batch, size):
  """Panoptic-DeepLab target dicts of synthetic panoptic samples."""
  from tfvision.ops.panoptic_targets import panoptic_targets  # pylint: disable=import-outside-toplevel
  info, panoptic = _synthetic_panoptic(model, batch, size)
  targets = panoptic_targets(panoptic, **info.target_kwargs())
  return {key: value.numpy() for key, value in targets.items()}


def panoptic_loss(labels, outputs):
  """Per-example Panoptic-DeepLab loss (top-k CE + 200 center MSE + 0.01 offset L1)."""
  from tfvision.losses.panoptic import PanopticDeepLabLoss  # pylint: disable=import-outside-toplevel
  return PanopticDeepLabLoss(ignore_label=255)(labels, outputs)


# Dense-prediction families register their training loss here: task -> fn(labels, outputs)
# returning per-example losses, and task -> fn(model, batch, size) making labels.
TRAINING_LOSSES = {"classification": classification_loss, "semantic": semantic_loss,
                   "panoptic": panoptic_loss}
TRAINING_LABELS = {
    "classification": lambda model, batch, size: (np.arange(batch) %
                                                   model.get_config()["num_classes"]).astype("int32"),
    "semantic": semantic_labels,
    "panoptic": panoptic_labels,
}


_STRATEGY = []


def two_cpu_strategy():
  """One MirroredStrategy over two logical CPUs per process.

  Collective instance keys are per strategy object; two strategies over the same devices
  in one process can collide, so every test shares this one (as a real program would).
  """
  if not _STRATEGY:
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2, "conftest.py must create two logical CPU devices"
    _STRATEGY.append(tf.distribute.MirroredStrategy([d.name for d in devices[:2]]))
  return _STRATEGY[0]


def wake_zero_variables(model, seed=0):
  """Gives every all-zero trainable variable small random values.

  Zero-initialised scales (the last BN of a residual branch), kernels (global context)
  and offsets leave the gradients of whatever feeds them at exactly zero for a step;
  the gradient check needs every path open.
  """
  rng = np.random.RandomState(seed)
  for variable in model.trainable_variables:
    if not np.any(variable.numpy()):
      variable.assign(rng.normal(0.0, 0.05, variable.shape).astype(variable.dtype.name))


def check_distributed_training(name, steps=6, global_batch=4, learning_rate=5e-3,
                               **overrides):
  """Step 5: MirroredStrategy over two logical CPUs: every trainable variable gets a
  non-zero gradient in the first step, and the loss decreases on a fixed batch."""
  entry = get_preset(name)
  strategy = two_cpu_strategy()
  overrides = {**entry.no_drop_path_arguments(), **overrides}
  with strategy.scope():
    model = entry.build_tiny(**overrides)
    optimizer = tf_keras.optimizers.Adam(learning_rate)
  wake_zero_variables(model)
  images = sample_images(global_batch, entry.tiny_input_size, seed=1)
  labels = TRAINING_LABELS[entry.task](model, global_batch, entry.tiny_input_size)
  loss_fn = TRAINING_LOSSES[entry.task]
  dataset = tf.data.Dataset.from_tensors((images, labels)).repeat(steps)
  dist_dataset = strategy.experimental_distribute_dataset(dataset)

  variables = model.trainable_variables

  @tf.function
  def train_step(batch):
    def replica_step(x, y):
      with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = tf.reduce_sum(loss_fn(y, out)) / global_batch
      grads = tape.gradient(loss, variables)
      missing = [v.name for v, g in zip(variables, grads) if g is None]
      assert not missing, f"{name}: variables outside the loss: {missing}"
      optimizer.apply_gradients(zip(grads, variables))
      sizes = tf.stack([tf.reduce_max(tf.abs(tf.cast(g, tf.float32))) for g in grads])
      return loss, sizes
    loss, sizes = strategy.run(replica_step, args=batch)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None), sizes

  losses = []
  for step, batch in enumerate(dist_dataset):
    loss, sizes = train_step(batch)
    losses.append(float(loss))
    if step == 0:
      largest = np.max([s.numpy() for s in strategy.experimental_local_results(sizes)], 0)
      silent = [v.name for v, size in zip(variables, largest) if size == 0]
      assert not silent, f"{name}: variables with an all-zero gradient: {silent}"
  assert all(np.isfinite(losses)), losses
  assert np.mean(losses[-2:]) < losses[0], f"{name}: loss did not decrease: {losses}"
  # Both replicas hold the same values of every mirrored variable.
  for var in model.trainable_variables[:3]:
    values = [v.numpy() for v in strategy.experimental_local_results(var)]
    assert len(values) == 2
    np.testing.assert_array_equal(values[0], values[1])
  return losses


def count_params(model):
  """Trainable parameters (what papers, deeplab2 and timm count; BN statistics excluded)."""
  return int(sum(np.prod(v.shape) for v in model.trainable_variables))
