"""Recompute-grad (tfvision.layers.recompute): same gradients, one statistics update,
replayed random draws; every block family; XLA, MirroredStrategy, mixed_bfloat16."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests import harness
from tfvision.blocks import (AxialBottleneckBlock, BottleneckTransformerBlock,
                             PaleTransformerBlock, ResNeStBottleneck, ResNetBottleneckBlock,
                             WideResidualBlock)
from tfvision.layers import recompute
from tfvision.models import get_preset

# Tiny blocks with their random layers on (drop path, DropBlock), input [4, 6, 6, 8].
BLOCKS = {
    "axial": lambda rc: AxialBottleneckBlock([8, 8, 16], strides=2, num_heads=2, span=3,
                                             drop_path_rate=0.5, recompute_grad=rc),
    "wide_residual": lambda rc: WideResidualBlock([8, 16], use_se=True, drop_path_rate=0.5,
                                                  recompute_grad=rc),
    "resnest": lambda rc: ResNeStBottleneck(4, strides=2, dropblock_rate=0.3,
                                            drop_path_rate=0.5, recompute_grad=rc),
    "resnet_bottleneck": lambda rc: ResNetBottleneckBlock(4, drop_path_rate=0.5,
                                                          recompute_grad=rc),
    "bottleneck_transformer": lambda rc: BottleneckTransformerBlock(
        4, num_heads=2, drop_path_rate=0.5, recompute_grad=rc),
    "pale": lambda rc: PaleTransformerBlock(8, 2, pale_size=3, drop_path_rate=0.5,
                                            recompute_grad=rc),
}


@pytest.fixture(name="counted_draws")
def _counted_draws(monkeypatch):
  """Deterministic draws that differ from call to call (a counter seeds them): a replay
  that drew again would get other masks, and eager / XLA runs get the same ones."""
  counter = [0]

  def draw(shape, dtype):
    counter[0] += 1
    return tf.random.stateless_uniform(shape, seed=[counter[0], 18], dtype=dtype)

  monkeypatch.setattr(recompute, "_draw", draw)
  return counter


def _build(name, rc):
  tf_keras.utils.set_random_seed(0)
  block = BLOCKS[name](rc)
  block(tf.zeros([4, 6, 6, 8]))
  # Non-zero last-BN scales, so that every branch variable gets a gradient.
  for var in block.variables:
    if "gamma" in var.name:
      var.assign(tf.random.stateless_uniform(var.shape, [3, 4], 0.5, 1.5))
  forwards = []
  forward = block._forward  # pylint: disable=protected-access

  def counted(x, training):
    forwards.append(training)
    return forward(x, training)

  block._forward = counted  # pylint: disable=protected-access
  return block, forwards


def _step(block, x, jit_compile=None):
  def run(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = block(x, training=True)
      loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.cos(tf.cast(y, tf.float32)))
    return y, tape.gradient(loss, [x] + block.trainable_variables)

  if jit_compile is None:
    return run(x)
  return tf.function(run, jit_compile=jit_compile)(x)


def _compare(results, grad_atol):
  (y0, g0, s0), (y1, g1, s1) = results[False], results[True]
  np.testing.assert_allclose(y1, y0, atol=1e-5)
  for a, b in zip(g0, g1):
    np.testing.assert_allclose(b, a, atol=grad_atol, rtol=1e-4)
  for a, b in zip(s0, s1):
    np.testing.assert_allclose(b, a, atol=1e-6)  # updated once, to the same values


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_recomputed_block_gives_the_same_gradients_and_one_update(name, counted_draws):
  x = tf.random.stateless_normal([4, 6, 6, 8], seed=[1, 2])
  results = {}
  for rc in (False, True):
    block, forwards = _build(name, rc)
    before = [v.numpy() for v in block.non_trainable_variables]
    counted_draws[0] = 0
    y, grads = _step(block, x)
    assert all(g is not None for g in grads)
    after = [v.numpy() for v in block.non_trainable_variables]
    # The moving statistics moved (once: the comparison below).
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, after)) or not before
    results[rc] = (y.numpy(), [g.numpy() for g in grads], after)
    # Recomputed: the block ran twice (forward, backward), drawing its masks once.
    assert len(forwards) == (2 if rc else 1), forwards
    results[rc] += (counted_draws[0],)
  assert results[True][3] == results[False][3] > 0
  _compare({k: v[:3] for k, v in results.items()}, grad_atol=1e-5)


def test_real_random_draws_are_replayed():
  """With tf.random (seeded), the recomputed block's gradients are the plain ones."""
  x = tf.random.stateless_normal([4, 6, 6, 8], seed=[1, 2])
  results = {}
  for rc in (False, True):
    block, _ = _build("axial", rc)
    tf.random.set_seed(7)
    y, grads = _step(block, x)
    results[rc] = (y.numpy(), [g.numpy() for g in grads],
                   [v.numpy() for v in block.non_trainable_variables])
  # Some samples kept their branch, some dropped it: the masks matter here.
  _compare(results, grad_atol=1e-5)


def test_recompute_under_xla(counted_draws):
  x = tf.random.stateless_normal([4, 6, 6, 8], seed=[1, 2])
  results = {}
  for rc in (False, True):
    block, _ = _build("axial", rc)
    counted_draws[0] = 0
    y, grads = _step(block, x, jit_compile=True)
    results[rc] = (y.numpy(), [g.numpy() for g in grads],
                   [v.numpy() for v in block.non_trainable_variables])
  # XLA fuses the two graphs differently: float32 rounding of gradients up to ~20.
  _compare(results, grad_atol=5e-4)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_recompute_under_mirrored_strategy(policy, counted_draws):
  # The process's one two-CPU strategy: a second strategy over the same devices would
  # reuse its collective keys and collide with the harness's distributed tests.
  strategy = harness.two_cpu_strategy()
  tf_keras.mixed_precision.set_global_policy(policy)
  x = tf.random.stateless_normal([4, 6, 6, 8], seed=[1, 2])
  results = {}
  for rc in (False, True):
    with strategy.scope():
      block, forwards = _build("axial", rc)
    counted_draws[0] = 0

    @tf.function
    def train(inputs, block=block):
      def replica(t):
        _, grads = _step(block, t)
        return tf.distribute.get_replica_context().all_reduce("sum", grads[1:])
      return strategy.run(replica, args=(inputs,))

    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: x[2 * ctx.replica_id_in_sync_group:2 * ctx.replica_id_in_sync_group + 2])
    grads = [strategy.experimental_local_results(g)[0].numpy() for g in train(per_replica)]
    results[rc] = (np.zeros(1), grads, [v.numpy() for v in block.non_trainable_variables])
    assert len(forwards) == (4 if rc else 2)  # two replicas
  _compare(results, grad_atol=1e-4 if policy == "float32" else 1e-2)


def test_inference_and_the_building_call_do_not_recompute():
  block, forwards = _build("axial", True)
  x = tf.zeros([4, 6, 6, 8])
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = block(x, training=False)
  tape.gradient(y, x)
  assert forwards == [False]


def test_model_level_option_follows_deeplab2():
  resnet = get_preset("axial_resnet_s").build_tiny(use_axial_beyond_stride=8)
  blocks = {type(b).__name__: b.recompute_grad for b in resnet.layers
            if hasattr(b, "recompute_grad")}
  assert blocks == {"AxialBottleneckBlock": True, "WideResidualBlock": False}
  swide = get_preset("axial_swidernet_1_1_1").build_tiny()
  assert {b.recompute_grad for b in swide.layers if hasattr(b, "recompute_grad")} == {True}
  assert swide.get_config()["recompute_grad"] == "all"
  assert resnet.get_config()["recompute_grad"] == "axial"


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_bad_recompute_option_names_the_argument(value):
  with pytest.raises(ValueError, match=f"recompute_grad={value!r}"):
    AxialBottleneckBlock([8, 8, 16], num_heads=2, recompute_grad=value)
  with pytest.raises(ValueError, match="recompute_grad"):
    get_preset("axial_resnet_s").build_tiny(recompute_grad=value)


class _Dropping(tf_keras.layers.Layer):
  """x * w, then a tf_keras Dropout: recomputed, its mask must be the forward pass's."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.recompute_grad = True
    self.dropout = tf_keras.layers.Dropout(0.5)

  def build(self, input_shape):
    self.scale = self.add_weight("scale", shape=(input_shape[-1],), initializer="ones")

  def call(self, inputs, training=None):
    return recompute.call(self, self._forward, inputs, training)

  def _forward(self, inputs, training):
    return self.dropout(inputs * self.scale, training=training)


def test_keras_dropout_inside_a_recomputed_layer_is_replayed():
  layer = _Dropping()
  x = tf.random.stateless_uniform([64, 8], [5, 6], 1.0, 2.0)
  layer(x)  # builds (not recomputed)
  with tf.GradientTape() as tape:
    y = layer(x, training=True)
    loss = tf.reduce_sum(y)
  grad = tape.gradient(loss, layer.scale)
  dropped = float(tf.reduce_mean(tf.cast(tf.equal(y, 0.0), tf.float32)))
  assert 0.2 < dropped < 0.8
  # d(sum y) / d scale = sum of x * mask / keep = sum of y (scale 1): the mask of the
  # forward pass, not a new one.
  np.testing.assert_allclose(grad.numpy(), tf.reduce_sum(y, 0).numpy(), rtol=1e-5)
  # Outside a recomputed layer Keras' own dropout runs (its RNG, its semantics).
  plain = layer.dropout(x, training=True)
  assert 0.2 < float(tf.reduce_mean(tf.cast(tf.equal(plain, 0.0), tf.float32))) < 0.8


def test_panoptic_decoder_and_heads_recompute():
  """Same gradients and statistics with decoder_recompute_grad (ASPP dropout off, so
  that both runs drop nothing; the replay of Keras dropout is tested above)."""
  entry = get_preset("panoptic_deeplab_swidernet_0.25_0.25_0.75")
  x = tf.random.stateless_uniform([2, 33, 33, 3], [7, 8], 0, 255)
  results = {}
  for rc in (False, True):
    tf_keras.utils.set_random_seed(0)
    model = entry.build_tiny(decoder_recompute_grad=rc, aspp_dropout_rate=0.0)
    decoder = model.get_layer("semantic_decoder")
    assert decoder.recompute_grad is rc and model.get_layer("offset_head").recompute_grad is rc
    calls = []
    forward = decoder._forward  # pylint: disable=protected-access
    decoder._forward = lambda inputs, training: calls.append(len(inputs)) or forward(  # pylint: disable=protected-access
        inputs, training)
    with tf.GradientTape() as tape:
      out = model(x, training=True)
      loss = tf.add_n([tf.reduce_sum(v * tf.cos(v)) for v in out.values()])
    grads = tape.gradient(loss, model.trainable_variables)
    assert calls == [3] * (2 if rc else 1)  # three endpoints in, recomputed once
    results[rc] = ([g.numpy() for g in grads],
                   [v.numpy() for v in model.non_trainable_variables])
  for a, b in zip(results[False][0], results[True][0]):
    np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)
  for a, b in zip(results[False][1], results[True][1]):
    np.testing.assert_allclose(b, a, atol=1e-6)
