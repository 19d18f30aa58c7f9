"""Pieces shared by the tfvision tasks: model building, the optimisation step and
checkpoint loading."""
import gc

from absl import logging
import tensorflow as tf
import tf_keras

from tfvision.models.factory import build_model_from_config, norm_activation_arguments

INIT_MODULES = ("all", "backbone")


def build_dense_model(model_class, model_config, decoder_spec, weight_decay=0.0):
  """A dense meta-architecture from a task's model config.

  Args:
    model_class: `PanopticDeepLab`, `DeepLabV3` or `DeepLabV3Plus`.
    model_config: the task's model config (backbone, norm_activation, num_classes,
      input_size).
    decoder_spec: the config holding `model_class.ARCH`'s fields.
    weight_decay: Keras L2 factor (half the papers' SGD weight decay).
  """
  norm = model_config.norm_activation
  backbone = build_model_from_config(model_config.backbone, norm, weight_decay,
                                     include_top=False)
  decoder = {key: getattr(decoder_spec, key) for key in model_class.ARCH.field_names()}
  return model_class(backbone, model_config.num_classes, weight_decay=weight_decay,
                     **decoder, **norm_activation_arguments(norm))


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


RELEASE_SCHEME = "tfvision:"


def _resolve(path):
  if isinstance(path, str) and path.startswith(RELEASE_SCHEME):
    # `tfvision:<preset>/<alias>`: a released checkpoint, downloaded and converted once
    # into the weights cache (tfvision.weights.fetch).
    from tfvision.weights import api  # pylint: disable=import-outside-toplevel
    name, _, alias = path[len(RELEASE_SCHEME):].rpartition("/")
    if not name or not alias:
      raise ValueError(f"a released checkpoint is {RELEASE_SCHEME}<preset>/<alias>, e.g. "
                       f"{RELEASE_SCHEME}swidernet_sac_1_1_1/imagenet, received "
                       f"init_checkpoint={path!r}")
    path = api.fetch(name, alias)
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


def _own_weights(layer):
  return layer._trainable_weights + layer._non_trainable_weights  # pylint: disable=protected-access


def _sublayers(layer, recursive=False):
  return list(layer._flatten_layers(include_self=False, recursive=recursive))  # pylint: disable=protected-access


def _pair_weights(source, target, pairs, fresh, used, path, scope=None):
  """Pairs the weights of two layers of the same structure.

  Sublayers are matched by name; one missing among the source's direct sublayers is
  looked up by name anywhere in the same top-level block (`scope`): a switchable atrous
  conv keeps its global-context modules inside itself where it has stride 1 and beside
  its plain conv where it is strided, so the same module sits one level apart at
  another output stride.
  """
  shapes = ([tuple(w.shape) for w in _own_weights(source)],
            [tuple(w.shape) for w in _own_weights(target)])
  if shapes[0] != shapes[1]:
    raise ValueError(f"{path or target.name}: weights of shapes {shapes[0]} cannot fill "
                     f"{shapes[1]}")
  used.add(id(source))
  pairs.extend(zip(_own_weights(source), _own_weights(target)))
  sources = {layer.name: layer for layer in _sublayers(source)}
  for layer in _sublayers(target):
    name = f"{path}/{layer.name}" if path else layer.name
    match = sources.get(layer.name)
    if (match is None or id(match) in used) and scope is not None:
      found = [candidate for candidate in _sublayers(scope, recursive=True)
               if candidate.name == layer.name and id(candidate) not in used]
      match = found[0] if len(found) == 1 else None
    if match is not None:
      _pair_weights(match, layer, pairs, fresh, used, name,
                    scope=scope if scope is not None else match)
    elif layer.weights:
      fresh.append(name)


def copy_weights(source, target):
  """Copies `source`'s weights into `target`, layer by layer and sublayer by name.

  All pairs are checked before anything is assigned, so `target` is either filled or
  untouched. Returns the paths of `target`'s layers that `source` does not have.
  """
  pairs, fresh = [], []
  _pair_weights(source, target, pairs, fresh, set(), "")
  for value, variable in pairs:
    variable.assign(value)
  return fresh


def restore_backbone(model, path):
  """Restores the backbone of `model` from a classifier's (or backbone's) checkpoint.

  tfvision backbones have the same layers, in the same order, with and without the
  classification head (which comes last), so the checkpoint of an ImageNet classifier
  restores a headless model of the same spec object for object. The checkpoint is read
  strictly into a fresh headless twin (every twin variable must be found): at the
  backbone's own output stride, else at stride 32 (a classifier's; dilation keeps the
  weights, and only adds what deeplab2 adds too, e.g. the switch of a switchable atrous
  conv whose stride became a dilation). The twin's values are then copied into the
  model layer by layer (`copy_weights`), so the model is either fully initialised or
  untouched.

  Args:
    model: a dense-prediction model (its backbone sub-model is initialised) or a
      classifier (every layer but its head).
    path: a checkpoint file prefix written with `tf.train.Checkpoint(model=...)`.

  Returns:
    (restored, fresh): the number of variables restored, and the paths of the model's
    backbone layers the checkpoint cannot have (kept as initialised).
  """
  dense = any(isinstance(layer, tf_keras.Model) for layer in model.layers)
  target = backbone_of(model) if dense else model
  config = {**target.get_config(), "include_top": False}
  candidates = [config]
  if config.get("output_stride", 32) != 32:
    candidates.append({**config, "output_stride": 32})
  errors = []
  for candidate in candidates:
    source = type(target).from_config(candidate)
    # A candidate that does not fit is expected (the next one may); TensorFlow would log
    # every checkpoint value it left unread when the failed restore state is freed.
    level = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")
    failure = None
    try:
      status = tf.train.Checkpoint(model=source).read(path).expect_partial()
      status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as error:
      failure = (f"at output stride {candidate.get('output_stride', 32)}: "
                 f"{str(error)[:300]}")
    if failure is not None:
      errors.append(failure)
      del source
      gc.collect()
      tf.get_logger().setLevel(level)
      continue
    tf.get_logger().setLevel(level)
    fresh = copy_weights(source, target)
    return len(source.weights), [name for name in fresh if dense or name != "head"]
  raise ValueError(f"the checkpoint does not hold this backbone ({target.name}), "
                   f"received init_checkpoint={path!r}; {' / '.join(errors)}")


def initialize_from_checkpoint(model, init_checkpoint, modules="all"):
  """Loads a task's `init_checkpoint` (a tfvision-train checkpoint file or directory).

  Args:
    model: the task's model.
    init_checkpoint: path (a tfvision-train run, converted weights from
      `tfvision-convert`), `tfvision:<preset>/<alias>` (a released checkpoint, fetched
      into the weights cache), or None / "" for nothing.
    modules: "all" (the whole model, matching structure) or "backbone" (the backbone,
      from a checkpoint of a classifier or a model with the same backbone spec).
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
    count, fresh = restore_backbone(model, path)
    logging.info("initialised %d backbone variables from %s", count, path)
    if fresh:
      logging.info("variables of this output stride kept as initialised: %s", fresh)
  logging.info("loaded %s of the model from %s", modules, path)
