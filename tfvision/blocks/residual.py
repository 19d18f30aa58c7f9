"""Residual blocks of the (Wide-)ResNet family in deeplab2's arrangement.

deeplab2 (`model/layers/axial_blocks.py`, `AxialBlock`) passes *non-activated* features
between blocks: each block applies the activation to its input, takes the shortcut from
the activated input, and returns `branch + shortcut` without activation. The network is
therefore an ordinary post-activation ResNet whose endpoints are the sums before ReLU.
The stride is applied in the first spatial operation (the first 3x3 conv).
"""
import tensorflow as tf
import tf_keras

from tfvision.layers import recompute
from tfvision.layers.activations import get_activation
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.regularization import DropPath
from tfvision.layers.squeeze_excite import SimplifiedSqueezeExcite
from tfvision.utils import validation

_KINDS = ("basic", "bottleneck")


@tf_keras.utils.register_keras_serializable(package="tfvision")
class WideResidualBlock(tf_keras.layers.Layer):
  """Basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1) residual block, deeplab2 style.

  Args:
    filters: [f1, f2] for "basic", [f1, f2, f3] for "bottleneck"; the last entry is the
      output width.
    kind: "basic" or "bottleneck".
    strides: stride of the first 3x3 conv (and of the projection shortcut).
    dilation_rate: atrous rate of the (first) 3x3 conv.
    second_dilation_rate: atrous rate of the second 3x3 conv of a basic block (deeplab2's
      `basic_block_second_conv_atrous_rate`, for atrous consistency across output
      strides); None means `dilation_rate`.
    use_se: simplified SE (swidernet.md Eq. 1) on the branch output, before the sum.
    switchable_atrous: SAC (swidernet.md Eq. 2) for the 3x3 convs (global context
      around them; the switch only where stride is 1, as deeplab2).
    drop_path_rate: stochastic-depth drop probability of the branch.
    activation: activation name.
    norm, norm_momentum, norm_epsilon: normalisation settings.
    weight_decay: L2 on conv kernels.
    recompute_grad: in training, recompute the block in the backward pass instead of
      keeping its activations (`tfvision.layers.recompute`; deeplab2's
      `conv_use_recompute_grad`).
  Input: non-activated [B, H, W, C]; output: non-activated [B, H/s, W/s, filters[-1]].
  """

  def __init__(self, filters, kind="basic", strides=1, dilation_rate=1,
               second_dilation_rate=None, use_se=False, switchable_atrous=False,
               drop_path_rate=0.0, activation="relu", norm="batch", norm_momentum=0.99,
               norm_epsilon=1e-3, weight_decay=0.0, recompute_grad=False, **kwargs):
    super().__init__(**kwargs)
    self.kind = validation.check_in("kind", kind, _KINDS)
    filters = [int(f) for f in filters]
    expected = 2 if kind == "basic" else 3
    if len(filters) != expected:
      raise ValueError(f"a {kind} block needs {expected} filter counts, received "
                       f"filters={filters!r}")
    for f in filters:
      validation.check_positive("filters", f, integer=True)
    self.filters = filters
    self.strides = validation.check_positive("strides", strides, integer=True)
    self.dilation_rate = validation.check_positive("dilation_rate", dilation_rate,
                                                   integer=True)
    self.second_dilation_rate = second_dilation_rate
    self.use_se = bool(use_se)
    self.switchable_atrous = bool(switchable_atrous)
    self.drop_path_rate = drop_path_rate
    self.activation = activation
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.weight_decay = weight_decay
    self.recompute_grad = recompute.check_flag(recompute_grad)
    self._act = get_activation(activation)

    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  weight_decay=weight_decay)
    second_rate = dilation_rate if second_dilation_rate is None else second_dilation_rate
    if kind == "basic":
      self.convs = [
          ConvNormAct(filters[0], 3, strides=strides, dilation_rate=dilation_rate,
                      activation=activation, switchable_atrous=switchable_atrous,
                      name="conv1", **common),
          # Zero-initialised last BN: each block starts as the identity (Goyal et al.).
          ConvNormAct(filters[1], 3, dilation_rate=second_rate, activation=None,
                      gamma_initializer="zeros", switchable_atrous=switchable_atrous,
                      name="conv2", **common),
      ]
    else:
      self.convs = [
          ConvNormAct(filters[0], 1, activation=activation, name="conv1", **common),
          ConvNormAct(filters[1], 3, strides=strides, dilation_rate=dilation_rate,
                      activation=activation, switchable_atrous=switchable_atrous,
                      name="conv2", **common),
          ConvNormAct(filters[2], 1, activation=None, gamma_initializer="zeros",
                      name="conv3", **common),
      ]
    self.se = SimplifiedSqueezeExcite(weight_decay, name="se") if use_se else None
    self.drop_path = DropPath(drop_path_rate, name="drop_path") if drop_path_rate else None
    self.shortcut = None

  def build(self, input_shape):
    if input_shape[-1] != self.filters[-1]:
      self.shortcut = ConvNormAct(
          self.filters[-1], 1, strides=self.strides, activation=None, norm=self.norm,
          norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon,
          weight_decay=self.weight_decay, name="shortcut")
    super().build(input_shape)

  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    return recompute.call(self, self._forward, inputs, training)

  @tf.autograph.experimental.do_not_convert
  def _forward(self, inputs, training):
    x = self._act(inputs) if self._act is not None else inputs
    if self.shortcut is not None:
      shortcut = self.shortcut(x, training=training)
    elif self.strides > 1:
      shortcut = x[:, ::self.strides, ::self.strides, :]
    else:
      shortcut = x
    for conv in self.convs:
      x = conv(x, training=training)
    if self.se is not None:
      x = self.se(x)
    if self.drop_path is not None:
      x = self.drop_path(x, training=training)
    return x + shortcut

  def get_config(self):
    config = super().get_config()
    config.update(
        filters=list(self.filters), kind=self.kind, strides=self.strides,
        dilation_rate=self.dilation_rate, second_dilation_rate=self.second_dilation_rate,
        use_se=self.use_se, switchable_atrous=self.switchable_atrous,
        drop_path_rate=self.drop_path_rate, activation=self.activation, norm=self.norm,
        norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon,
        weight_decay=self.weight_decay, recompute_grad=self.recompute_grad)
    return config
