"""Atrous Spatial Pyramid Pooling (DeepLabV3, Chen et al. 2017) as deeplab2 builds it."""
import tensorflow as tf
import tf_keras

from tfvision.layers.conv import ConvNormAct
from tfvision.layers.separable_conv import SeparableConvNormAct
from tfvision.utils import validation


def default_atrous_rates(output_stride):
  """(6, 12, 18) at output stride 16, doubled at 8 and halved at 32.

  DeepLabV3 Sec. 4 doubles the rates at output stride 8; deeplab2's configs use
  (3, 6, 9) at output stride 32 (`configs/coco/panoptic_deeplab/resnet50_os32`).
  """
  validation.check_in("output_stride", output_stride, (8, 16, 32))
  return [rate * 16 // output_stride for rate in (6, 12, 18)]


def check_atrous_rates(atrous_rates):
  """Three positive integer rates, returned as a list."""
  try:
    rates = [r for r in atrous_rates]
  except TypeError:
    raise ValueError(f"atrous_rates must be three positive integers, received "
                     f"atrous_rates={atrous_rates!r}")
  if len(rates) != 3 or any(isinstance(r, bool) or not isinstance(r, int) or r < 1
                            for r in rates):
    raise ValueError(f"atrous_rates must be three positive integers, received "
                     f"atrous_rates={atrous_rates!r}")
  return rates


@tf_keras.utils.register_keras_serializable(package="tfvision")
class AtrousSpatialPyramidPooling(tf_keras.layers.Layer):
  """ASPP: 1x1 conv, three 3x3 atrous convs and image pooling, concatenated and projected.

  Follows deeplab2 `model/decoder/aspp.py`: every branch is conv -> BN -> ReLU with
  `filters` channels; the image-pooling branch averages the whole feature map (deeplab2
  sets its pool size to the training crop / output stride, which is the whole map when
  evaluating at the crop size), applies a 1x1 conv and is broadcast back; the five
  branches are concatenated and projected by a 1x1 conv, then dropout 0.1.
  `projection_only` keeps only that 1x1 projection (deeplab2's
  `aspp_use_only_1x1_proj_conv`, used by the Axial-DeepLab configs, whose backbones
  already capture long-range context). `separable` uses depthwise-separable 3x3 atrous
  convs, the ASPP half of swidernet.md Table 3's "Sep-Conv" (deeplab2's ASPP is always
  standard; the original Panoptic-DeepLab design is separable).

  Args:
    filters: channels of every branch and of the output.
    atrous_rates: three atrous rates (may be None when `projection_only`).
    separable: depthwise-separable atrous convs.
    projection_only: a single 1x1 projection instead of the five branches.
    dropout_rate: dropout after the projection (five-branch mode only, as deeplab2).
    norm, norm_momentum, norm_epsilon: normalisation settings.
    activation: activation name.
    weight_decay: L2 weight decay on conv kernels.
  Input: [B, H, W, C]; output: [B, H, W, filters].
  """

  def __init__(self, filters=256, atrous_rates=(6, 12, 18), separable=False,
               projection_only=False, dropout_rate=0.1, norm="batch", norm_momentum=0.99,
               norm_epsilon=1e-3, activation="relu", weight_decay=0.0, **kwargs):
    super().__init__(**kwargs)
    self.filters = validation.check_positive("filters", filters, integer=True)
    self.projection_only = bool(projection_only)
    self.atrous_rates = (None if self.projection_only and atrous_rates is None
                         else check_atrous_rates(atrous_rates))
    self.separable = bool(separable)
    self.dropout_rate = validation.check_probability("dropout_rate", dropout_rate)
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.activation = activation
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)
    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  activation=activation, weight_decay=weight_decay)
    self.projection = ConvNormAct(filters, 1, name="projection", **common)
    if self.projection_only:
      return
    self.conv1x1 = ConvNormAct(filters, 1, name="conv1x1", **common)
    self.atrous_convs = []
    for index, rate in enumerate(self.atrous_rates):
      if self.separable:
        conv = SeparableConvNormAct(filters, 3, dilation_rate=rate,
                                    name=f"atrous_conv{index + 1}", **common)
      else:
        conv = ConvNormAct(filters, 3, dilation_rate=rate, name=f"atrous_conv{index + 1}",
                           **common)
      self.atrous_convs.append(conv)
    self.pool_conv = ConvNormAct(filters, 1, name="pool_conv", **common)
    self.dropout = tf_keras.layers.Dropout(self.dropout_rate, name="dropout")

  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    if self.projection_only:
      return self.projection(inputs, training=training)
    branches = [self.conv1x1(inputs, training=training)]
    branches += [conv(inputs, training=training) for conv in self.atrous_convs]
    pooled = tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)
    pooled = self.pool_conv(pooled, training=training)
    # Upsampling a 1x1 map with aligned corners (deeplab2) is a broadcast.
    branches.append(tf.broadcast_to(pooled, tf.shape(branches[0])))
    x = tf.concat(branches, axis=-1)
    x = self.projection(x, training=training)
    return self.dropout(x, training=training)

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)[:-1].concatenate([self.filters])

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, atrous_rates=self.atrous_rates,
                  separable=self.separable, projection_only=self.projection_only,
                  dropout_rate=self.dropout_rate, norm=self.norm,
                  norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon,
                  activation=self.activation, weight_decay=self.weight_decay)
    return config
