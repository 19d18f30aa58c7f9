"""Squeeze-and-Excitation: the simplified one-FC form and the classic two-FC form."""
import tensorflow as tf
import tf_keras

from tfvision.layers.activations import get_activation
from tfvision.utils import validation


def make_divisible(value, divisor=8, min_value=None, round_limit=0.9):
  """Rounds `value` to a multiple of `divisor`, never below `round_limit * value`.

  The channel rounding of MobileNet / timm (`make_divisible`).
  """
  min_value = min_value or divisor
  rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
  if rounded < round_limit * value:
    rounded += divisor
  return rounded


@tf_keras.utils.register_keras_serializable(package="tfvision")
class SimplifiedSqueezeExcite(tf_keras.layers.Layer):
  """s = hard_sigmoid(W GAP(x) + b); y = s * x (swidernet.md Eq. 1).

  One fully connected layer (CenterMask, Lee & Park 2020) as a 1x1 conv with bias from
  C to C channels, and MobileNetV3's hard sigmoid relu6(x + 3) / 6. The kernel uses
  tf_keras' VarianceScaling default, as deeplab2's `SimplifiedSqueezeAndExcite`.

  Args:
    weight_decay: L2 weight decay on the kernel.
  Input: [B, H, W, C]; output: same shape.
  """

  def __init__(self, weight_decay=0.0, **kwargs):
    super().__init__(**kwargs)
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)

  def build(self, input_shape):
    channels = input_shape[-1]
    if channels is None:
      raise ValueError(f"SimplifiedSqueezeExcite needs a known channel count, received "
                       f"input_shape={tuple(input_shape)!r}")
    self.fc = tf_keras.layers.Conv2D(
        channels, 1, use_bias=True, kernel_initializer="variance_scaling",
        kernel_regularizer=(tf_keras.regularizers.l2(self.weight_decay)
                            if self.weight_decay else None),
        name="fc")
    self.fc.build(tf.TensorShape([None, 1, 1, channels]))
    super().build(input_shape)

  def call(self, inputs):
    pooled = tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)
    gate = tf.nn.relu6(self.fc(pooled) + 3.0) * (1.0 / 6.0)
    return inputs * gate

  def get_config(self):
    config = super().get_config()
    config.update(weight_decay=self.weight_decay)
    return config


@tf_keras.utils.register_keras_serializable(package="tfvision")
class SqueezeExcite(tf_keras.layers.Layer):
  """Classic SE (Hu et al. 2018): GAP -> FC reduce -> act -> FC expand -> gate -> scale.

  Args:
    se_ratio: reduced channels = input channels * se_ratio (SENet's 1/16 = 0.0625).
    reduced_channels: explicit reduced width (overrides se_ratio when given).
    divisor: round the reduced width to a multiple of this (1 = plain int truncation).
    activation: activation after the reduce FC.
    gate: gating activation ("sigmoid" or "hard_sigmoid").
    weight_decay: L2 weight decay on both kernels.
  Input: [B, H, W, C]; output: same shape.
  """

  def __init__(self, se_ratio=0.0625, reduced_channels=None, divisor=1, activation="relu",
               gate="sigmoid", weight_decay=0.0, **kwargs):
    super().__init__(**kwargs)
    if reduced_channels is None:
      validation.check_positive("se_ratio", se_ratio)
    else:
      validation.check_positive("reduced_channels", reduced_channels, integer=True)
    self.se_ratio = se_ratio
    self.reduced_channels = reduced_channels
    self.divisor = validation.check_positive("divisor", divisor, integer=True)
    self.activation = activation
    self.gate = gate
    self._act = get_activation(activation)
    self._gate = get_activation(gate, "gate")
    if self._gate is None:
      raise ValueError(f"gate must be a gating activation, received gate={gate!r}")
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)

  def build(self, input_shape):
    channels = input_shape[-1]
    if channels is None:
      raise ValueError(f"SqueezeExcite needs a known channel count, received "
                       f"input_shape={tuple(input_shape)!r}")
    if self.reduced_channels is not None:
      reduced = self.reduced_channels
    elif self.divisor > 1:
      reduced = make_divisible(channels * self.se_ratio, self.divisor)
    else:
      reduced = max(1, int(channels * self.se_ratio))
    reg = tf_keras.regularizers.l2(self.weight_decay) if self.weight_decay else None
    self.reduce = tf_keras.layers.Conv2D(reduced, 1, use_bias=True, kernel_regularizer=reg,
                                         name="reduce")
    self.expand = tf_keras.layers.Conv2D(channels, 1, use_bias=True, kernel_regularizer=reg,
                                         name="expand")
    self.reduce.build(tf.TensorShape([None, 1, 1, channels]))
    self.expand.build(tf.TensorShape([None, 1, 1, reduced]))
    super().build(input_shape)

  def call(self, inputs):
    x = tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)
    x = self.reduce(x)
    if self._act is not None:
      x = self._act(x)
    x = self.expand(x)
    return inputs * self._gate(x)

  def get_config(self):
    config = super().get_config()
    config.update(se_ratio=self.se_ratio, reduced_channels=self.reduced_channels,
                  divisor=self.divisor, activation=self.activation, gate=self.gate,
                  weight_decay=self.weight_decay)
    return config
