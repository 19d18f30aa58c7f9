"""DropPath, DropBlock and the drop-path schedules."""
import numpy as np
import pytest
import tensorflow as tf

from tfvision.layers import (DropBlock, DropPath, drop_path_rate_for_stride,
                             linear_drop_path_rates)


def test_drop_path_identity_at_inference_and_rate_zero():
  x = tf.random.normal((4, 3, 3, 2))
  np.testing.assert_array_equal(DropPath(0.5)(x, training=False).numpy(), x.numpy())
  np.testing.assert_array_equal(DropPath(0.0)(x, training=True).numpy(), x.numpy())


def test_drop_path_masks_whole_samples_and_keeps_expectation():
  rate = 0.3
  x = tf.ones((4000, 2, 2, 3))
  y = DropPath(rate)(x, training=True).numpy()
  per_sample = y.reshape(4000, -1)
  # Every sample is either dropped entirely or kept entirely, scaled by 1 / keep.
  assert np.all((per_sample.min(1) == per_sample.max(1)))
  values = np.unique(per_sample[:, 0])
  np.testing.assert_allclose(sorted(values), [0.0, 1.0 / (1.0 - rate)], rtol=1e-6)
  dropped = np.mean(per_sample[:, 0] == 0.0)
  assert abs(dropped - rate) < 0.03
  assert abs(per_sample.mean() - 1.0) < 0.05


def test_drop_path_bad_rate():
  with pytest.raises(ValueError, match="rate"):
    DropPath(1.0)
  with pytest.raises(ValueError, match="rate"):
    DropPath(-0.1)


def test_drop_path_schedules_match_deeplab2():
  # deeplab2: keep = 1 - (1 - 0.8) * stage / 4, stage = log2(stride) - 1.
  linear = [drop_path_rate_for_stride(0.2, "linear", s) for s in (2, 4, 8, 16, 32)]
  np.testing.assert_allclose(linear, [0.0, 0.05, 0.10, 0.15, 0.20])
  constant = [drop_path_rate_for_stride(0.2, "constant", s) for s in (2, 4, 32)]
  np.testing.assert_allclose(constant, [0.0, 0.2, 0.2])
  with pytest.raises(ValueError, match="drop_path_schedule"):
    drop_path_rate_for_stride(0.2, "cosine", 4)


def test_linear_ramp():
  np.testing.assert_allclose(linear_drop_path_rates(0.3, 4), [0.0, 0.1, 0.2, 0.3])
  assert linear_drop_path_rates(0.3, 1) == [0.0]


def test_dropblock_identity_at_inference():
  x = tf.random.normal((2, 8, 8, 3))
  np.testing.assert_array_equal(DropBlock(3, 0.5)(x, training=False).numpy(), x.numpy())
  np.testing.assert_array_equal(DropBlock(3, 1.0)(x, training=True).numpy(), x.numpy())


def test_dropblock_drops_whole_blocks_at_the_requested_rate():
  block, keep = 3, 0.8
  x = tf.ones((64, 20, 20, 4))
  y = DropBlock(block, keep)(x, training=True).numpy()
  zero = y == 0.0
  # Dropped fraction close to 1 - keep_prob (Eq. 1 of the paper targets exactly that).
  assert abs(zero.mean() - (1 - keep)) < 0.05
  # Kept activations are rescaled by 1 / (kept fraction), preserving the mean.
  assert abs(y.mean() - 1.0) < 1e-3
  # Every dropped pixel lies inside an all-dropped block x block square.
  covered = np.zeros_like(zero)
  height, width = zero.shape[1:3]
  for i in range(height - block + 1):
    for j in range(width - block + 1):
      square = zero[:, i:i + block, j:j + block, :].all(axis=(1, 2))
      covered[:, i:i + block, j:j + block, :] |= square[:, None, None, :]
  np.testing.assert_array_equal(covered, zero)


def test_dropblock_block_larger_than_map_and_dynamic_shape():
  layer = DropBlock(7, 0.7)
  y = layer(tf.ones((8, 5, 5, 2)), training=True)
  assert y.shape == (8, 5, 5, 2)
  fn = tf.function(lambda t: layer(t, training=True),
                   input_signature=[tf.TensorSpec([None, None, None, 2])])
  assert fn(tf.ones((2, 11, 9, 2))).shape == (2, 11, 9, 2)


def test_dropblock_bad_arguments():
  with pytest.raises(ValueError, match="block_size"):
    DropBlock(0, 0.9)
  with pytest.raises(ValueError, match="keep_prob"):
    DropBlock(3, 0.0)


def test_regularization_configs_roundtrip():
  for layer in (DropPath(0.25), DropBlock(5, 0.85)):
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
