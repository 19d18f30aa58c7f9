"""Pieces shared by the tfvision tasks: the optimisation step and checkpoint loading."""
from absl import logging
import tensorflow as tf
import tf_keras

INIT_MODULES = ("all", "backbone")


def minimize(loss_fn, model, optimizer, gradient_multipliers=None):
  """One optimisation step under any distribution strategy and precision policy.

  Args:
    loss_fn: () -> (loss, extras): the per-replica mean loss and anything to return.
    model: the model whose trainable variables are updated.
    optimizer: a tf_keras optimizer, possibly a LossScaleOptimizer (float16).
    gradient_multipliers: None, or {variable reference: factor} scaling those
      variables' gradients (a per-layer learning-rate multiplier for SGD, as MXNet's
      `lr_mult`, which scales the whole update including weight decay).

  Returns:
    (loss, extras). The loss is divided by the number of replicas before the
    gradients are taken, because the optimizer sums gradients over replicas.
  """
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  with tf.GradientTape() as tape:
    loss, extras = loss_fn()
    scaled = loss / replicas
    if isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
      scaled = optimizer.get_scaled_loss(scaled)
  variables = model.trainable_variables
  grads = tape.gradient(scaled, variables)
  if isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
    grads = optimizer.get_unscaled_gradients(grads)
  if gradient_multipliers:
    grads = [g * gradient_multipliers[v.ref()] if g is not None and v.ref() in
             gradient_multipliers else g for g, v in zip(grads, variables)]
  optimizer.apply_gradients(list(zip(grads, variables)))
  return loss, extras


def weighted_mean(values, weights=None):
  """Mean of per-example values [B], weighted by `weights` [B] when given (padded
  evaluation: the empty examples have weight 0)."""
  if weights is None:
    return tf.reduce_mean(values)
  weights = tf.cast(weights, values.dtype)
  return tf.math.divide_no_nan(tf.reduce_sum(values * weights), tf.reduce_sum(weights))


def _resolve(path):
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise ValueError(f"no checkpoint in the directory, received init_checkpoint={path!r}")
    return latest
  return path


def backbone_of(model):
  """The backbone sub-model of a dense-prediction model (its first nested Model)."""
  for layer in model.layers:
    if isinstance(layer, tf_keras.Model):
      return layer
  raise ValueError(f"{model.name} has no backbone sub-model")


def copy_weights_by_layer_name(source, target):
  """Copies every weighted layer of `target` from the layer of `source` with its name.

  tfvision backbones name their layers by position (stem, stage2_block1, ...), the same
  with and without the classification head and at any output stride, so an ImageNet
  classifier's weights initialise a dense-prediction backbone. Returns the count.
  """
  copied = 0
  for layer in target.layers:
    if not layer.weights:
      continue
    try:
      origin = source.get_layer(layer.name)
    except ValueError:
      raise ValueError(f"the checkpoint's model has no layer {layer.name!r} for the "
                       f"backbone {target.name!r}")
    layer.set_weights(origin.get_weights())
    copied += 1
  return copied


def initialize_from_checkpoint(model, init_checkpoint, modules="all", source_model_fn=None):
  """Loads a task's `init_checkpoint` (a tfvision-train checkpoint file or directory).

  Args:
    model: the task's model.
    init_checkpoint: path, or None / "" for nothing.
    modules: "all" (the whole model, matching structure) or "backbone" (the backbone
      of a dense model from a classification checkpoint; needs `source_model_fn`).
    source_model_fn: () -> the classification model the checkpoint was trained with.
  """
  if not init_checkpoint:
    return
  if modules not in INIT_MODULES:
    raise ValueError(f"init_checkpoint_modules must be one of {INIT_MODULES}, received "
                     f"init_checkpoint_modules={modules!r}")
  path = _resolve(init_checkpoint)
  if modules == "all":
    status = tf.train.Checkpoint(model=model).read(path)
    status.expect_partial().assert_existing_objects_matched()
  else:
    if source_model_fn is None:
      raise ValueError("init_checkpoint_modules='backbone' is not available for this task")
    source = source_model_fn()
    tf.train.Checkpoint(model=source).read(path).expect_partial()
    count = copy_weights_by_layer_name(source, backbone_of(model))
    logging.info("initialised %d backbone layers from %s", count, path)
  logging.info("loaded %s of the model from %s", modules, path)
