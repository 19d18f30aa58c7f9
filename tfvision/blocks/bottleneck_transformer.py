"""ResNet bottleneck block and the Bottleneck Transformer (BoT) block of BoTNet.

The BoT block (botnet.md Fig. 3 right, Sec. 3) is a ResNet bottleneck block whose 3x3
convolution is replaced by global multi-head self-attention, followed by BN and the
activation; the strided block applies 2x2 average pooling with stride 2 after the
attention (Sec. 3, "Since all2all attention is not a strided operation, we use a 2x2
average-pooling with a stride 2 for the first BoT block"; the authors' `BoT_Block`
pools after `MHSA`, so the first c5 block attends over the stride-16 map, as Table 1's
caption says: 64 x 64 for a 1024 x 1024 image).

Both blocks are post-activation (ResNet v1, ReLU after the sum), with the stride in the
3x3 convolution (ResNet v1.5, as the TPU ResNet of the paper's codebase and Model
Garden), a 1x1 projection shortcut with BN where the shape changes, and a
zero-initialised last BN (the gist's `BNReLU(..., init_zero=True)`). The authors' gist
also applies the activation to the projection shortcut (`BNReLU(shortcut, ...,
nonlinearity=True)`); a ResNet does not, and the paper says c5's MHSA is the *only*
difference from ResNet-50 (Table 1), so our shortcut has no activation.
"""
import tensorflow as tf
import tf_keras

from tfvision.layers import recompute
from tfvision.layers.activations import get_activation
from tfvision.layers.conv import ConvNormAct, make_norm
from tfvision.layers.regularization import DropPath
from tfvision.layers.relative_attention import RelativeMultiHeadSelfAttention2D
from tfvision.layers.squeeze_excite import SqueezeExcite
from tfvision.utils import validation


class _BottleneckBlockBase(tf_keras.layers.Layer):
  """conv1 (1x1) -> spatial mixing -> conv3 (1x1) [-> SE] + shortcut -> activation.

  Subclasses create their spatial layers after calling this constructor and implement
  `_spatial(x, training)`.
  """

  def __init__(self, filters, strides=1, expansion=4, se_ratio=0.0, drop_path_rate=0.0,
               activation="relu", norm="batch", norm_momentum=0.9, norm_epsilon=1e-5,
               weight_decay=0.0, recompute_grad=False, **kwargs):
    super().__init__(**kwargs)
    self.filters = validation.check_positive("filters", filters, integer=True)
    self.strides = validation.check_positive("strides", strides, integer=True)
    self.expansion = validation.check_positive("expansion", expansion, integer=True)
    self.se_ratio = validation.check_non_negative("se_ratio", se_ratio)
    self.drop_path_rate = validation.check_probability("drop_path_rate", drop_path_rate)
    self.activation = activation
    self._act = get_activation(activation)
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)
    self.recompute_grad = recompute.check_flag(recompute_grad)
    self._common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                        weight_decay=weight_decay)
    out_channels = expansion * filters
    self.conv1 = ConvNormAct(filters, 1, activation=activation, name="conv1", **self._common)
    self.conv3 = ConvNormAct(out_channels, 1, activation=None, gamma_initializer="zeros",
                             name="conv3", **self._common)
    self.se = (SqueezeExcite(se_ratio=se_ratio, activation=activation,
                             weight_decay=weight_decay, name="se") if se_ratio else None)
    self.drop_path = DropPath(self.drop_path_rate, name="drop_path") if drop_path_rate else None
    self.shortcut = None

  def build(self, input_shape):
    out_channels = self.expansion * self.filters
    if input_shape[-1] != out_channels or self.strides > 1:
      self.shortcut = ConvNormAct(out_channels, 1, strides=self.strides, activation=None,
                                  name="shortcut", **self._common)
    super().build(input_shape)

  # Only Python control flow on constructor arguments: no autograph conversion needed,
  # and skipping it makes building deep models faster.
  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    return recompute.call(self, self._forward, inputs, training)

  @tf.autograph.experimental.do_not_convert
  def _forward(self, inputs, training):
    shortcut = (self.shortcut(inputs, training=training) if self.shortcut is not None
                else inputs)
    x = self.conv1(inputs, training=training)
    x = self._spatial(x, training)
    x = self.conv3(x, training=training)
    if self.se is not None:
      x = self.se(x)
    if self.drop_path is not None:
      x = self.drop_path(x, training=training)
    x = x + shortcut
    return self._act(x) if self._act is not None else x

  def get_config(self):
    config = super().get_config()
    config.update(
        filters=self.filters, strides=self.strides, expansion=self.expansion,
        se_ratio=self.se_ratio, drop_path_rate=self.drop_path_rate,
        activation=self.activation, norm=self.norm, norm_momentum=self.norm_momentum,
        norm_epsilon=self.norm_epsilon, weight_decay=self.weight_decay,
        recompute_grad=self.recompute_grad)
    return config


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ResNetBottleneckBlock(_BottleneckBlockBase):
  """Bottleneck residual block: 1x1 -> 3x3 (strided) -> 1x1, post-activation.

  Args:
    filters: bottleneck width; the block outputs `expansion * filters` channels.
    strides: stride of the 3x3 convolution and of the projection shortcut.
    expansion: output width / bottleneck width (ResNet: 4).
    se_ratio: squeeze-excitation on the branch output with this reduction ratio
      (the scaled BoTNets of botnet.md Sec. 4.7.4: 0.0625); 0 disables.
    drop_path_rate: stochastic-depth drop probability of the branch.
    activation: activation name (ReLU in the paper; the gist also offers SiLU).
    norm, norm_momentum, norm_epsilon: normalisation (the gist: BN decay 0.9,
      epsilon 1e-5).
    weight_decay: L2 weight decay on the kernels.
    recompute_grad: in training, recompute the block in the backward pass instead of
      keeping its activations (`tfvision.layers.recompute`).
  Input: [B, H, W, C]; output: [B, ceil(H / strides), ceil(W / strides),
  expansion * filters], activated.
  """

  def __init__(self, filters, strides=1, **kwargs):
    super().__init__(filters, strides=strides, **kwargs)
    self.conv2 = ConvNormAct(self.filters, 3, strides=self.strides,
                             activation=self.activation, name="conv2", **self._common)

  def _spatial(self, x, training):
    return self.conv2(x, training=training)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class BottleneckTransformerBlock(_BottleneckBlockBase):
  """BoT block: 1x1 -> MHSA (-> 2x2 avg-pool if strided) -> BN, act -> 1x1 (Fig. 3).

  Args:
    filters: bottleneck width (the attention width); output `expansion * filters`.
    strides: 1, or 2 for the first c5 block of BoTNet (2x2 average pooling, stride 2,
      after the attention, as the authors' `BoT_Block`).
    num_heads: attention heads (botnet.md Fig. 4: 4); must divide `filters`.
    max_size: largest attended map, None (size the position tables for the static map
      seen at build time), an int or (height, width); see
      RelativeMultiHeadSelfAttention2D.
    position_encoding, content_logits: botnet.md Table 4 ablations.
    Other arguments as ResNetBottleneckBlock.
  Input: [B, H, W, C]; output: [B, ceil(H / strides), ceil(W / strides),
  expansion * filters], activated.
  """

  def __init__(self, filters, strides=1, num_heads=4, max_size=None,
               position_encoding="relative", content_logits=True, **kwargs):
    validation.check_positive("num_heads", num_heads, integer=True)
    validation.check_positive("filters", filters, integer=True)
    if filters % num_heads:
      raise ValueError(f"num_heads must divide the bottleneck width {filters}, received "
                       f"num_heads={num_heads!r}")
    validation.check_in("strides", strides, (1, 2))
    super().__init__(filters, strides=strides, **kwargs)
    self.num_heads = num_heads
    self.max_size = tuple(max_size) if isinstance(max_size, (tuple, list)) else max_size
    self.position_encoding = position_encoding
    self.content_logits = content_logits
    self.attention = RelativeMultiHeadSelfAttention2D(
        num_heads=num_heads, max_size=max_size, position_encoding=position_encoding,
        content_logits=content_logits, weight_decay=self.weight_decay, name="attention")
    self.pool = (tf_keras.layers.AveragePooling2D(2, strides=2, padding="same", name="pool")
                 if strides == 2 else None)
    self.bn2 = make_norm(self.norm, self.norm_momentum, self.norm_epsilon, name="bn2")

  def _spatial(self, x, training):
    x = self.attention(x)
    if self.pool is not None:
      x = self.pool(x)
    if self.bn2 is not None:
      x = self.bn2(x, training=training)
    return self._act(x) if self._act is not None else x

  def get_config(self):
    config = super().get_config()
    config.update(
        num_heads=self.num_heads,
        max_size=list(self.max_size) if isinstance(self.max_size, (tuple, list))
        else self.max_size,
        position_encoding=self.position_encoding, content_logits=self.content_logits)
    return config
