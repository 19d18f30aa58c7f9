"""Position-sensitive axial attention: the formula, position sensitivity, span, bad input."""
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfvision.blocks import AxialBottleneckBlock
from tfvision.layers import AxialAttention2D, PositionSensitiveAxialAttention
from tfvision.layers.axial_attention import relative_position_indices


def _randomise_norms(layer, seed=0):
  """Non-trivial batch-norm parameters and statistics, so folding is really tested."""
  rng = np.random.RandomState(seed)
  for var in layer.variables:
    name = var.name.split("/")[-1]
    if name.startswith(("gamma", "moving_variance")):
      var.assign(rng.uniform(0.5, 2.0, var.shape).astype("float32"))
    elif name.startswith(("beta", "moving_mean")):
      var.assign(rng.normal(0.0, 0.5, var.shape).astype("float32"))


def _norm(x, bn, axes, batch_stats):
  """Reference batch norm of x with statistics per `axes` (the kept axes)."""
  if bn is None:
    return x
  reduce = tuple(i for i in range(x.ndim) if i not in axes)
  if batch_stats:
    mean, var = x.mean(axis=reduce, keepdims=True), x.var(axis=reduce, keepdims=True)
  else:
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    mean = bn.moving_mean.numpy().reshape(shape)
    var = bn.moving_variance.numpy().reshape(shape)
  shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
  gamma, beta = bn.gamma.numpy().reshape(shape), bn.beta.numpy().reshape(shape)
  return (x - mean) / np.sqrt(var + bn.epsilon) * gamma + beta


def window_keys(length, span):
  """[L, K] key positions each query attends to: every position (K = L), or the span-m
  window clip(o - (m - 1) / 2, 0, L - m) .. + m - 1 (the layer's docstring)."""
  if span is None or span >= length:
    return np.tile(np.arange(length), (length, 1))
  starts = np.clip(np.arange(length) - (span - 1) // 2, 0, length - span)
  return starts[:, None] + np.arange(span)[None, :]


def reference_attention(layer, x, batch_stats=False):
  """Eq. 4 of the paper, written out with loops over positions (deeplab2's norms), over
  each query's window when the layer has a span; strided outputs subsampled."""
  x = np.asarray(x, "float64")
  if layer.axis == "width":
    x = x.transpose(0, 2, 1, 3)
  batch, length, other, _ = x.shape
  heads, max_span = layer.num_heads, layer.max_span
  dk, dv = layer.key_depth // heads, layer.value_depth // heads
  qkv = _norm(x @ layer.qkv_kernel.numpy(), layer.qkv_norm, (3,), batch_stats)
  q = qkv[..., :layer.key_depth].reshape(batch, length, other, heads, dk)
  k = qkv[..., layer.key_depth:2 * layer.key_depth].reshape(batch, length, other, heads, dk)
  v = qkv[..., 2 * layer.key_depth:].reshape(batch, length, other, heads, dv)
  keys = window_keys(length, layer.span)
  terms = np.zeros((3, batch, other, heads) + keys.shape)
  value_rpe = np.zeros(keys.shape + (dv,))
  for o in range(length):
    for slot, p in enumerate(keys[o]):
      row = p - o + max_span - 1  # the relative distance p - o
      terms[0, :, :, :, o, slot] = np.sum(q[:, o] * k[:, p], -1)
      if layer.use_query_rpe:
        terms[1, :, :, :, o, slot] = q[:, o] @ layer.query_rpe.numpy()[row]
      if layer.use_key_rpe:
        terms[2, :, :, :, o, slot] = k[:, p] @ layer.key_rpe.numpy()[row]
      if layer.use_value_rpe:
        value_rpe[o, slot] = layer.value_rpe.numpy()[row]
  used = [True, layer.use_query_rpe, layer.use_key_rpe]
  stacked = np.stack([terms[i] for i in range(3) if used[i]])
  # Statistics per term and head: axes 0 and 3 of [terms, B, X, heads, L, K].
  logits = _norm(stacked, layer.similarity_norm, (0, 3), batch_stats).sum(0)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  content = np.einsum("bxnok,bokxnd->boxnd", weights, v[:, keys]).reshape(
      batch, length, other, -1)
  out = _norm(content, layer.content_output_norm, (3,), batch_stats)
  if layer.use_value_rpe:
    retrieved = np.einsum("bxnok,okd->boxnd", weights, value_rpe)
    out = out + _norm(retrieved.reshape(batch, length, other, -1),
                      layer.value_rpe_output_norm, (3,), batch_stats)
  out = out[:, ::layer.strides]
  return out.transpose(0, 2, 1, 3) if layer.axis == "width" else out


def _layer(axis="height", **kwargs):
  params = dict(key_depth=8, value_depth=12, num_heads=2, axis=axis, max_span=9)
  params.update(kwargs)
  return PositionSensitiveAxialAttention(**params)


@pytest.mark.parametrize("axis", ["height", "width"])
def test_matches_equation_4_at_inference(axis):
  x = np.random.RandomState(1).normal(size=(2, 6, 5, 4)).astype("float32")
  layer = _layer(axis)
  layer(x)
  _randomise_norms(layer)
  got = layer(x, training=False).numpy()
  np.testing.assert_allclose(got, reference_attention(layer, x), atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("axis", ["height", "width"])
def test_training_normalises_each_term_with_batch_statistics(axis):
  x = np.random.RandomState(2).normal(size=(2, 5, 7, 4)).astype("float32")
  layer = _layer(axis)
  layer(x)
  _randomise_norms(layer)
  want = reference_attention(layer, x, batch_stats=True)
  got = layer(x, training=True).numpy()
  np.testing.assert_allclose(got, want, atol=5e-4, rtol=1e-3)


def test_parameter_count_formula():
  channels, key, value, heads, span = 16, 32, 64, 8, 255
  layer = PositionSensitiveAxialAttention(key, value, heads, max_span=span)
  layer(tf.zeros([1, 3, 3, channels]))
  projection = channels * (2 * key + value) + 2 * (2 * key + value)
  norms = 3 * 2 * heads + 2 * 2 * value  # similarity norms per head, output per channel
  tables = (2 * span - 1) * (2 * key // heads + value // heads)
  assert sum(int(np.prod(v.shape)) for v in layer.trainable_variables) == (
      projection + norms + tables)


def test_relative_indices_gather_p_minus_o():
  idx = relative_position_indices(4, 6)
  assert idx.shape == (4, 4)
  assert idx[0, 0] == 5 and idx[0, 3] == 8 and idx[3, 0] == 2
  # Constant along diagonals: only p - o matters.
  for offset in range(-3, 4):
    assert len(set(np.diagonal(idx, offset).tolist())) == 1


def test_without_relative_terms_it_is_plain_content_attention():
  rng = np.random.RandomState(3)
  x = rng.normal(size=(2, 7, 3, 6)).astype("float32")
  layer = _layer("height", use_query_rpe=False, use_key_rpe=False, use_value_rpe=False,
                 norm=None)
  out = layer(x).numpy()
  qkv = x @ layer.qkv_kernel.numpy()
  q = qkv[..., :8].reshape(2, 7, 3, 2, 4)
  k = qkv[..., 8:16].reshape(2, 7, 3, 2, 4)
  v = qkv[..., 16:].reshape(2, 7, 3, 2, 6)
  logits = np.einsum("bowni,bpwni->bwnop", q, k)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  want = np.einsum("bwnop,bpwni->bowni", weights, v).reshape(2, 7, 3, 12)
  np.testing.assert_allclose(out, want, atol=1e-5)
  assert not [v for v in layer.variables if "rpe" in v.name or "norm" in v.name]


def test_content_attention_is_permutation_equivariant_position_sensitive_is_not():
  rng = np.random.RandomState(4)
  x = rng.normal(size=(1, 9, 2, 4)).astype("float32")
  order = rng.permutation(9)
  content = _layer("height", use_query_rpe=False, use_key_rpe=False, use_value_rpe=False)
  sensitive = _layer("height")
  for layer in (content, sensitive):
    layer(x)
    _randomise_norms(layer)
  # Content-only attention cannot tell where a pixel is: permuting the column permutes
  # the outputs exactly. The relative terms break this, in the way Eq. 4 says.
  np.testing.assert_allclose(content(x[:, order]).numpy(), content(x).numpy()[:, order],
                             atol=1e-5)
  moved = sensitive(x[:, order]).numpy()
  assert np.max(np.abs(moved - sensitive(x).numpy()[:, order])) > 1e-2
  np.testing.assert_allclose(moved, reference_attention(sensitive, x[:, order]),
                             atol=2e-4, rtol=1e-4)
  # A one-step shift (with wrap-around) is a permutation too: same conclusion.
  shifted = np.roll(x, 1, axis=1)
  np.testing.assert_allclose(content(shifted).numpy(), np.roll(content(x).numpy(), 1, 1),
                             atol=1e-5)
  assert np.max(np.abs(sensitive(shifted).numpy() - np.roll(sensitive(x).numpy(), 1, 1))) > 1e-2


def test_uniform_attention_averages_value_embeddings_over_relative_distances():
  """q = k = v = 0: softmax is uniform, so y_o = mean_p r^v_{p - o}, exactly the table's
  rows for distances -o .. L - 1 - o: the output encodes where o is on the axis."""
  length, span = 6, 9
  layer = _layer("width", max_span=span, norm=None)
  x = np.random.RandomState(5).normal(size=(1, 2, length, 4)).astype("float32")
  layer(x)
  layer.qkv_kernel.assign(tf.zeros_like(layer.qkv_kernel))
  out = layer(x).numpy()
  table = layer.value_rpe.numpy()
  for o in range(length):
    rows = table[span - 1 - o: span - 1 - o + length]
    want = np.tile(rows.mean(0), layer.num_heads)
    np.testing.assert_allclose(out[0, 0, o], want, atol=1e-6)
    np.testing.assert_allclose(out[0, 1, o], want, atol=1e-6)
  assert np.max(np.abs(out[0, 0, 0] - out[0, 0, length - 1])) > 1e-3


def test_constant_input_gives_position_dependent_output_only_with_relative_terms():
  x = np.ones((1, 8, 1, 4), "float32")
  sensitive, content = _layer("height"), _layer(
      "height", use_query_rpe=False, use_key_rpe=False, use_value_rpe=False)
  spread = [np.ptp(layer(x, training=False).numpy()[0, :, 0], axis=0).max()
            for layer in (sensitive, content)]
  assert spread[0] > 1e-3 and spread[1] < 1e-6


@pytest.mark.parametrize("axis", ["height", "width"])
def test_one_layer_spans_the_whole_axis(axis):
  length = 40  # far beyond any convolution's reach in one layer
  shape = (1, length, 3, 4) if axis == "height" else (1, 3, length, 4)
  x = np.random.RandomState(6).normal(size=shape).astype("float32")
  layer = _layer(axis, max_span=64)
  changed = x.copy()
  if axis == "height":
    changed[0, 0, 1] += 1.0
  else:
    changed[0, 1, 0] += 1.0
  delta = np.abs(layer(changed).numpy() - layer(x).numpy())
  if axis == "height":
    assert delta[0, length - 1, 1].max() > 1e-4  # the other end of the same column
    assert delta[0, :, [0, 2]].max() == 0.0  # other columns are untouched
  else:
    assert delta[0, 1, length - 1].max() > 1e-4
    assert delta[0, [0, 2]].max() == 0.0


def test_2d_attention_reaches_the_opposite_corner():
  x = np.random.RandomState(7).normal(size=(1, 24, 30, 8)).astype("float32")
  layer = AxialAttention2D(8, num_heads=4)
  changed = x.copy()
  changed[0, 0, 0] += 1.0
  delta = np.abs(layer(changed).numpy() - layer(x).numpy()).max(-1)
  # The height pass carries the change down column 0, the width pass along every row.
  assert delta[0, -1, -1] > 1e-5
  assert delta.min() > 0.0


@pytest.mark.parametrize("training", [False, True])
def test_2d_attention_strides_by_subsampling_after_each_pass(training):
  x = np.random.RandomState(8).normal(size=(2, 9, 7, 8)).astype("float32")
  strided = AxialAttention2D(8, strides=2, num_heads=4)
  out = strided(x)
  assert out.shape == (2, 5, 4, 16)
  _randomise_norms(strided)
  # Same weights at stride 1: height pass then subsample rows, width pass, subsample.
  # At inference the strided layer computes only the kept queries; in training it
  # computes them all (the batch statistics cover every position) and subsamples.
  full = AxialAttention2D(8, num_heads=4)
  full(x)
  full.set_weights(strided.get_weights())
  height = full.height_attention(x, training=training)[:, ::2]
  want = full.width_attention(height, training=training)[:, :, ::2]
  got = strided(x, training=training)
  np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("axis", ["height", "width"])
@pytest.mark.parametrize("norm", ["batch", None])
def test_strided_pass_computes_only_the_kept_queries(axis, norm):
  x = np.random.RandomState(9).normal(size=(2, 7, 8, 4)).astype("float32")
  strided = _layer(axis, strides=3, norm=norm)
  full = _layer(axis, norm=norm)
  full(x)
  strided(x)
  _randomise_norms(full)
  strided.set_weights(full.get_weights())
  want = full(x, training=False).numpy()
  want = want[:, ::3] if axis == "height" else want[:, :, ::3]
  got = strided(x, training=False)
  assert got.shape == want.shape == tuple(strided.compute_output_shape(x.shape))
  np.testing.assert_allclose(got.numpy(), want, atol=2e-5, rtol=1e-5)
  # The same under an unknown length (the relative indices are built in the graph).
  dynamic = tf.function(lambda t: strided(t, training=False),
                        input_signature=[tf.TensorSpec([None, None, None, 4])])
  np.testing.assert_allclose(dynamic(x).numpy(), want, atol=2e-5, rtol=1e-5)
  # Only the kept query rows of the logits exist at inference.
  graph = tf.function(lambda t: strided(t, training=False)).get_concrete_function(
      tf.TensorSpec(x.shape)).graph
  shapes = {tuple(op.outputs[0].shape) for op in graph.get_operations()
            if op.type == "Softmax"}
  assert shapes == {(2, x.shape[2] if axis == "height" else 7, 2, 3,
                     x.shape[1] if axis == "height" else 8)}


def test_span_limit_is_exact():
  layer = _layer("width", max_span=9)
  assert layer(np.zeros((1, 2, 9, 4), "float32")).shape == (1, 2, 9, 12)
  with pytest.raises(ValueError, match="max_span=9"):
    layer(np.zeros((1, 2, 10, 4), "float32"))


def test_unknown_length_is_checked_when_the_graph_runs():
  layer = _layer("height", max_span=9)
  layer.build(tf.TensorShape([None, None, None, 4]))
  fn = tf.function(lambda t: layer(t, training=False),
                   input_signature=[tf.TensorSpec([None, None, None, 4])])
  assert fn(tf.zeros([1, 9, 3, 4])).shape == (1, 9, 3, 12)
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_span"):
    fn(tf.zeros([1, 10, 3, 4]))


@pytest.mark.parametrize("kwargs, arg", [
    (dict(num_heads=3), "num_heads"), (dict(key_depth=8, value_depth=10, num_heads=4),
                                        "num_heads"),
    (dict(axis="depth"), "axis"), (dict(max_span=0), "max_span"),
    (dict(norm="layer"), "norm"), (dict(use_value_rpe=1), "use_value_rpe"),
    (dict(key_depth=0), "key_depth"), (dict(query_key_rpe_stddev=-1.0),
                                       "query_key_rpe_stddev"),
    (dict(strides=0), "strides"), (dict(strides=1.5), "strides"),
])
def test_bad_arguments_name_the_argument(kwargs, arg):
  with pytest.raises(ValueError, match=arg):
    _layer(**kwargs)


@pytest.mark.parametrize("shape", [(2, 5, 4), (1, 2, 5, 4, 3)])
def test_non_4d_input_is_rejected(shape):
  with pytest.raises(ValueError, match="input_shape"):
    _layer().build(tf.TensorShape(shape))
  with pytest.raises(ValueError, match="input_shape"):
    AxialAttention2D(8).build(tf.TensorShape(shape))


def test_axis_longer_than_span_fails_at_model_construction():
  inputs = tf_keras.Input((300, 32, 8))
  with pytest.raises(ValueError, match="max_span=255"):
    AxialAttention2D(8)(inputs)


def test_heads_must_divide_2d_depths():
  with pytest.raises(ValueError, match="num_heads"):
    AxialAttention2D(12, num_heads=8)  # key depth 12


@pytest.mark.parametrize("layer_fn", [
    lambda: _layer("width", use_key_rpe=False, weight_decay=1e-4),
    lambda: AxialAttention2D(8, strides=2, num_heads=4, key_expansion=2.0,
                             value_expansion=4.0, max_span=33),
    lambda: AxialBottleneckBlock([16, 8, 32], strides=2, num_heads=4, max_span=33,
                                 drop_path_rate=0.1, use_se=True),
])
def test_config_round_trip_with_copied_weights(layer_fn):
  x = np.random.RandomState(9).normal(size=(2, 8, 6, 4)).astype("float32")
  layer = layer_fn()
  out = layer(x, training=False)
  clone = type(layer).from_config(layer.get_config())
  clone(x)
  clone.set_weights(layer.get_weights())
  assert clone.get_config() == layer.get_config()
  np.testing.assert_allclose(clone(x, training=False).numpy(), out.numpy(), atol=1e-6)


@pytest.mark.parametrize("layer_fn", [
    lambda: AxialAttention2D(8, strides=2, num_heads=4),
    lambda: _layer("width", span=5, strides=2),  # local over 12 (one pass: compile time)
])
def test_xla_matches_eager_in_inference_and_training(layer_fn):
  x = tf.random.stateless_normal([2, 10, 12, 8], seed=[1, 2])
  layer = layer_fn()
  eager = layer(x, training=False)
  compiled = tf.function(lambda t: layer(t, training=False), jit_compile=True)
  np.testing.assert_allclose(compiled(x).numpy(), eager.numpy(), atol=1e-5)

  @tf.function(jit_compile=True)
  def grads(t):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(layer(t, training=True) ** 2)
    return tape.gradient(loss, layer.trainable_variables)

  assert all(np.all(np.isfinite(g.numpy())) for g in grads(x))


@pytest.mark.parametrize("span", [None, 5])  # global, local (axes 9 and 7)
def test_mixed_bfloat16_softmax_and_norms_in_float32(span):
  x = tf.random.stateless_normal([2, 9, 7, 8], seed=[3, 4])
  reference = AxialAttention2D(8, num_heads=4, span=span)
  want = reference(x, training=False)
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    layer = AxialAttention2D(8, num_heads=4, span=span)
    layer(x)
    layer.set_weights(reference.get_weights())
    assert all(v.dtype == tf.float32 for v in layer.variables)
    got = layer(x, training=False)
    assert got.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), want.numpy(),
                               atol=0.1 * float(tf.reduce_max(tf.abs(want))))
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.cast(layer(x, training=True), tf.float32) ** 2)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")


def test_block_starts_as_identity_on_the_activated_input():
  x = np.random.RandomState(10).normal(size=(2, 8, 8, 16)).astype("float32")
  same = AxialBottleneckBlock([16, 8, 16], num_heads=4)
  np.testing.assert_allclose(same(x, training=False).numpy(), np.maximum(x, 0.0),
                             atol=1e-6)
  strided = AxialBottleneckBlock([16, 8, 16], strides=2, num_heads=4)
  np.testing.assert_allclose(strided(x, training=False).numpy(),
                             np.maximum(x, 0.0)[:, ::2, ::2], atol=1e-6)
  projected = AxialBottleneckBlock([16, 8, 32], strides=2, num_heads=4)
  assert projected(x).shape == (2, 4, 4, 32) and projected.shortcut is not None


def test_block_bad_filters():
  with pytest.raises(ValueError, match="filters"):
    AxialBottleneckBlock([16, 8])
  with pytest.raises(ValueError, match="num_heads"):
    AxialBottleneckBlock([16, 12, 32], num_heads=8)
  with pytest.raises(ValueError, match="position_sensitive"):
    AxialBottleneckBlock([16, 8, 32], position_sensitive="yes")


# ---- local span (issue 18) -------------------------------------------------------------
@pytest.mark.parametrize("axis", ["height", "width"])
@pytest.mark.parametrize("length, span, strides", [
    (13, 5, 1),  # border and interior windows, several blocks
    (12, 3, 3),  # a strided pass: only the kept queries
    (9, 9, 1),  # span = axis: global
    (7, 11, 1),  # span > axis: global
    (19, 1, 2),  # each query attends to itself
])
def test_local_attention_equals_a_loop_over_each_window(axis, length, span, strides):
  shape = (2, length, 3, 6) if axis == "height" else (2, 3, length, 6)
  x = np.random.RandomState(length).normal(size=shape).astype("float32")
  # max_span 11 < 13 and 19: a span attends over axes longer than the tables.
  layer = _layer(axis, max_span=11, span=span, strides=strides)
  layer(x)
  _randomise_norms(layer)
  want = reference_attention(layer, x)
  np.testing.assert_allclose(layer(x, training=False).numpy(), want, atol=2e-5, rtol=1e-4)
  # An unknown length takes the same windows (the plan is built in the graph).
  dynamic = tf.function(lambda t: layer(t, training=False),
                        input_signature=[tf.TensorSpec([None, None, None, 6])])
  np.testing.assert_allclose(dynamic(x).numpy(), want, atol=2e-5, rtol=1e-4)
  # Training: batch statistics of the similarity terms over the window entries only.
  np.testing.assert_allclose(layer(x, training=True).numpy(),
                             reference_attention(layer, x, batch_stats=True),
                             atol=1e-4, rtol=1e-3)


def test_local_attention_without_norms_or_relative_terms():
  x = np.random.RandomState(11).normal(size=(1, 15, 2, 6)).astype("float32")
  for kwargs in (dict(norm=None), dict(use_key_rpe=False, use_value_rpe=False)):
    layer = _layer("height", span=7, **kwargs)
    layer(x)
    np.testing.assert_allclose(layer(x, training=False).numpy(),
                               reference_attention(layer, x), atol=2e-5, rtol=1e-4)


def test_global_attention_reproduces_the_outputs_before_local_spans():
  """tests/data/axial_global_outputs.npz was written by the code before spans existed
  (scripts/make_axial_global_fixture.py at 320acec): no span, and a span covering the
  axis, give the same outputs, in inference and in training."""
  import scripts.make_axial_global_fixture as fixture  # pylint: disable=import-outside-toplevel
  data = np.load(fixture.PATH)
  for name, args, shape in fixture.CASES:
    for span in (None, 9):
      layer = _layer(max_span=9, span=span, **args)
      layer.build(shape)
      layer.set_weights([data[f"{name}/weight{i}"] for i in range(len(layer.weights))])
      x = data[f"{name}/input"]
      # Float32 rounding only (the file was written on the oneDNN path).
      np.testing.assert_allclose(layer(x, training=False).numpy(), data[f"{name}/inference"],
                                 atol=1e-5, rtol=1e-5)
      np.testing.assert_allclose(layer(x, training=True).numpy(), data[f"{name}/training"],
                                 atol=1e-5, rtol=1e-5)


def test_same_weights_at_any_size_and_local_reach():
  layer = AxialAttention2D(8, num_heads=4, max_span=9, span=5)
  small = np.random.RandomState(13).normal(size=(1, 5, 4, 8)).astype("float32")
  # Axes up to the span: the global layer's function, with its variables.
  plain = AxialAttention2D(8, num_heads=4, max_span=9)
  plain(small)
  layer(small)
  layer.set_weights(plain.get_weights())
  np.testing.assert_array_equal(layer(small).numpy(), plain(small).numpy())
  # The same variables at 40 > max_span, which only a span can attend over.
  assert layer(np.zeros((1, 3, 40, 8), "float32")).shape == (1, 3, 40, 16)
  # One pass reaches 2 positions each side: a change at column 0 moves the queries
  # whose window holds it (columns 0 .. 2) and nothing beyond.
  width = _layer("width", max_span=9, span=5)
  x = np.random.RandomState(12).normal(size=(1, 3, 40, 6)).astype("float32")
  changed = x.copy()
  changed[0, :, 0] += 1.0
  delta = np.abs(width(changed).numpy() - width(x).numpy()).max(axis=(0, 1, 3))
  assert delta[:3].min() > 1e-5 and delta[3:].max() == 0.0


@pytest.mark.parametrize("span", [0, -3, 4, 2.0, "5", 11])
def test_bad_span_names_the_argument(span):
  with pytest.raises(ValueError, match=r"span=" + re.escape(repr(span))):
    _layer(max_span=9, span=span)
  with pytest.raises(ValueError, match="span"):
    AxialBottleneckBlock([16, 8, 32], num_heads=4, max_span=9, span=span)


def test_full_integer_int8_has_no_float_op_inside_the_attention():
  """The similarity terms are summed with ADDs (int8 in LiteRT; its ADD_N is float
  only), and the local path adds only pads, reshapes, slices and a gather of keys."""
  from tfvision.export import export_tflite  # pylint: disable=import-outside-toplevel
  inputs = tf_keras.Input((12, 12, 3))
  x = tf_keras.layers.Conv2D(8, 3, padding="same")(inputs / 255.0)
  x = AxialAttention2D(8, num_heads=2, span=5)(x)  # local: 12 > 5
  x = AxialAttention2D(4, num_heads=2)(x)  # global
  logits = tf_keras.layers.Dense(3)(tf_keras.layers.GlobalAveragePooling2D()(x))
  model = tf_keras.Model(inputs, logits)
  images = np.random.RandomState(14).uniform(0, 255, (16, 12, 12, 3)).astype("uint8")
  result = export_tflite(model, quantization="int8", representative_data=images,
                         representative_count=16)
  report = result.ops_report
  assert report.float_ops == [] and "ADD_N" not in report.ops, report.format()
  assert report.op_types["SOFTMAX"] == ["INT8"] and report.op_types["ADD"] == ["INT8"]
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  interpreter = Interpreter(model_content=result.flatbuffer)
  run = interpreter.get_signature_runner()
  got = np.concatenate([run(image=image[None].astype("float32"))["logits"]
                        for image in images])
  want = model(images.astype("float32")).numpy()
  # Calibrated int8 tracks the float model (random weights: no accuracy to compare;
  # the export parity benchmark measures top-1 agreement of trained models).
  correlation = np.corrcoef(got.ravel(), want.ravel())[0, 1]
  assert correlation > 0.99, (correlation, got, want)
