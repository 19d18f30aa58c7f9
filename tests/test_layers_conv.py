"""ConvNormAct, GlobalContext, Switchable Atrous Convolution and the portable conv2d."""
import types as types_module

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfvision.layers import ConvNormAct, GlobalContext, SwitchableAtrousConv2D
from tfvision.layers.conv import symmetric_padding


def _rand(shape, seed=0):
  return np.random.RandomState(seed).normal(size=shape).astype("float32")


def _roundtrip(layer, inputs):
  """get_config -> from_config gives the same config and, with weights, the same output."""
  out = layer(inputs)
  config = layer.get_config()
  clone = type(layer).from_config(config)
  clone(inputs)
  clone.set_weights(layer.get_weights())
  assert clone.get_config() == config
  np.testing.assert_allclose(clone(inputs).numpy(), out.numpy(), atol=1e-6)


def test_symmetric_padding_values():
  assert symmetric_padding(3) == (1, 1)
  assert symmetric_padding(7) == (3, 3)
  assert symmetric_padding(3, 2) == (2, 2)
  assert symmetric_padding(2) == (0, 1)


@pytest.mark.parametrize("size", [8, 9])
def test_strided_conv_pads_symmetrically_like_pytorch(size):
  x = _rand((1, size, size, 3))
  layer = ConvNormAct(4, 3, strides=2, norm=None, activation=None)
  y = layer(x).numpy()
  kernel = layer.conv.kernel.numpy()
  # PyTorch's Conv2d(padding=1, stride=2): pad one zero on every side, then "valid".
  padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
  expected = tf.nn.conv2d(padded, kernel, strides=2, padding="VALID").numpy()
  expected = expected + layer.conv.bias.numpy()
  np.testing.assert_allclose(y, expected, atol=1e-5)
  assert y.shape[1] == (size + 1) // 2
  # TF's own "same" would differ for even sizes (extra padding bottom/right only).
  tf_same = tf.nn.conv2d(x, kernel, strides=2, padding="SAME").numpy() + layer.conv.bias.numpy()
  if size % 2 == 0:
    assert not np.allclose(tf_same, y, atol=1e-5)


def test_conv_norm_act_bn_activation_and_bias_default():
  layer = ConvNormAct(6, 1, activation="relu")
  y = layer(_rand((2, 5, 5, 3)), training=False).numpy()
  assert (y >= 0).all()
  assert not layer.conv.use_bias  # BN follows, so no bias
  assert ConvNormAct(6, 1, norm=None).use_bias  # no norm: bias by default


def test_conv_norm_act_config_roundtrip():
  _roundtrip(ConvNormAct(8, 3, strides=2, dilation_rate=1, groups=2, activation="relu",
                         gamma_initializer="zeros"), _rand((1, 9, 9, 4)))
  _roundtrip(ConvNormAct(4, 3, switchable_atrous=True), _rand((1, 9, 9, 4)))
  _roundtrip(ConvNormAct(4, 3, strides=2, switchable_atrous=True), _rand((1, 9, 9, 4)))


@pytest.mark.parametrize("kwargs, arg", [
    (dict(filters=0), "filters"), (dict(filters=4, strides=0), "strides"),
    (dict(filters=4, padding="reflect"), "padding"), (dict(filters=6, groups=4), "filters"),
    (dict(filters=4, norm="layer"), "norm"), (dict(filters=4, dilation_rate=0), "dilation_rate"),
])
def test_conv_norm_act_bad_arguments(kwargs, arg):
  with pytest.raises(ValueError, match=arg):
    ConvNormAct(**kwargs)


def test_global_context_zero_init_is_identity_then_adds_projected_mean():
  x = _rand((2, 4, 5, 3))
  layer = GlobalContext()
  np.testing.assert_allclose(layer(x).numpy(), x)
  kernel = _rand((1, 1, 3, 3), seed=1)
  bias = _rand((3,), seed=2)
  layer.conv.set_weights([kernel, bias])
  mean = x.mean(axis=(1, 2))
  expected = x + (mean @ kernel[0, 0] + bias)[:, None, None, :]
  np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)
  _roundtrip(layer, x)


def _sac_with_switch(switch_value, rate):
  layer = SwitchableAtrousConv2D(5, 3, dilation_rate=rate, global_context=False)
  x = _rand((2, 17, 15, 4))
  layer(x)
  layer.switch.set_weights([np.zeros((1, 1, 4, 1), "float32"),
                            np.full((1,), switch_value, "float32")])
  return layer, x


@pytest.mark.parametrize("rate", [1, 2])
def test_sac_switch_zero_is_plain_conv_at_rate_r(rate):
  layer, x = _sac_with_switch(0.0, rate)
  kernel = layer.kernel.numpy()
  expected = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=rate).numpy()
  wrong = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=3 * rate).numpy()
  np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)
  assert not np.allclose(expected, wrong, atol=1e-3)


@pytest.mark.parametrize("rate", [1, 2])
def test_sac_switch_one_is_plain_conv_at_rate_3r(rate):
  layer, x = _sac_with_switch(1.0, rate)
  kernel = layer.kernel.numpy()
  expected = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=3 * rate).numpy()
  np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)
  # The same weights as a Keras Conv2D at rate 3r give the same output.
  conv = tf_keras.layers.Conv2D(5, 3, padding="same", dilation_rate=3 * rate, use_bias=False)
  conv.build(x.shape)
  conv.set_weights([kernel])
  np.testing.assert_allclose(layer(x).numpy(), conv(x).numpy(), atol=1e-5)


def test_sac_switch_is_location_dependent_mixture():
  layer = SwitchableAtrousConv2D(3, 3, global_context=False)
  x = _rand((1, 12, 12, 2))
  layer(x)
  switch_kernel = _rand((1, 1, 2, 1), seed=3)
  layer.switch.set_weights([switch_kernel, np.array([0.5], "float32")])
  kernel = layer.kernel.numpy()
  small = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=1).numpy()
  large = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=3).numpy()
  pooled = tf.nn.avg_pool2d(x, 5, 1, "SAME").numpy()  # TF excludes the border
  switch = pooled @ switch_kernel[0, 0] + 0.5
  expected = (1 - switch) * small + switch * large
  np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)
  assert switch.std() > 0.01  # the switch really varies over locations


def test_sac_global_context_before_and_after():
  layer = SwitchableAtrousConv2D(4, 3, global_context=True)
  x = _rand((1, 7, 7, 3))
  layer(x)
  assert len(layer.trainable_weights) == 1 + 2 + 2 + 2  # kernel, switch, 2 x context
  for context, seed in ((layer.pre_context, 5), (layer.post_context, 6)):
    channels = context.conv.kernel.shape[-1]
    context.conv.set_weights([_rand((1, 1, channels, channels), seed),
                              _rand((channels,), seed + 10)])
  pre = layer.pre_context(x).numpy()
  conv = tf.nn.conv2d(pre, layer.kernel.numpy(), 1, "SAME").numpy()  # switch is 0
  expected = layer.post_context(conv).numpy()
  np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)
  _roundtrip(layer, x)


def test_conv_norm_act_uses_sac_only_at_stride_one():
  unstrided = ConvNormAct(4, 3, switchable_atrous=True)
  strided = ConvNormAct(4, 3, strides=2, switchable_atrous=True)
  assert isinstance(unstrided.conv, SwitchableAtrousConv2D)
  assert isinstance(strided.conv, tf_keras.layers.Conv2D)
  assert strided.pre_context is not None and strided.post_context is not None


def test_sac_runs_under_xla_and_bfloat16():
  x = _rand((1, 9, 9, 4))
  layer = SwitchableAtrousConv2D(4, 3)
  eager = layer(x)
  compiled = tf.function(layer, jit_compile=True)(x)
  np.testing.assert_allclose(compiled.numpy(), eager.numpy(), atol=1e-5)
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    bf_layer = SwitchableAtrousConv2D(4, 3)
    out = bf_layer(x)
    assert out.dtype == tf.bfloat16
    assert np.isfinite(tf.cast(out, tf.float32).numpy()).all()
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")


def _lowered(monkeypatch, portable):
  """Forces `conv2d` onto its Eigen lowering (portable) or onto the direct kernel."""
  from tfvision.layers import conv as conv_module  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(conv_module, "direct_kernel_trains", lambda inputs: not portable)


@pytest.mark.parametrize("groups, rate, strides, padding", [
    (1, 2, 1, "SAME"), (1, 6, 1, "SAME"), (1, 3, 1, "VALID"), (2, 2, 1, "SAME"),
    (4, 1, 2, "VALID"), (2, 1, 1, "SAME"),
])
def test_portable_conv2d_equals_the_direct_kernel_forward_and_backward(
    monkeypatch, groups, rate, strides, padding):
  """The space-to-batch / per-group lowering computes tf.nn.conv2d's values and gradients.

  The reference gradient comes from XLA, which differentiates the direct dilated and
  grouped kernel on every CPU (the Eigen kernels cannot).
  """
  from tfvision.layers.conv import conv2d  # pylint: disable=import-outside-toplevel
  x = tf.constant(_rand((2, 11, 13, 8), seed=1))
  kernel = tf.constant(_rand((3, 3, 8 // groups, 12), seed=2))

  def loss_and_grads(fn):
    with tf.GradientTape() as tape:
      tape.watch([x, kernel])
      y = fn(x, kernel)
      loss = tf.reduce_sum(y * tf.sin(y))
    return (y,) + tuple(tape.gradient(loss, [x, kernel]))

  direct = lambda a, k: tf.nn.conv2d(a, k, strides, padding, dilations=rate)  # noqa: E731
  want = tf.function(lambda: loss_and_grads(direct), jit_compile=True)()
  _lowered(monkeypatch, portable=True)
  portable = lambda a, k: conv2d(a, k, strides, rate, padding)  # noqa: E731
  for mode in ("eager", "function", "xla"):
    if mode == "eager":
      got = loss_and_grads(portable)
    else:
      got = tf.function(lambda: loss_and_grads(portable), jit_compile=mode == "xla")()
    for g, w in zip(got, want):
      assert g.shape == w.shape
      np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4 * float(
          np.max(np.abs(w.numpy()))), err_msg=mode)
  if groups > 1 or rate > 1:
    graph = tf.function(lambda: portable(x, kernel)).get_concrete_function().graph
    ops = {op.type for op in graph.get_operations()}
    if rate > 1:
      assert "SpaceToBatchND" in ops, ops
    conv_ops = [op for op in graph.get_operations() if op.type == "Conv2D"]
    assert len(conv_ops) == groups


def test_direct_kernel_kept_where_it_trains(monkeypatch):
  """With oneDNN (or a GPU) the dilated and grouped convs stay single direct kernels."""
  from tfvision.layers import conv as conv_module  # pylint: disable=import-outside-toplevel
  x = tf.constant(_rand((1, 9, 9, 4)))
  kernel = tf.constant(_rand((3, 3, 2, 4)))
  monkeypatch.setattr(conv_module, "onednn_enabled", lambda: True)
  graph = tf.function(lambda: conv_module.conv2d(x, kernel, 1, 2)).get_concrete_function().graph
  types = [op.type for op in graph.get_operations()]
  assert types.count("Conv2D") == 1 and "SpaceToBatchND" not in types, types
  monkeypatch.setattr(conv_module, "onednn_enabled", lambda: False)
  if not tf.config.list_logical_devices("GPU"):
    graph = tf.function(lambda: conv_module.conv2d(x, kernel, 1, 2)).get_concrete_function().graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("Conv2D") == 2 and "SpaceToBatchND" in types, types
  # The device a tensor was placed on decides: cuDNN on a GPU, Eigen on a pinned CPU.
  placed = lambda device: types_module.SimpleNamespace(device=device)  # noqa: E731
  assert conv_module.direct_kernel_trains(placed("/job:localhost/replica:0/task:0/device:GPU:0"))
  assert not conv_module.direct_kernel_trains(placed("/device:CPU:0"))
  monkeypatch.setattr(conv_module.tf.config, "list_logical_devices",
                      lambda kind=None: ["gpu"] if kind == "GPU" else [])
  assert conv_module.direct_kernel_trains(placed(""))
  assert not conv_module.direct_kernel_trains(placed("/device:CPU:0"))


def test_sac_at_rate_2_trains_with_the_portable_lowering(monkeypatch):
  """SAC's gradients through the Eigen lowering equal those through the direct kernels."""
  x = tf.constant(_rand((2, 12, 12, 4), seed=3))
  layer = SwitchableAtrousConv2D(6, 3, dilation_rate=2)
  layer(x)
  layer.switch.kernel.assign(_rand(layer.switch.kernel.shape, seed=4))

  @tf.function(jit_compile=True)
  def reference():
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(layer(x) ** 2)
    return tape.gradient(loss, layer.trainable_variables)

  want = reference()
  _lowered(monkeypatch, portable=True)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(x) ** 2)
  got = tape.gradient(loss, layer.trainable_variables)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4,
                               atol=1e-4 * float(np.max(np.abs(w.numpy()))))


@pytest.mark.parametrize("rate, padding", [(2, "SAME"), (3, "VALID")])
def test_inference_runs_the_direct_dilated_kernel_with_the_lowered_gradient(
    monkeypatch, rate, padding):
  """Eigen at inference: direct dilated forward, gradient of the space-to-batch form."""
  from tfvision.layers.conv import conv2d  # pylint: disable=import-outside-toplevel
  x = tf.constant(_rand((2, 11, 13, 8), seed=5))
  kernel = tf.constant(_rand((3, 3, 8, 6), seed=6))
  _lowered(monkeypatch, portable=True)

  def loss_and_grads(inference):
    with tf.GradientTape() as tape:
      tape.watch([x, kernel])
      y = conv2d(x, kernel, 1, rate, padding, inference=inference)
      loss = tf.reduce_sum(y * tf.sin(y))
    return (y,) + tuple(tape.gradient(loss, [x, kernel]))

  for got, want in zip(tf.function(lambda: loss_and_grads(True))(),
                       tf.function(lambda: loss_and_grads(False))()):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4,
                               atol=1e-4 * float(np.max(np.abs(want.numpy()))))
  forward = tf.function(lambda: conv2d(x, kernel, 1, rate, padding, inference=True))
  ops = [op.type for op in forward.get_concrete_function().graph.get_operations()]
  assert "SpaceToBatchND" not in ops, ops
  training = tf.function(lambda: conv2d(x, kernel, 1, rate, padding))
  ops = [op.type for op in training.get_concrete_function().graph.get_operations()]
  assert "SpaceToBatchND" in ops, ops
