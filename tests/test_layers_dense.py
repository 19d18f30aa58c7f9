"""ASPP, separable conv and aligned-corner resizing layers of the DeepLab family."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tests import harness
from tfvision.layers import AtrousSpatialPyramidPooling, ResizeToMatch, SeparableConvNormAct
from tfvision.layers.aspp import default_atrous_rates
from tfvision.layers.resize import resize_align_corners


def _params(layer):
  return harness.count_params(layer)


def test_aspp_branches_and_parameter_counts():
  x = tf.random.normal([2, 9, 11, 16])
  standard = AtrousSpatialPyramidPooling(8, [1, 2, 3])
  assert standard(x).shape == (2, 9, 11, 8)
  # 1x1, pool 1x1, three 3x3 and the 5*8 -> 8 projection, each with BN (gamma, beta).
  assert _params(standard) == 2 * (16 * 8 + 16) + 3 * (9 * 16 * 8 + 16) + 40 * 8 + 16
  separable = AtrousSpatialPyramidPooling(8, [1, 2, 3], separable=True)
  separable(x)
  assert _params(separable) == (2 * (16 * 8 + 16) + 3 * (9 * 16 + 32 + 16 * 8 + 16) +
                                40 * 8 + 16)
  projection = AtrousSpatialPyramidPooling(8, None, projection_only=True)
  projection(x)
  assert _params(projection) == 16 * 8 + 16


def test_aspp_image_pooling_branch_sees_the_whole_feature_map():
  layer = AtrousSpatialPyramidPooling(4, [1, 2, 3], dropout_rate=0.0)
  x = np.random.RandomState(0).normal(size=(1, 15, 15, 6)).astype("float32")
  changed = x.copy()
  changed[0, 0, 0] += 10.0
  a, b = layer(x, training=False).numpy(), layer(changed, training=False).numpy()
  # (14, 14) is outside every atrous window around (0, 0) (rate 3: 7 x 7); only the
  # image-pooling branch carries the change there.
  assert not np.allclose(a[0, 14, 14], b[0, 14, 14])
  no_pool = AtrousSpatialPyramidPooling(4, [1, 2, 3], projection_only=True)
  assert np.allclose(no_pool(x).numpy()[0, 14, 14], no_pool(changed).numpy()[0, 14, 14])


def test_default_rates_scale_with_output_stride_and_bad_rates_raise():
  assert default_atrous_rates(16) == [6, 12, 18]
  assert default_atrous_rates(8) == [12, 24, 36]
  assert default_atrous_rates(32) == [3, 6, 9]
  with pytest.raises(ValueError, match="atrous_rates"):
    AtrousSpatialPyramidPooling(8, [6, 12])
  with pytest.raises(ValueError, match="atrous_rates"):
    AtrousSpatialPyramidPooling(8, [6, 0, 18])


def test_separable_conv_is_depthwise_bn_relu_pointwise_bn_relu():
  layer = SeparableConvNormAct(6, 5, dilation_rate=2)
  out = layer(tf.random.normal([1, 12, 12, 4]))
  assert out.shape == (1, 12, 12, 6) and float(tf.reduce_min(out)) >= 0.0
  assert _params(layer) == 25 * 4 + 2 * 4 + 4 * 6 + 2 * 6
  assert layer.depthwise.dilation_rate == (2, 2)
  with pytest.raises(ValueError, match="kernel_size"):
    SeparableConvNormAct(6, 4)


@pytest.mark.parametrize("layer", [
    lambda: AtrousSpatialPyramidPooling(8, [2, 4, 6], separable=True),
    lambda: SeparableConvNormAct(3, 3), lambda: ResizeToMatch(rescale_offsets=True)])
def test_configs_round_trip_through_json(layer):
  layer = layer()
  config = json.loads(json.dumps(layer.get_config()))
  assert type(layer).from_config(config).get_config() == layer.get_config()


def test_resize_aligns_corners_and_rescales_offsets():
  x = tf.reshape(tf.range(9, dtype=tf.float32), [1, 3, 3, 1])
  up = resize_align_corners(x, [5, 5]).numpy()[0, ..., 0]
  assert up[0, 0] == 0 and up[-1, -1] == 8 and up[2, 2] == 4 and up[0, 1] == 0.5
  offsets = tf.ones([1, 17, 9, 2])
  reference = tf.zeros([1, 65, 33, 3])
  scaled = ResizeToMatch(rescale_offsets=True)([offsets, reference]).numpy()
  assert scaled.shape == (1, 65, 33, 2)
  np.testing.assert_allclose(scaled[..., 0], 64 / 16)
  np.testing.assert_allclose(scaled[..., 1], 32 / 8)
  same = ResizeToMatch()([offsets, tf.zeros([1, 17, 9, 1])])
  assert same is offsets
