"""Recompute-grad (gradient checkpointing) for residual blocks and decoder layers.

deeplab2 trains its axial blocks with `axial_use_recompute_grad: True` (and SWideRNet's
conv blocks with `conv_use_recompute_grad: True`; `model/layers/axial_block_groups.py`):
the whole residual block (activation, shortcut, branch, drop path, sum) keeps only its
input for the backward pass and runs again there. `tf.recompute_grad` does the
recomputation; two things it leaves to the caller are done here:

- **Random draws are replayed.** `tf.recompute_grad` reruns the block's random ops, so a
  drop-path or DropBlock mask would differ between the forward pass and the recomputed
  one and the gradients would be wrong. deeplab2 draws the drop-path mask outside the
  block and passes it in. Here the block's layers draw through `random_uniform`, which
  records each draw in the forward pass and hands back the same tensors, in the same
  order, when the block is recomputed (tf_keras Dropout layers inside a recomputed
  block draw through it too; outside one they run unchanged).
- **Moving statistics update once.** A batch norm run with `training=True` assigns its
  moving mean and variance in `add_update`; rerun in the backward pass it would assign
  them a second time (deeplab2's `model/layers/recompute_grad.py` reruns its blocks,
  batch norms included, with the training flag on). While a block is recomputed,
  `add_update` of its layers does nothing; the recomputation still normalises with the
  batch's statistics.

Both are per thread, so replicas of `tf.distribute.MirroredStrategy` (one thread each)
do not see each other's state. Recomputation only happens for `training=True` (a
Python bool, as Keras passes it in `fit` and a custom loop passes it); at inference
there is nothing to save.
"""
import threading

import tensorflow as tf
import tf_keras

_state = threading.local()


class _Draws:
  """The random draws of one forward pass of a block, replayed when it is recomputed."""

  def __init__(self):
    self.values = []
    self.replay_index = None  # None: recording (the forward pass)

  def take(self, draw):
    if self.replay_index is None:
      value = draw()
      self.values.append(value)
      return value
    if self.replay_index >= len(self.values):
      raise RuntimeError("a recomputed block drew more random tensors than its forward "
                         "pass did")
    value = self.values[self.replay_index]
    self.replay_index += 1
    return value


def _stack():
  if not hasattr(_state, "draws"):
    _state.draws = []
    _state.recomputing = 0
  return _state


def _draw(shape, dtype):
  return tf.random.uniform(shape, dtype=dtype)


def random_uniform(shape, dtype=tf.float32):
  """`tf.random.uniform(shape)` in [0, 1); inside a recomputed block, the forward pass's
  draw. Layers with randomness in training (DropPath, DropBlock) draw through this."""
  state = _stack()
  draw = lambda: _draw(shape, dtype)
  if not state.draws:
    return draw()
  return state.draws[-1].take(draw)


def is_recomputing():
  """Whether the current thread is recomputing a block for its gradient."""
  return _stack().recomputing > 0


def _replayable_dropout(layer):
  """A call for a tf_keras Dropout layer that, inside a recomputed block, draws its mask
  through `random_uniform` (so that it is replayed); elsewhere Keras' own call runs."""
  original = layer.call

  def call(inputs, training=None):
    if not _stack().draws:
      return original(inputs, training=training)
    if not training or layer.rate == 0:
      return inputs
    keep = 1.0 - layer.rate
    shape = (tf.shape(inputs) if layer.noise_shape is None
             else layer._get_noise_shape(inputs))  # pylint: disable=protected-access
    mask = tf.floor(keep + random_uniform(shape))
    return inputs * tf.cast(mask / keep, inputs.dtype)

  return call


def _guard(layer):
  """Makes `add_update` of `layer` and its sublayers a no-op while recomputing, and its
  tf_keras Dropout layers draw replayable masks."""
  for sublayer in layer._flatten_layers(include_self=True, recursive=True):  # pylint: disable=protected-access
    if sublayer.__dict__.get("_tfvision_recompute_guard"):
      continue
    original = sublayer.add_update

    def add_update(updates, original=original):
      if not is_recomputing():
        original(updates)

    # object.__setattr__: plain attributes, not ones Keras tracks.
    object.__setattr__(sublayer, "add_update", add_update)
    if isinstance(sublayer, tf_keras.layers.Dropout):
      object.__setattr__(sublayer, "call", _replayable_dropout(sublayer))
    object.__setattr__(sublayer, "_tfvision_recompute_guard", True)


def check_flag(recompute_grad):
  """Validates a block's `recompute_grad` argument (True or False)."""
  if not isinstance(recompute_grad, bool):
    raise ValueError(f"recompute_grad must be True or False, received "
                     f"recompute_grad={recompute_grad!r}")
  return recompute_grad


def call(layer, forward, inputs, training):
  """`forward(inputs, training)`, recomputed in the backward pass when
  `layer.recompute_grad` and `training is True`.

  Args:
    layer: the block (its sublayers' moving-statistic updates are guarded).
    forward: the block's computation, forward(inputs, training) -> tensor.
    inputs: the block's input: a tensor, or a list of tensors.
    training: the Keras training flag.
  """
  if not (layer.recompute_grad and training is True):
    return forward(inputs, training)
  if not layer.built or any(not sub.built for sub in layer._flatten_layers()):  # pylint: disable=protected-access
    # Build (and create the variables) outside the custom gradient, which must not
    # create variables; deeplab2 also runs the first call without recomputation.
    return forward(inputs, training)
  _guard(layer)
  draws = _Draws()
  calls = []
  several = isinstance(inputs, (list, tuple))

  def checkpointed(*x):
    state = _stack()
    if calls:
      # The backward pass: replay the forward pass's draws, update no statistics.
      draws.replay_index = 0
      state.recomputing += 1
    calls.append(None)
    state.draws.append(draws)
    try:
      return forward(list(x) if several else x[0], True)
    finally:
      state.draws.pop()
      if draws.replay_index is not None:
        state.recomputing -= 1

  return tf.recompute_grad(checkpointed)(*(inputs if several else [inputs]))
