"""Analytic MAC counting from traced graphs."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfvision.layers import AxialAttention2D
from tfvision.utils.flops import count_macs, format_count


def test_counts_convolutions_dense_and_einsum_exactly():
  inputs = tf_keras.Input((16, 16, 3))
  x = tf_keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)      # 16*16*8*27
  x = tf_keras.layers.Conv2D(8, 3, strides=2, padding="same", groups=2)(x)      # 8*8*8*36
  x = tf_keras.layers.DepthwiseConv2D(5, padding="same")(x)                     # 8*8*8*25
  y = tf_keras.layers.Lambda(lambda t: tf.einsum("bhwc,bhwd->bcd", t, t))(x)   # 8*8*8*8
  x = tf_keras.layers.GlobalAveragePooling2D()(x)
  x = tf_keras.layers.Dense(10)(x)                                               # 8*10
  model = tf_keras.Model(inputs, [x, y])
  total, parts = count_macs(model, (16, 16, 3), breakdown=True)
  assert parts["Conv2D"] == 16 * 16 * 8 * 27 + 8 * 8 * 8 * 36
  assert parts["DepthwiseConv2dNative"] == 8 * 8 * 8 * 25
  assert parts["Einsum"] == 8 * 8 * 8 * 8
  assert parts["MatMul"] == 8 * 10
  assert total == sum(parts.values())


def test_batch_matmul_and_keras_resnet50_reference():
  inputs = tf_keras.Input((4, 6))
  out = tf_keras.layers.Lambda(lambda t: tf.matmul(t, t, transpose_b=True))(inputs)
  assert count_macs(tf_keras.Model(inputs, out), (4, 6)) == 4 * 4 * 6


@pytest.mark.slow
def test_keras_resnet50_is_4_1_gmacs():
  model = tf_keras.applications.ResNet50(weights=None)
  macs = count_macs(model, (224, 224, 3))
  # The widely quoted ResNet-50 figure: 4.1 GMACs (3.86G conv + fc at 224).
  assert 3.8e9 < macs < 4.2e9


def test_dynamic_shape_is_reported():
  inputs = tf_keras.Input((None, None, 3))
  model = tf_keras.Model(inputs, tf_keras.layers.Conv2D(2, 1)(inputs))
  assert count_macs(model, (5, 5, 3)) == 25 * 2 * 3
  assert format_count(4_100_000_000, "MACs") == "4.10GMACs"
  assert np.isclose(float(format_count(1234)[:-1]), 1.23)


def test_dilated_convolutions_count_the_real_output_not_the_space_to_batch_padding():
  inputs = tf_keras.Input((41, 41, 4))
  conv = tf_keras.layers.Conv2D(6, 3, padding="same", dilation_rate=18, use_bias=False)
  depthwise = tf_keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=6)
  model = tf_keras.Model(inputs, [conv(inputs), depthwise(inputs)])
  _, parts = count_macs(model, (41, 41, 4), breakdown=True)
  assert parts["Conv2D"] == 41 * 41 * 6 * 9 * 4
  assert parts["DepthwiseConv2dNative"] == 41 * 41 * 4 * 9


def test_strided_axial_attention_counts_only_kept_queries_at_inference():
  """Height pass on 8 x 8 (key depth 4, value depth 8, 2 heads), then width pass on the
  kept 4 x 8; at inference each pass computes half of its queries."""
  inputs = tf_keras.Input((8, 8, 4))
  model = tf_keras.Model(inputs, AxialAttention2D(4, strides=2, num_heads=2)(inputs))
  # Per pass: projection + 3 similarity terms (depth 2) + 2 retrievals (depth 4).
  height_full = 64 * 4 * 16 + 3 * (8 * 2 * 8 * 8 * 2) + 2 * (8 * 2 * 8 * 8 * 4)
  height_kept = 64 * 4 * 16 + 3 * (8 * 2 * 4 * 8 * 2) + 2 * (8 * 2 * 4 * 8 * 4)
  width_full = 32 * 8 * 16 + 3 * (4 * 2 * 8 * 8 * 2) + 2 * (4 * 2 * 8 * 8 * 4)
  width_kept = 32 * 8 * 16 + 3 * (4 * 2 * 4 * 8 * 2) + 2 * (4 * 2 * 4 * 8 * 4)
  assert count_macs(model, (8, 8, 4), training=True) == height_full + width_full
  assert count_macs(model, (8, 8, 4)) == height_kept + width_kept
