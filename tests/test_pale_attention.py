"""Pale-shaped attention: receptive field, padding, modes, cost, serialisation, bad input."""
import itertools

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfvision.layers import (ConditionalPositionEncoding, PaleShapedAttention,
                             SeparableConvProjection, pale_attention)
from tfvision.layers.pale_attention import check_heads, check_pale_size
from tfvision.utils.flops import count_macs


def _rand(shape, seed=0):
  return np.random.RandomState(seed).normal(size=shape).astype("float32")


# ----------------------------------------------------------------------------------------
# A brute-force reference: every query's key set written out token by token.
# ----------------------------------------------------------------------------------------

def _attend(query, keys, values, heads):
  """Softmax attention of one query [C] over keys / values [n, C], per head."""
  channels = query.shape[0]
  dim = channels // heads
  out = np.zeros(channels)
  for head in range(heads):
    part = slice(head * dim, (head + 1) * dim)
    logits = keys[:, part] @ query[part] * dim ** -0.5
    weights = np.exp(logits - logits.max())
    out[part] = (weights / weights.sum()) @ values[:, part]
  return out


def _key_sets(height, width, rows, cols, mode, direction):
  """mode -> list of (channel slice, heads divisor, key predicate(i, j) -> set test)."""
  n_r, n_c = -(-height // rows), -(-width // cols)
  if mode in ("parallel", "axial", "cross_shaped"):
    if mode == "axial":  # one row / one column: N_r = h, N_c = w
      n_r, n_c = height, width
    if mode == "cross_shaped":
      row_set = lambda i, j: lambda y, x: y // rows == i // rows
      col_set = lambda i, j: lambda y, x: x // cols == j // cols
    else:
      row_set = lambda i, j: lambda y, x: y % n_r == i % n_r
      col_set = lambda i, j: lambda y, x: x % n_c == j % n_c
    return [("first", 2, row_set), ("second", 2, col_set)]
  if direction == "row":
    return [("all", 1, lambda i, j: lambda y, x: y % n_r == i % n_r)]
  return [("all", 1, lambda i, j: lambda y, x: x % n_c == j % n_c)]


def reference_attention(q, k, v, heads, pale_size, mode, direction="row"):
  """Pale attention computed query by query from explicit key sets (no padding)."""
  batch, height, width, channels = q.shape
  rows, cols = check_pale_size(pale_size)
  out = np.zeros(q.shape)
  coords = list(itertools.product(range(height), range(width)))
  half = channels // 2
  parts = {"first": slice(0, half), "second": slice(half, channels), "all": slice(None)}
  for b, (i, j) in itertools.product(range(batch), coords):
    if mode == "vanilla":
      # Pale p: rows y = p (mod N) and columns x = p (mod N); mean over the token's pales.
      n = max(-(-height // rows), -(-width // cols))
      outs = []
      for pale in sorted({i % n, j % n}):
        keys = [(y, x) for y, x in coords if y % n == pale or x % n == pale]
        outs.append(_attend(q[b, i, j], np.array([k[b, y, x] for y, x in keys]),
                            np.array([v[b, y, x] for y, x in keys]), heads))
      out[b, i, j] = np.mean(outs, axis=0)
      continue
    for part_name, divisor, key_set in _key_sets(height, width, rows, cols, mode,
                                                 direction):
      part = parts[part_name]
      keys = [(y, x) for y, x in coords if key_set(i, j)(y, x)]
      out[b, i, j, part] = _attend(q[b, i, j, part],
                                   np.array([k[b, y, x, part] for y, x in keys]),
                                   np.array([v[b, y, x, part] for y, x in keys]),
                                   heads // divisor)
  return out


CASES = [
    # (height, width, pale_size, mode, direction): divisible and padded sizes.
    (6, 6, 3, "parallel", "row"),
    (7, 5, 3, "parallel", "row"),
    (5, 8, (2, 3), "parallel", "row"),
    (6, 6, 3, "vanilla", "row"),
    (5, 8, (2, 3), "vanilla", "row"),
    (2, 3, 7, "vanilla", "row"),
    (7, 9, 2, "cross_shaped", "row"),
    (5, 4, 3, "axial", "row"),
    (7, 5, 3, "sequential", "row"),
    (7, 5, 3, "sequential", "column"),
]


@pytest.mark.parametrize("height,width,pale_size,mode,direction", CASES)
def test_matches_brute_force_reference_static_and_dynamic(height, width, pale_size, mode,
                                                          direction):
  channels, heads = 8, 2
  q, k, v = (_rand((2, height, width, channels), seed) for seed in range(3))
  want = reference_attention(q, k, v, heads, pale_size, mode, direction)
  got = pale_attention(q, k, v, heads, pale_size, mode, direction).numpy()
  np.testing.assert_allclose(got, want, atol=2e-6)
  # Unknown spatial sizes: the padding and masking path always runs. On divisible sizes
  # it must be a no-op; on the others it must give the same result as the static path.
  spec = tf.TensorSpec([None, None, None, channels])
  dynamic = tf.function(lambda a, b, c: pale_attention(a, b, c, heads, pale_size, mode,
                                                       direction),
                        input_signature=[spec] * 3)
  np.testing.assert_allclose(dynamic(q, k, v).numpy(), got, atol=1e-6)


def _identity_value_layer(channels, heads, pale_size, mode="parallel"):
  """A PaleShapedAttention whose queries are 0 (uniform attention) and v = proj = id."""
  layer = PaleShapedAttention(channels, heads, pale_size=pale_size, mode=mode)
  layer(tf.zeros([1, 4, 4, channels]))
  eye = np.eye(channels, dtype="float32")
  layer.query.pointwise.kernel.assign(np.zeros_like(eye))
  layer.query.pointwise.bias.assign(np.zeros(channels, "float32"))
  centre = np.zeros((3, 3, channels, 1), "float32")
  centre[1, 1] = 1.0
  layer.value.depthwise.depthwise_kernel.assign(centre)
  bn = layer.value.bn
  bn.moving_variance.assign(np.full(channels, 1.0 - bn.epsilon, "float32"))
  layer.value.pointwise.kernel.assign(eye)
  layer.value.pointwise.bias.assign(np.zeros(channels, "float32"))
  layer.proj.kernel.assign(eye)
  layer.proj.bias.assign(np.zeros(channels, "float32"))
  return layer


@pytest.mark.parametrize("height,width", [(9, 12), (10, 8)])
def test_uniform_attention_output_is_the_mean_over_the_tokens_pale(height, width):
  """With uniform attention, out(i, j) = mean over its interlaced rows / columns only."""
  channels, pale = 8, 3
  layer = _identity_value_layer(channels, 2, pale)
  x = _rand((1, height, width, channels))
  out = layer(x, training=False).numpy()[0]
  n_r, n_c = -(-height // pale), -(-width // pale)
  half = channels // 2
  for i, j in itertools.product(range(height), range(width)):
    # Row branch: the s_r interlaced rows i mod N_r, i mod N_r + N_r, ... (all columns);
    # column branch: the s_c interlaced columns. Padded rows/columns never count.
    group_rows = [y for y in range(height) if y % n_r == i % n_r]
    group_cols = [c for c in range(width) if c % n_c == j % n_c]
    assert i in group_rows and len(group_rows) <= pale
    np.testing.assert_allclose(out[i, j, :half], x[0, group_rows, :, :half].mean((0, 1)),
                               atol=1e-5)
    np.testing.assert_allclose(out[i, j, half:], x[0, :, group_cols, half:].mean((0, 1)),
                               atol=1e-5)


def test_a_token_depends_on_exactly_its_pale():
  """Gradients of out(i, j) w.r.t. keys and values vanish outside the pale, not inside."""
  height, width, pale, channels = 8, 10, 3, 8
  q, k, v = (tf.constant(_rand((1, height, width, channels), s)) for s in range(3))
  n_r, n_c = -(-height // pale), -(-width // pale)
  half = channels // 2
  for i, j in [(0, 0), (5, 7), (7, 9)]:
    with tf.GradientTape(persistent=True) as tape:
      tape.watch([k, v])
      out = pale_attention(q, k, v, 2, pale)
      row_out = tf.reduce_sum(out[0, i, j, :half])
      col_out = tf.reduce_sum(out[0, i, j, half:])
    rows = np.arange(height)[:, None] % n_r == i % n_r
    cols = np.arange(width)[None, :] % n_c == j % n_c
    for target, region, part in ((row_out, np.broadcast_to(rows, (height, width)),
                                  slice(None, half)),
                                 (col_out, np.broadcast_to(cols, (height, width)),
                                  slice(half, None))):
      for source in (k, v):
        grad = np.abs(tape.gradient(target, source).numpy()[0])
        per_token = grad[..., part].sum(-1)
        assert np.all(per_token[~region] == 0.0), (i, j)
        assert np.all(per_token[region] > 0.0), (i, j)
        # The other branch's channels never influence this half.
        other = slice(half, None) if part.start is None else slice(None, half)
        assert np.all(grad[..., other] == 0.0)


@pytest.mark.parametrize("mode", ["parallel", "vanilla", "cross_shaped", "sequential"])
def test_padded_keys_get_exactly_zero_weight(mode):
  height, width, channels = 7, 10, 8
  q, k, v = (_rand((2, height, width, channels), s) for s in range(3))
  _, weights = pale_attention(q, k, v, 2, 3, mode, return_weights=True)
  assert weights
  for weight, valid in weights:
    weight = weight.numpy()
    valid = valid.numpy()  # [1, G, L]
    assert valid.min() == 0.0, "this size must need padding"
    padded = np.broadcast_to((valid == 0)[:, :, None, None, :], weight.shape)
    assert np.all(weight[padded] == 0.0)
    np.testing.assert_allclose(weight.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(weight))


@pytest.mark.parametrize("mode", ["parallel", "vanilla"])
def test_padding_machinery_is_a_no_op_on_divisible_input(mode):
  """Unknown sizes force the pad / mask / crop path; on a divisible map it changes nothing."""
  q, k, v = (_rand((2, 14, 21, 8), s) for s in range(3))
  pale = (7, 7) if mode == "parallel" else (2, 3)   # vanilla: 14 / 2 = 21 / 3 = 7 pales
  static = pale_attention(q, k, v, 2, pale, mode).numpy()
  spec = tf.TensorSpec([None, None, None, 8])
  dynamic = tf.function(lambda a, b, c: pale_attention(a, b, c, 2, pale, mode,
                                                       return_weights=True),
                        input_signature=[spec] * 3)
  out, weights = dynamic(q, k, v)
  np.testing.assert_allclose(out.numpy(), static, atol=1e-6)
  assert all(valid.numpy().min() == 1.0 for _, valid in weights)


def test_divisible_input_needs_no_padding_and_returns_all_keys_valid():
  q, k, v = (_rand((1, 6, 9, 8), s) for s in range(3))
  _, weights = pale_attention(q, k, v, 2, 3, "parallel", return_weights=True)
  assert all(valid.numpy().min() == 1.0 for _, valid in weights)
  # Row groups: N_r = 2 groups of 3 * 9 tokens; column groups: N_c = 3 of 6 * 3.
  assert weights[0][0].shape == (1, 2, 1, 27, 27)
  assert weights[1][0].shape == (1, 3, 1, 18, 18)


def test_uniform_vanilla_attention_averages_the_two_pales():
  channels, pale, size = 8, 2, 6
  layer = _identity_value_layer(channels, 2, pale, mode="vanilla")
  x = _rand((1, size, size, channels))
  out = layer(x, training=False).numpy()[0]
  n = size // pale
  for i, j in itertools.product(range(size), range(size)):
    means = []
    for p in sorted({i % n, j % n}):
      members = [(y, c) for y in range(size) for c in range(size) if y % n == p or c % n == p]
      assert len(members) == pale * size * 2 - pale * pale  # s_r w + s_c h - s_r s_c
      means.append(np.mean([x[0, y, c] for y, c in members], axis=0))
    np.testing.assert_allclose(out[i, j], np.mean(means, axis=0), atol=1e-5)


def _global_attention(q, k, v, heads):
  """Plain multi-head attention over all h * w tokens (numpy, per query)."""
  b, h, w, c = q.shape
  flat = [t.reshape(b, h * w, c) for t in (q, k, v)]
  out = np.array([[_attend(flat[0][n, t], flat[1][n], flat[2][n], heads)
                   for t in range(h * w)] for n in range(b)])
  return out.reshape(b, h, w, c)


def test_one_group_covering_the_map_is_global_attention():
  """Stage 4 at 224 (7x7, pale 7): half the heads per branch = global attention, H heads.

  This is the CSWin head split (`num_heads // 2` per branch) at work; with H heads per
  branch it would not hold.
  """
  q, k, v = (_rand((2, 7, 7, 16), s) for s in range(3))
  want = _global_attention(q, k, v, 4)
  for mode in ("parallel", "vanilla", "cross_shaped"):
    np.testing.assert_allclose(pale_attention(q, k, v, 4, 7, mode).numpy(), want, atol=1e-5)


def test_axial_is_parallel_with_pale_size_one():
  q, k, v = (_rand((1, 5, 6, 8), s) for s in range(3))
  np.testing.assert_allclose(pale_attention(q, k, v, 2, 4, "axial").numpy(),
                             pale_attention(q, k, v, 2, 1, "parallel").numpy(), atol=1e-6)


def test_interlaced_groups_differ_from_contiguous_stripes():
  q, k, v = (_rand((1, 6, 6, 8), s) for s in range(3))
  pale = pale_attention(q, k, v, 2, 3, "parallel").numpy()
  stripes = pale_attention(q, k, v, 2, 3, "cross_shaped").numpy()
  assert np.abs(pale - stripes).max() > 1e-3


def _layer_macs(layer, height, width, channels):
  inputs = tf_keras.Input((height, width, channels))
  return count_macs(tf_keras.Model(inputs, layer(inputs)), (height, width, channels))


@pytest.mark.parametrize("height,width,pale", [(56, 56, 7), (28, 42, 7), (14, 14, 7)])
def test_parallel_cost_is_eq16_exactly(height, width, pale):
  """Eq. 16: 4hwc^2 + hwc(s_c h + s_r w + 27) MACs (divisible sizes)."""
  channels = 64
  macs = _layer_macs(PaleShapedAttention(channels, 2, pale), height, width, channels)
  hwc = height * width * channels
  assert macs == 4 * hwc * channels + hwc * (pale * height + pale * width + 27)


def test_cost_order_of_table_7_and_8():
  """vanilla > parallel = sequential = cross-shaped > axial; pale size 9 > 7 (56x56)."""
  size, channels = 56, 64

  def cost(**kwargs):
    kwargs.setdefault("pale_size", 7)
    return _layer_macs(PaleShapedAttention(channels, 2, **kwargs), size, size, channels)

  parallel = cost()
  vanilla = cost(mode="vanilla")
  # vanilla: N pales of L tokens, 2 N L^2 c attention MACs (module docstring).
  n, length = size // 7, 2 * 7 * size - 49
  assert vanilla - parallel == 2 * n * length ** 2 * channels - size * size * channels * 14 * size
  assert cost(mode="sequential") == parallel == cost(mode="cross_shaped")
  assert cost(mode="axial") < parallel < vanilla
  assert cost(pale_size=9) > parallel


def _scaled_attention_model(mode):
  inputs = tf_keras.Input((None, None, 16))
  model = tf_keras.Model(inputs, PaleShapedAttention(16, 4, 3, mode=mode)(inputs))
  # Give the projections weight so the outputs are O(1), not O(0.02^2).
  model.set_weights([w * 25.0 if w.ndim == 2 else w for w in model.get_weights()])
  return model


@pytest.mark.parametrize("mode", ["parallel", "vanilla", "cross_shaped", "sequential"])
def test_xla_parity_on_padded_input(mode):
  model = _scaled_attention_model(mode)
  x = _rand((1, 10, 7, 16))
  want = model(x).numpy()
  assert np.abs(want).max() > 0.1
  xla = tf.function(lambda t: model(t), jit_compile=True)
  np.testing.assert_allclose(xla(x).numpy(), want, atol=1e-4)


def test_vanilla_tflite_parity_on_padded_input():
  """The vanilla pale's diagonal slicing converts (the harness covers the parallel mode)."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  model = _scaled_attention_model("vanilla")
  x = _rand((1, 10, 7, 16))
  want = model(x).numpy()
  serve = tf.function(lambda t: model(t), input_signature=[tf.TensorSpec(x.shape)])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [serve.get_concrete_function()], model)
  interpreter = Interpreter(model_content=converter.convert())
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
  interpreter.invoke()
  got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, np.abs(want).max()))


def test_mixed_bfloat16_softmax_in_float32_and_padding_still_exact():
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    layer = PaleShapedAttention(16, 4, 3)
    x = _rand((2, 7, 8, 16))
    with tf.GradientTape() as tape:
      out = layer(x, training=True)
      loss = tf.reduce_mean(tf.cast(out, tf.float32) ** 2)
    assert out.dtype == tf.bfloat16
    grads = tape.gradient(loss, layer.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    _, weights = layer.attend(tf.constant(x), return_weights=True)
    for weight, valid in weights:
      assert weight.dtype == tf.float32
      padded = np.broadcast_to((valid.numpy() == 0)[:, :, None, None, :], weight.shape)
      assert padded.any() and np.all(weight.numpy()[padded] == 0.0)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")


def test_int8_keeps_padded_attention_close_to_float():
  """Full-integer int8 of padded pale attention: the mask must not set the logits' range.

  An additive -1e9 mask made every real logit quantize to one value (uniform attention,
  relative error ~1 after the softmax); masking by renormalisation keeps the error at
  int8 precision.
  """
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  model = _scaled_attention_model("parallel")
  x = _rand((1, 10, 7, 16))
  serve = tf.function(lambda t: model(t), input_signature=[tf.TensorSpec(x.shape)])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [serve.get_concrete_function()], model)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = lambda: ([_rand(x.shape, seed)] for seed in range(1, 17))
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  interpreter = Interpreter(model_content=converter.convert())
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
  interpreter.invoke()
  got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  want = model(x).numpy()
  relative = np.sqrt(np.mean((got - want) ** 2)) / np.std(want)
  assert relative < 0.1, relative


def _roundtrip(layer, inputs):
  out = layer(inputs, training=False)
  config = layer.get_config()
  clone = type(layer).from_config(config)
  clone(inputs)
  clone.set_weights(layer.get_weights())
  assert clone.get_config() == config
  np.testing.assert_allclose(clone(inputs, training=False).numpy(), out.numpy(), atol=1e-6)


def test_layer_configs_round_trip():
  x = _rand((2, 5, 7, 16))
  _roundtrip(PaleShapedAttention(16, 4, (2, 3), mode="sequential",
                                 sequential_direction="column", qkv_bias=False), x)
  _roundtrip(PaleShapedAttention(16, 2, 3, mode="vanilla"), x)
  _roundtrip(SeparableConvProjection(12, use_bias=False), x)
  _roundtrip(ConditionalPositionEncoding(), x)


def test_projection_is_depthwise_bn_pointwise_with_cvt_parameter_count():
  layer = SeparableConvProjection(32)
  layer(tf.zeros([1, 4, 4, 16]))
  # depthwise 3x3 (no bias) + BN (gamma, beta) + pointwise 16 -> 32 with bias.
  trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
  assert trainable == 9 * 16 + 2 * 16 + 16 * 32 + 32
  assert layer.bn.momentum == 0.9 and layer.bn.epsilon == 1e-5


def test_any_input_size_including_tiny_maps():
  layer = PaleShapedAttention(8, 2, 7)
  for shape in [(1, 1, 1, 8), (1, 2, 9, 8), (1, 15, 4, 8)]:
    out = layer(_rand(shape), training=False)
    assert out.shape == shape and np.all(np.isfinite(out.numpy()))


@pytest.mark.parametrize("kwargs,name", [
    (dict(pale_size=0), "pale_size"),
    (dict(pale_size=(3, 0)), "pale_size"),
    (dict(pale_size=(3, 3, 3)), "pale_size"),
    (dict(pale_size="7"), "pale_size"),
    (dict(num_heads=3), "num_heads"),
    (dict(num_heads=6), "num_heads"),   # 3 heads per branch do not divide 32 channels
    (dict(num_heads=0), "num_heads"),
    (dict(mode="diagonal"), "mode"),
    (dict(mode="sequential", num_heads=5), "num_heads"),
    (dict(channels=63), "channels"),
    (dict(sequential_direction="diagonal"), "sequential_direction"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
  args = dict(channels=64, num_heads=2)
  args.update(kwargs)
  with pytest.raises(ValueError, match=rf"received {name}="):
    PaleShapedAttention(**args)


def test_check_heads_accepts_what_each_mode_allows():
  check_heads(64, 2, "parallel")
  check_heads(64, 64, "parallel")       # 32 heads of one channel per branch
  check_heads(48, 3, "vanilla")         # full-width modes need only heads | channels
  with pytest.raises(ValueError, match="received num_heads=3"):
    check_heads(48, 3, "parallel")
