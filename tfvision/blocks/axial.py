"""The axial-attention bottleneck block of Axial-ResNet (Wang et al., ECCV 2020, Sec. 3).

A residual bottleneck whose 3x3 convolution is replaced by height-axis then width-axis
position-sensitive attention: 1x1 conv + BN + ReLU, AxialAttention2D, ReLU, 1x1 conv +
BN (gamma zero-initialised, so the block starts as the identity). The arrangement is
deeplab2's `AxialBlock` (`model/layers/axial_blocks.py`), like
`tfvision.blocks.residual.WideResidualBlock`: the block takes the *non-activated* sum
of the previous block, applies ReLU first, takes the shortcut from the activated input
and returns the non-activated sum. The attention output gets a ReLU but no extra batch
norm: its last operation is already the batch norm of the retrieved terms.

In training the whole block is recomputed in the backward pass by default
(`recompute_grad`, `tfvision.layers.recompute`): deeplab2's `axial_use_recompute_grad`
defaults to True: an axial block keeps several logits-sized tensors ([B, X, heads, L,
L]) per pass for the backward pass otherwise.
"""
import tensorflow as tf
import tf_keras

from tfvision.layers import recompute
from tfvision.layers.activations import get_activation
from tfvision.layers.axial_attention import DEFAULT_MAX_SPAN, AxialAttention2D
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.regularization import DropPath
from tfvision.layers.squeeze_excite import SimplifiedSqueezeExcite
from tfvision.utils import validation


@tf_keras.utils.register_keras_serializable(package="tfvision")
class AxialBottleneckBlock(tf_keras.layers.Layer):
  """1x1 conv, axial attention (height then width), 1x1 conv; deeplab2 residual style.

  Args:
    filters: [f1, f2, f3]: the first 1x1 conv's width, the attention's base width
      (key depth f2 * key_expansion, value depth f2 * value_expansion) and the output
      width. deeplab2 uses [f * expansion, f, 4 f] with expansion 2 (Axial-ResNet) or
      4 (Axial-SWideRNet).
    strides: 1 or 2, applied by subsampling after each attention pass (and by the
      projection shortcut).
    num_heads: attention heads (8 in the paper and deeplab2).
    key_expansion, value_expansion: key and value depth over f2 (deeplab2: 1 and 2 for
      Axial-ResNet, 2 and 4 for Axial-SWideRNet).
    max_span: the relative embeddings cover distances up to max_span - 1: the longest
      axis of global attention and the largest span.
    span: None (global attention) or the odd local span of both attention passes
      (`PositionSensitiveAxialAttention`).
    position_sensitive: the three relative-position terms of Eq. 4; False gives plain
      content axial attention.
    use_se: simplified SE on the branch output (deeplab2 applies it in axial blocks too).
    drop_path_rate: stochastic-depth drop probability of the branch.
    activation: activation name.
    norm, norm_momentum, norm_epsilon: normalisation settings (also inside attention).
    weight_decay: L2 on conv kernels, the projection and the embeddings.
    recompute_grad: in training, keep only the block's input for the backward pass and
      recompute the block there (deeplab2's default for axial blocks: True).
  Input: non-activated [B, H, W, C]; output: non-activated [B, H/s, W/s, f3].
  """

  def __init__(self, filters, strides=1, num_heads=8, key_expansion=1.0,
               value_expansion=2.0, max_span=DEFAULT_MAX_SPAN, position_sensitive=True,
               use_se=False, drop_path_rate=0.0, activation="relu", norm="batch",
               norm_momentum=0.99, norm_epsilon=1e-3, weight_decay=0.0, span=None,
               recompute_grad=True, **kwargs):
    super().__init__(**kwargs)
    filters = list(filters) if isinstance(filters, (list, tuple)) else filters
    if not isinstance(filters, list) or len(filters) != 3:
      raise ValueError(f"an axial bottleneck block needs 3 filter counts, received "
                       f"filters={filters!r}")
    for f in filters:
      validation.check_positive("filters", f, integer=True)
    self.filters = [int(f) for f in filters]
    self.strides = validation.check_positive("strides", strides, integer=True)
    if not isinstance(position_sensitive, bool):
      raise ValueError(f"position_sensitive must be True or False, received "
                       f"position_sensitive={position_sensitive!r}")
    self.num_heads = num_heads
    self.key_expansion = key_expansion
    self.value_expansion = value_expansion
    self.max_span = max_span
    self.position_sensitive = position_sensitive
    self.use_se = bool(use_se)
    self.drop_path_rate = drop_path_rate
    self.activation = activation
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.weight_decay = weight_decay
    self.span = span
    self.recompute_grad = recompute.check_flag(recompute_grad)
    self._act = get_activation(activation)

    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  weight_decay=weight_decay)
    self.conv1 = ConvNormAct(self.filters[0], 1, activation=activation, name="conv1",
                             **common)
    self.attention = AxialAttention2D(
        self.filters[1], strides=strides, key_expansion=key_expansion,
        value_expansion=value_expansion, num_heads=num_heads, max_span=max_span,
        use_query_rpe=position_sensitive, use_key_rpe=position_sensitive,
        use_value_rpe=position_sensitive, span=span, name="attention", **common)
    # Zero-initialised last BN: each block starts as the identity (Goyal et al.).
    self.conv3 = ConvNormAct(self.filters[2], 1, activation=None, gamma_initializer="zeros",
                             name="conv3", **common)
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

  # Plain Python control flow on static values only: skipping autograph's conversion
  # makes building a model of many axial layers several times faster.
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
    x = self.conv1(x, training=training)
    x = self.attention(x, training=training)
    if self._act is not None:
      x = self._act(x)
    x = self.conv3(x, training=training)
    if self.se is not None:
      x = self.se(x)
    if self.drop_path is not None:
      x = self.drop_path(x, training=training)
    return x + shortcut

  def get_config(self):
    config = super().get_config()
    config.update(
        filters=list(self.filters), strides=self.strides, num_heads=self.num_heads,
        key_expansion=self.key_expansion, value_expansion=self.value_expansion,
        max_span=self.max_span, position_sensitive=self.position_sensitive,
        use_se=self.use_se, drop_path_rate=self.drop_path_rate,
        activation=self.activation, norm=self.norm, norm_momentum=self.norm_momentum,
        norm_epsilon=self.norm_epsilon, weight_decay=self.weight_decay, span=self.span,
        recompute_grad=self.recompute_grad)
    return config
