"""RelativeMultiHeadSelfAttention2D: logits against direct loops, translation, variable size."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfvision.layers import RelativeMultiHeadSelfAttention2D
from tfvision.layers.relative_attention import relative_logits_2d


def _direct_relative_logits(query, table_h, table_w, max_h, max_w):
  """Loop over query (x, y) and key (p, q): q . R_h[p - x + M_h - 1] + q . R_w[q - y + M_w - 1]."""
  batch, heads, height, width, _ = query.shape
  out = np.zeros((batch, heads, height * width, height * width), np.float64)
  for x in range(height):
    for y in range(width):
      for p in range(height):
        for q in range(width):
          rel = (table_h[p - x + max_h - 1] + table_w[q - y + max_w - 1]).astype(np.float64)
          out[:, :, x * width + y, p * width + q] = query[:, :, x, y, :] @ rel
  return out


def _reference_attention(layer, x, position=True, content=True):
  """Whole layer in numpy (test-only): projections, scaled logits, softmax, values."""
  batch, height, width, channels = x.shape
  heads, dim = layer.num_heads, layer._head_dim  # pylint: disable=protected-access
  qkv = x.reshape(batch, -1, channels).astype(np.float64) @ layer.qkv_kernel.numpy()
  split = [qkv[..., i * heads * dim:(i + 1) * heads * dim]
           .reshape(batch, -1, heads, dim).transpose(0, 2, 1, 3) for i in range(3)]
  query, key, value = split
  query = query * dim ** -0.5
  logits = np.zeros((batch, heads, height * width, height * width))
  if content:
    logits += query @ key.transpose(0, 1, 3, 2)
  if position:
    max_h, max_w = layer._table_size  # pylint: disable=protected-access
    logits += _direct_relative_logits(
        query.reshape(batch, heads, height, width, dim), layer.position_height.numpy(),
        layer.position_width.numpy(), max_h, max_w)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  out = (weights @ value).transpose(0, 2, 1, 3)
  return out.reshape(batch, height, width, heads * dim)


def test_relative_logits_match_direct_loops_including_central_slice():
  rng = np.random.RandomState(0)
  query = rng.randn(2, 3, 3, 4, 5).astype("float32")
  for max_h, max_w in ((3, 4), (6, 5)):
    table_h = rng.randn(2 * max_h - 1, 5).astype("float32")
    table_w = rng.randn(2 * max_w - 1, 5).astype("float32")
    got = relative_logits_2d(tf.constant(query), tf.constant(table_h), tf.constant(table_w),
                             (max_h, max_w)).numpy()
    want = _direct_relative_logits(query, table_h, table_w, max_h, max_w)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("position_encoding,content", [("relative", True), ("relative", False),
                                                       (None, True)])
def test_layer_matches_numpy_reference(position_encoding, content):
  x = np.random.RandomState(1).randn(2, 3, 4, 8).astype("float32")
  layer = RelativeMultiHeadSelfAttention2D(num_heads=2, max_size=(5, 6),
                                           position_encoding=position_encoding,
                                           content_logits=content)
  got = layer(x).numpy()
  want = _reference_attention(layer, x, position=position_encoding is not None,
                              content=content)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_shifting_the_input_by_one_pixel_shifts_the_position_term():
  """Relative logits depend on offsets only: a map shifted down by one row, read at
  shifted queries and keys, gives the same position logits; absolute ones do not."""
  rng = np.random.RandomState(2)
  height, width, channels = 5, 4, 8
  image = rng.randn(1, height, width, channels).astype("float32")
  shifted = np.zeros_like(image)
  shifted[:, 1:] = image[:, :-1]
  for encoding, should_shift in (("relative", True), ("absolute", False)):
    layer = RelativeMultiHeadSelfAttention2D(num_heads=2, position_encoding=encoding,
                                             content_logits=False, max_size=(height, width))
    layer.build(image.shape)

    def position_logits(inputs, layer=layer):
      flat = inputs.reshape(-1, channels) @ layer.qkv_kernel.numpy()[:, :channels]
      query = flat.reshape(1, height * width, 2, 4).transpose(0, 2, 1, 3) * 4 ** -0.5
      query = query.astype("float32")
      return layer.attention_logits(tf.constant(query), None, height, width).numpy()

    before, after = position_logits(image), position_logits(shifted)
    old = [x * width + y for x in range(height - 1) for y in range(width)]
    new = [(x + 1) * width + y for x in range(height - 1) for y in range(width)]
    moved = after[:, :, new][:, :, :, new]
    kept = before[:, :, old][:, :, :, old]
    if should_shift:
      np.testing.assert_allclose(moved, kept, rtol=1e-5, atol=1e-5)
    else:
      assert np.max(np.abs(moved - kept)) > 1e-2


def test_smaller_maps_use_the_central_rows_of_the_tables():
  """A layer sized for 7x6 maps, on a 3x4 map, equals a layer sized for 3x4 whose
  tables are the central 2*3-1 and 2*4-1 rows of the big ones."""
  x = np.random.RandomState(3).randn(1, 3, 4, 8).astype("float32")
  big = RelativeMultiHeadSelfAttention2D(num_heads=2, max_size=(7, 6))
  small = RelativeMultiHeadSelfAttention2D(num_heads=2, max_size=(3, 4))
  out_big = big(x).numpy()
  small.build(x.shape)
  table_h, table_w = big.position_height.numpy(), big.position_width.numpy()
  small.set_weights([big.qkv_kernel.numpy(), table_h[7 - 3:7 + 3 - 1], table_w[6 - 4:6 + 4 - 1]])
  np.testing.assert_allclose(small(x).numpy(), out_big, rtol=1e-5, atol=1e-6)


def test_tables_sized_from_the_static_map_and_initialised_with_stddev_d_to_minus_half():
  layer = RelativeMultiHeadSelfAttention2D(num_heads=4, max_size=None)
  layer.build((None, 14, 9, 512))
  assert layer.qkv_kernel.shape == (512, 3 * 512)
  assert layer.position_height.shape == (27, 128)
  assert layer.position_width.shape == (17, 128)
  big = RelativeMultiHeadSelfAttention2D(num_heads=1, max_size=64)
  big.build((None, 8, 8, 64))
  std = float(np.std(big.position_height.numpy()))
  assert abs(std - 64 ** -0.5) < 0.1 * 64 ** -0.5
  assert not np.allclose(big.position_height.numpy(), big.position_width.numpy())


def test_maps_larger_than_max_size_fail_clearly():
  layer = RelativeMultiHeadSelfAttention2D(num_heads=2, max_size=4)
  layer(np.zeros((1, 4, 3, 8), "float32"))
  with pytest.raises(ValueError, match=r"height 5 exceeds .*max_size=\(4, 4\)"):
    layer(np.zeros((1, 5, 3, 8), "float32"))
  dynamic = tf.function(layer, input_signature=[tf.TensorSpec([None, None, None, 8])])
  dynamic(np.zeros((1, 2, 3, 8), "float32"))
  with pytest.raises(tf.errors.InvalidArgumentError, match="width exceeds .*max_size"):
    dynamic(np.zeros((1, 2, 6, 8), "float32"))
  with pytest.raises(ValueError, match="max_size is required"):
    RelativeMultiHeadSelfAttention2D(num_heads=2)(tf_keras.Input((None, None, 8)))


def test_bad_arguments_name_the_argument():
  with pytest.raises(ValueError, match="received num_heads=3"):
    RelativeMultiHeadSelfAttention2D(num_heads=3, max_size=4)(np.zeros((1, 2, 2, 8), "float32"))
  with pytest.raises(ValueError, match="received num_heads=3"):
    RelativeMultiHeadSelfAttention2D(num_heads=3, filters=8)
  with pytest.raises(ValueError, match="received position_encoding='rotary'"):
    RelativeMultiHeadSelfAttention2D(position_encoding="rotary")
  with pytest.raises(ValueError, match="content_logits=False"):
    RelativeMultiHeadSelfAttention2D(position_encoding=None, content_logits=False)
  with pytest.raises(ValueError, match="received max_size=0"):
    RelativeMultiHeadSelfAttention2D(max_size=0)


def test_config_round_trip_xla_and_mixed_bfloat16():
  x = np.random.RandomState(4).randn(2, 5, 3, 16).astype("float32")
  layer = RelativeMultiHeadSelfAttention2D(num_heads=4, filters=8, max_size=(6, 4),
                                           position_encoding="absolute")
  out = layer(x).numpy()
  assert out.shape == (2, 5, 3, 8)
  config = json.loads(json.dumps(layer.get_config()))
  clone = RelativeMultiHeadSelfAttention2D.from_config(config)
  clone.build(x.shape)
  clone.set_weights(layer.get_weights())
  assert clone.get_config() == layer.get_config()
  np.testing.assert_allclose(clone(x).numpy(), out, rtol=1e-6, atol=1e-6)
  compiled = tf.function(layer, jit_compile=True)
  np.testing.assert_allclose(compiled(x).numpy(), out, rtol=1e-5, atol=1e-5)

  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    mixed = RelativeMultiHeadSelfAttention2D(num_heads=2, max_size=8)
    with tf.GradientTape() as tape:
      y = mixed(tf.constant(x))
      loss = tf.reduce_mean(tf.cast(y, tf.float32) ** 2)
    grads = tape.gradient(loss, mixed.trainable_variables)
    assert y.dtype == tf.bfloat16
    assert mixed.qkv_kernel.dtype == tf.float32
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")


def test_tflite_conversion_matches():
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  x = np.random.RandomState(5).randn(1, 4, 5, 16).astype("float32")
  layer = RelativeMultiHeadSelfAttention2D(num_heads=4, max_size=(6, 6))
  want = layer(x).numpy()
  fn = tf.function(lambda t: layer(t), input_signature=[tf.TensorSpec(x.shape, tf.float32)])
  converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                              layer)
  interpreter = Interpreter(model_content=converter.convert())
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
  interpreter.invoke()
  got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
