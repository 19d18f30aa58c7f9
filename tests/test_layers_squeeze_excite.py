"""Simplified (one-FC, hard sigmoid) and classic squeeze-and-excitation."""
import numpy as np
import pytest
import tensorflow as tf

from tfvision.layers import Normalize, SimplifiedSqueezeExcite, SqueezeExcite, hard_sigmoid


def _rand(shape, seed=0):
  return np.random.RandomState(seed).normal(size=shape).astype("float32")


def test_hard_sigmoid_is_relu6_over_6():
  x = np.linspace(-5, 5, 41).astype("float32")
  np.testing.assert_allclose(hard_sigmoid(x).numpy(), np.clip(x + 3, 0, 6) / 6, atol=1e-7)


def test_simplified_se_matches_equation_1():
  x = _rand((2, 4, 4, 6))
  layer = SimplifiedSqueezeExcite()
  layer(x)
  assert [w.shape for w in layer.trainable_weights] == [(1, 1, 6, 6), (6,)]
  weight, bias = _rand((1, 1, 6, 6), 1), _rand((6,), 2)
  layer.fc.set_weights([weight, bias])
  z = x.mean(axis=(1, 2))
  s = np.clip(z @ weight[0, 0] + bias + 3, 0, 6) / 6
  np.testing.assert_allclose(layer(x).numpy(), x * s[:, None, None, :], atol=1e-5)


def test_classic_se_reduction_and_sigmoid_gate():
  x = _rand((2, 3, 3, 32))
  layer = SqueezeExcite(se_ratio=0.25)
  y = layer(x).numpy()
  assert layer.reduce.kernel.shape == (1, 1, 32, 8)
  z = x.mean(axis=(1, 2))
  hidden = np.maximum(z @ layer.reduce.kernel.numpy()[0, 0] + layer.reduce.bias.numpy(), 0)
  gate = 1 / (1 + np.exp(-(hidden @ layer.expand.kernel.numpy()[0, 0] +
                            layer.expand.bias.numpy())))
  np.testing.assert_allclose(y, x * gate[:, None, None, :], atol=1e-5)
  assert SqueezeExcite(reduced_channels=5).get_config()["reduced_channels"] == 5


def test_se_configs_roundtrip_and_bad_arguments():
  for layer in (SimplifiedSqueezeExcite(1e-4), SqueezeExcite(0.125, divisor=8)):
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
  with pytest.raises(ValueError, match="se_ratio"):
    SqueezeExcite(se_ratio=0)
  with pytest.raises(ValueError, match="gate"):
    SqueezeExcite(gate="nope")


def test_normalize_layer():
  x = np.full((1, 2, 2, 3), 255.0, "float32")
  y = Normalize((127.5,) * 3, (127.5,) * 3)(x).numpy()
  np.testing.assert_allclose(y, np.ones_like(y))
  with pytest.raises(ValueError, match="std"):
    Normalize((0.0,), (0.0,))
  layer = Normalize()
  assert Normalize.from_config(layer.get_config()).get_config() == layer.get_config()
  assert tf.is_tensor(layer(x))
