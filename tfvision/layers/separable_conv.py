"""Depthwise-separable convolution with normalisation and activation after each half."""
import tensorflow as tf
import tf_keras

from tfvision.layers.activations import get_activation
from tfvision.layers.conv import make_norm
from tfvision.utils import validation

_NORMS = ("batch", "sync_batch", None)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class SeparableConvNormAct(tf_keras.layers.Layer):
  """Depthwise conv -> norm -> act -> 1x1 conv -> norm -> act (stride 1).

  The arrangement of deeplab2's `SeparableConv2DSame` (normalisation and activation after
  the depthwise and after the pointwise convolution), which the Panoptic-DeepLab decoder,
  heads and (in swidernet.md Table 3's "Sep-Conv" setting) ASPP use. As in deeplab2 the
  depthwise kernel keeps Keras' default glorot-uniform initializer and the pointwise
  kernel is he-normal. Stride is always 1, so "same" padding is symmetric for the odd
  kernels used here.

  Args:
    filters: output channels of the pointwise convolution.
    kernel_size: odd spatial size of the depthwise kernel.
    dilation_rate: atrous rate of the depthwise kernel.
    norm: "batch", "sync_batch" or None.
    norm_momentum, norm_epsilon: normalisation settings.
    activation: activation name applied after both halves.
    weight_decay: L2 weight decay on both kernels.
  Input: [B, H, W, C]; output: [B, H, W, filters].
  """

  def __init__(self, filters, kernel_size=3, dilation_rate=1, norm="batch",
               norm_momentum=0.99, norm_epsilon=1e-3, activation="relu", weight_decay=0.0,
               **kwargs):
    super().__init__(**kwargs)
    self.filters = validation.check_positive("filters", filters, integer=True)
    self.kernel_size = validation.check_positive("kernel_size", kernel_size, integer=True)
    if kernel_size % 2 == 0:
      raise ValueError(f"kernel_size must be odd, received kernel_size={kernel_size!r}")
    self.dilation_rate = validation.check_positive("dilation_rate", dilation_rate,
                                                   integer=True)
    self.norm = validation.check_in("norm", norm, _NORMS)
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.activation = activation
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)
    self._act = get_activation(activation)
    regularizer = tf_keras.regularizers.l2(weight_decay) if weight_decay else None
    self.depthwise = tf_keras.layers.DepthwiseConv2D(
        kernel_size, padding="same", dilation_rate=dilation_rate, use_bias=norm is None,
        depthwise_regularizer=regularizer, name="depthwise")
    self.depthwise_bn = make_norm(norm, norm_momentum, norm_epsilon, name="depthwise_bn")
    self.pointwise = tf_keras.layers.Conv2D(
        filters, 1, use_bias=norm is None, kernel_initializer="he_normal",
        kernel_regularizer=regularizer, name="pointwise")
    self.pointwise_bn = make_norm(norm, norm_momentum, norm_epsilon, name="pointwise_bn")

  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    x = self.depthwise(inputs)
    if self.depthwise_bn is not None:
      x = self.depthwise_bn(x, training=training)
    if self._act is not None:
      x = self._act(x)
    x = self.pointwise(x)
    if self.pointwise_bn is not None:
      x = self.pointwise_bn(x, training=training)
    if self._act is not None:
      x = self._act(x)
    return x

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size,
                  dilation_rate=self.dilation_rate, norm=self.norm,
                  norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon,
                  activation=self.activation, weight_decay=self.weight_decay)
    return config
