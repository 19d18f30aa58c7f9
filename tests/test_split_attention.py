"""SplitAttention: the authors' forward pass, radix-major layout, r-softmax, export."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests import harness
from tfvision.layers import SplitAttention


def _torch_style_reference(x_nhwc, weights, radix, cardinality, strides, dilation, eps):
  """The authors' SplAtConv2d.forward (splat.py) in NumPy, NCHW, at inference.

  `weights` holds PyTorch-layout tensors: conv [C*R, C_in/G, k, k], fc1 [A, C/K],
  fc2 [C*R, A/K], biases, and BN (gamma, beta, mean, var) for bn0 and bn1.
  """
  x = np.transpose(x_nhwc, (0, 3, 1, 2)).astype("float64")
  conv = weights["conv"]
  out_channels, in_per_group, k, _ = conv.shape
  groups = radix * cardinality
  pad = dilation * (k - 1) // 2
  xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  height = (xp.shape[2] - dilation * (k - 1) - 1) // strides + 1
  width = (xp.shape[3] - dilation * (k - 1) - 1) // strides + 1
  y = np.zeros((x.shape[0], out_channels, height, width))
  out_per_group = out_channels // groups
  for g in range(groups):
    xs = xp[:, g * in_per_group:(g + 1) * in_per_group]
    ws = conv[g * out_per_group:(g + 1) * out_per_group]
    for u in range(k):
      for v in range(k):
        patch = xs[:, :, u * dilation:u * dilation + strides * (height - 1) + 1:strides,
                   v * dilation:v * dilation + strides * (width - 1) + 1:strides]
        y[:, g * out_per_group:(g + 1) * out_per_group] += np.einsum(
            "oc,bchw->bohw", ws[:, :, u, v], patch)

  def bn(t, params):
    gamma, beta, mean, var = params
    shape = (1, -1) + (1,) * (t.ndim - 2)
    return ((t - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) *
            gamma.reshape(shape) + beta.reshape(shape))

  y = np.maximum(bn(y, weights["bn0"]), 0.0)
  channels = out_channels // radix
  splits = np.split(y, radix, axis=1)
  gap = sum(splits).mean(axis=(2, 3))                                  # [B, C]

  def grouped_fc(t, w, b):
    outs, ins = w.shape
    per_in, per_out = t.shape[1] // cardinality, outs // cardinality
    pieces = [t[:, i * per_in:(i + 1) * per_in] @ w[i * per_out:(i + 1) * per_out].T
              for i in range(cardinality)]
    del ins
    return np.concatenate(pieces, axis=1) + b

  gate = np.maximum(bn(grouped_fc(gap, weights["fc1"], weights["fc1_bias"]),
                       weights["bn1"]), 0.0)
  logits = grouped_fc(gate, weights["fc2"], weights["fc2_bias"])       # [B, C*R]
  batch = logits.shape[0]
  if radix > 1:
    grouped = logits.reshape(batch, cardinality, radix, -1).transpose(0, 2, 1, 3)
    grouped = np.exp(grouped - grouped.max(axis=1, keepdims=True))
    attention = (grouped / grouped.sum(axis=1, keepdims=True)).reshape(batch, -1)
    attentions = np.split(attention, radix, axis=1)
    out = sum(a[:, :, None, None] * s for a, s in zip(attentions, splits))
  else:
    out = (1.0 / (1.0 + np.exp(-logits)))[:, :, None, None] * y
  assert out.shape[1] == channels
  return np.transpose(out, (0, 2, 3, 1))


def _random_torch_weights(rng, in_channels, filters, radix, cardinality, attn):
  groups = radix * cardinality

  def bn(n):
    return (rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
            rng.uniform(0.5, 2.0, n))

  return dict(
      conv=rng.normal(0, 0.3, (filters * radix, in_channels // groups, 3, 3)),
      bn0=bn(filters * radix),
      fc1=rng.normal(0, 0.3, (attn, filters // cardinality)),
      fc1_bias=rng.normal(0, 0.1, attn), bn1=bn(attn),
      fc2=rng.normal(0, 0.3, (filters * radix, attn // cardinality)),
      fc2_bias=rng.normal(0, 0.1, filters * radix))


def _load_torch_weights(layer, weights):
  """PyTorch layout -> ours: conv and fc kernels are transposed, nothing reordered."""
  layer.kernel.assign(np.transpose(weights["conv"], (2, 3, 1, 0)))
  layer.fc1_kernel.assign(weights["fc1"].T[None, None])
  layer.fc1_bias.assign(weights["fc1_bias"])
  layer.fc2_kernel.assign(weights["fc2"].T[None, None])
  layer.fc2_bias.assign(weights["fc2_bias"])
  for bn, params in ((layer.bn0, weights["bn0"]), (layer.bn1, weights["bn1"])):
    bn.set_weights([p.astype("float32") for p in params])


@pytest.mark.parametrize("radix, cardinality, strides, dilation, size", [
    (2, 1, 1, 1, 8), (1, 1, 1, 1, 8), (4, 2, 1, 1, 6), (1, 4, 1, 2, 7), (2, 2, 2, 1, 9),
    (2, 1, 2, 1, 8),
])
def test_matches_the_authors_forward_pass(radix, cardinality, strides, dilation, size):
  rng = np.random.RandomState(radix * 10 + cardinality)
  in_channels, filters = 16, 8
  layer = SplitAttention(filters, 3, strides=strides, dilation_rate=dilation, radix=radix,
                         cardinality=cardinality, min_attention_channels=4)
  x = rng.normal(0, 1, (2, size, size, in_channels)).astype("float32")
  layer(x)
  weights = _random_torch_weights(rng, in_channels, filters, radix, cardinality,
                                  layer.attention_channels)
  _load_torch_weights(layer, weights)
  expected = _torch_style_reference(x, weights, radix, cardinality, strides, dilation, 1e-5)
  got = layer(x, training=False).numpy()
  assert got.shape == expected.shape == (2, -(-size // strides), -(-size // strides), filters)
  np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)


def test_attention_width_follows_the_authors_formula():
  for in_channels, radix, expected in ((64, 2, 32), (128, 2, 64), (96, 1, 32), (80, 4, 80),
                                       (512, 2, 256)):
    layer = SplitAttention(in_channels, radix=radix)
    layer.build((None, 7, 7, in_channels))
    assert layer.attention_channels == expected
    assert tuple(layer.fc1_kernel.shape) == (1, 1, in_channels, expected)
    assert tuple(layer.fc2_kernel.shape) == (1, 1, expected, in_channels * radix)


def test_r_softmax_sums_to_one_over_the_radix_in_radix_major_order():
  radix, cardinality, filters = 2, 3, 12
  layer = SplitAttention(filters, radix=radix, cardinality=cardinality)
  logits = np.random.RandomState(0).normal(0, 2, (4, radix * filters)).astype("float32")
  attention = layer.r_softmax(tf.constant(logits)).numpy()
  assert attention.shape == (4, radix, filters)
  np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-6)
  # Logits are cardinal-major [K, R, C/K]; attention is radix-major [R, K * C/K].
  per = filters // cardinality
  grouped = logits.reshape(4, cardinality, radix, per)
  soft = np.exp(grouped) / np.exp(grouped).sum(axis=2, keepdims=True)
  for r in range(radix):
    for k in range(cardinality):
      np.testing.assert_allclose(attention[:, r, k * per:(k + 1) * per], soft[:, k, r],
                                 atol=1e-6)
  # radix 1: a sigmoid gate.
  gate = SplitAttention(filters, radix=1).r_softmax(tf.constant(logits[:, :filters]))
  np.testing.assert_allclose(gate.numpy(), 1 / (1 + np.exp(-logits[:, :filters])), atol=1e-6)


def test_identical_splits_pass_through_because_the_weights_sum_to_one():
  """With both splits' kernels equal, the weighted sum over radix 2 is the split itself."""
  radix, cardinality, in_channels, filters = 2, 2, 8, 8
  layer = SplitAttention(filters, radix=radix, cardinality=cardinality)
  x = np.random.RandomState(1).normal(0, 1, (2, 5, 5, in_channels)).astype("float32")
  layer(x)
  kernel = layer.kernel.numpy()                        # [3, 3, C_in / 4, R * C]
  kernel[..., filters:] = kernel[..., :filters]        # split 1 := split 0
  layer.kernel.assign(kernel)
  # Split r, cardinal group k reads input group r * K + k: make both radix groups read
  # the same input channels.
  per_group = in_channels // (radix * cardinality)
  x[..., cardinality * per_group:] = x[..., :cardinality * per_group]
  out = layer(x, training=False).numpy()
  conv = tf.nn.conv2d(x, layer.kernel, 1, "SAME")
  split0 = tf.nn.relu(layer.bn0(conv, training=False)).numpy()[..., :filters]
  np.testing.assert_allclose(out, split0, atol=1e-5)


def test_permuting_cardinal_groups_permutes_the_outputs():
  radix, cardinality, in_channels, filters = 2, 3, 12, 6
  layer = SplitAttention(filters, radix=radix, cardinality=cardinality,
                         min_attention_channels=3)
  rng = np.random.RandomState(2)
  x = rng.normal(0, 1, (2, 5, 5, in_channels)).astype("float32")
  layer(x)
  for bn in (layer.bn0, layer.bn1):
    bn.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                    for w in bn.get_weights()])
  sigma = np.array([2, 0, 1])                           # new group k comes from sigma[k]
  per_in = in_channels // (radix * cardinality)
  per_out = filters // cardinality
  attn_per = layer.attention_channels // cardinality

  def perm(n_radix, per):
    # Channel index order [radix, cardinality, per] with the cardinal groups permuted.
    idx = np.arange(n_radix * cardinality * per).reshape(n_radix, cardinality, per)
    return idx[:, sigma].reshape(-1)

  def perm_card_major(inner):
    idx = np.arange(cardinality * inner).reshape(cardinality, inner)
    return idx[sigma].reshape(-1)

  permuted = SplitAttention(filters, radix=radix, cardinality=cardinality,
                            min_attention_channels=3)
  x_perm = x[..., perm(radix, per_in)]
  permuted(x_perm)
  conv_out = perm(radix, per_out)
  permuted.kernel.assign(layer.kernel.numpy()[..., conv_out])
  bn0 = layer.bn0.get_weights()
  permuted.bn0.set_weights([w[conv_out] for w in bn0])
  fc1_out = perm_card_major(attn_per)
  permuted.fc1_kernel.assign(layer.fc1_kernel.numpy()[..., fc1_out])
  permuted.fc1_bias.assign(layer.fc1_bias.numpy()[fc1_out])
  permuted.bn1.set_weights([w[fc1_out] for w in layer.bn1.get_weights()])
  fc2_out = perm_card_major(radix * per_out)
  permuted.fc2_kernel.assign(layer.fc2_kernel.numpy()[..., fc2_out])
  permuted.fc2_bias.assign(layer.fc2_bias.numpy()[fc2_out])
  expected = layer(x, training=False).numpy()[..., perm(1, per_out)]
  np.testing.assert_allclose(permuted(x_perm, training=False).numpy(), expected, atol=1e-5)
  # ... and a permutation that ignored the radix-major layout would not match.
  wrong = x[..., np.arange(in_channels).reshape(cardinality, -1)[sigma].reshape(-1)]
  assert not np.allclose(permuted(wrong, training=False).numpy(), expected, atol=1e-3)


@pytest.mark.parametrize("radix, cardinality", [(1, 2), (2, 2)])
def test_xla_bfloat16_config_and_tflite(radix, cardinality):
  inputs = tf_keras.Input((8, 8, 8))
  layer = SplitAttention(8, strides=2, radix=radix, cardinality=cardinality)
  model = tf_keras.Model(inputs, layer(inputs))
  x = np.random.RandomState(3).uniform(-1, 1, (2, 8, 8, 8)).astype("float32")
  eager = model(x, training=False).numpy()
  compiled = tf.function(lambda t: model(t, training=False), jit_compile=True)
  np.testing.assert_allclose(compiled(x).numpy(), eager, atol=1e-5)
  config = json.loads(json.dumps(layer.get_config()))
  clone = SplitAttention.from_config(config)
  assert clone.get_config() == layer.get_config()
  harness.check_tflite(model, x, eager)
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    mixed = SplitAttention(8, radix=radix, cardinality=cardinality)
    with tf.GradientTape() as tape:
      out = mixed(tf.constant(x), training=True)
      loss = tf.reduce_mean(tf.cast(out, tf.float32) ** 2)
    grads = tape.gradient(loss, mixed.trainable_variables)
    assert out.dtype == tf.bfloat16
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("kwargs, arg", [
    (dict(filters=8, radix=0), "radix"), (dict(filters=8, cardinality=0), "cardinality"),
    (dict(filters=8, radix=1.5), "radix"), (dict(filters=9, cardinality=2), "filters"),
    (dict(filters=8, strides=0), "strides"),
])
def test_bad_arguments_name_the_argument(kwargs, arg):
  with pytest.raises(ValueError, match=f"{arg}="):
    SplitAttention(**kwargs)


def test_input_channels_not_divisible_by_groups():
  layer = SplitAttention(8, radix=2, cardinality=2)
  with pytest.raises(ValueError, match="in_channels=6"):
    layer(tf.zeros((1, 4, 4, 6)))


@pytest.mark.parametrize("radix, cardinality, strides, dilation", [
    (2, 1, 1, 1), (4, 2, 2, 1), (1, 4, 1, 2), (2, 2, 1, 2)])
def test_eigen_inference_folds_bn_into_each_group_equal_to_the_grouped_path(
    monkeypatch, radix, cardinality, strides, dilation):
  # The Eigen kernels' inference path (bn0 folded into per-group convs, no concat)
  # against the per-group conv + concat + BatchNorm path: same values and gradients;
  # training (batch statistics) and the direct-kernel backends never fold.
  from tfvision.layers import conv as conv_lib  # pylint: disable=import-outside-toplevel
  rng = np.random.RandomState(radix + 7 * cardinality)
  layer = SplitAttention(8, 3, strides=strides, dilation_rate=dilation, radix=radix,
                         cardinality=cardinality, min_attention_channels=4)
  x = tf.constant(rng.normal(0, 1, (2, 7, 7, 16)).astype("float32"))
  layer(x)
  weights = _random_torch_weights(rng, 16, 8, radix, cardinality, layer.attention_channels)
  _load_torch_weights(layer, weights)

  monkeypatch.setattr(conv_lib, "direct_kernel_trains", lambda inputs: False)
  fold = SplitAttention._fold_at_inference  # pylint: disable=protected-access

  def run(folded, training):
    monkeypatch.setattr(SplitAttention, "_fold_at_inference",
                        fold if folded else lambda self, inputs, training: False)
    with tf.GradientTape() as tape:
      tape.watch(x)
      out = layer(x, training=training)
      loss = tf.reduce_sum(out * tf.cos(out))
    variables = [layer.kernel, layer.bn0.gamma, layer.bn0.beta, layer.fc1_kernel]
    return out.numpy(), [g.numpy() for g in tape.gradient(loss, [x] + variables)]

  assert fold(layer, x, False) and fold(layer, x, None) and not fold(layer, x, True)
  folded, folded_grads = run(folded=True, training=False)
  grouped, grouped_grads = run(folded=False, training=False)
  np.testing.assert_allclose(folded, grouped, atol=1e-5, rtol=1e-5)
  for a, b in zip(folded_grads, grouped_grads):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
  expected = _torch_style_reference(x.numpy(), weights, radix, cardinality, strides,
                                    dilation, 1e-5)
  np.testing.assert_allclose(folded, expected, atol=2e-4, rtol=1e-4)
  monkeypatch.setattr(conv_lib, "direct_kernel_trains", lambda inputs: True)
  assert not fold(layer, x, False)  # oneDNN / GPU: the grouped kernel, no folding


def test_eigen_inference_graph_converts_to_full_integer_tflite(monkeypatch):
  # The folded graph (what a model exported on an Eigen-only CPU holds) has no ADD_N,
  # which LiteRT cannot run in int8.
  from tfvision.layers import conv as conv_lib  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(conv_lib, "direct_kernel_trains", lambda inputs: False)
  inputs = tf_keras.Input((8, 8, 8))
  model = tf_keras.Model(inputs, SplitAttention(8, radix=2, cardinality=2)(inputs))
  x = np.random.RandomState(4).uniform(-1, 1, (4, 8, 8, 8)).astype("float32")
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = lambda: ([t[None]] for t in x)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  from tfvision.export import ops_report  # pylint: disable=import-outside-toplevel
  report = ops_report(converter.convert())
  assert "ADD_N" not in report.ops and report.float_ops == [], report.format()
  # One conv per group; the folded path concatenates the K = 2 groups of each of the
  # two radix splits (the unfolded path concatenates all four groups once).
  assert report.ops["CONV_2D"] == 4 and report.ops["CONCATENATION"] == 2, report.format()
