"""Pale Transformer block (Eq. 6-8) and its overlapping-convolution patch merging.

Where pale-transformer.md is silent, CSWin (microsoft/CSWin-Transformer `cswin.py`), which
the paper follows for the architecture, decided:
- pre-norm LayerNorms (Eq. 7-8) with PyTorch's epsilon 1e-5 (tf_keras defaults to 1e-3);
- the MLP is Linear(C, 4C) -> exact (erf) GELU -> Linear(4C, C), as ViT / CSWin `Mlp`;
- no LayerScale (neither the paper nor CSWin has one);
- stochastic depth on the attention and MLP branches, not on the CPE (Eq. 6 has none);
- patch merging is Conv2d + LayerNorm (CSWin `stage1_conv_embed`: 7x7 stride 4 padding 2;
  `Merge_Block`: 3x3 stride 2 padding 1), the "overlapping convolution ... the same as
  (Wu et al. 2021a; Dong et al. 2021)" of Sec. "Overall Architecture";
- Linear weights trunc_normal(std=0.02) with zero bias (CSWin `_init_weights`); conv
  weights keep PyTorch's default (kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in))).
"""
import tensorflow as tf
import tf_keras

from tfvision.layers import recompute
from tfvision.layers.activations import get_activation
from tfvision.layers.pale_attention import (DIRECTIONS, ConditionalPositionEncoding,
                                            PaleShapedAttention, check_heads,
                                            check_pale_size, linear)
from tfvision.layers.regularization import DropPath
from tfvision.utils import validation

LAYER_NORM_EPSILON = 1e-5


def _torch_conv_initializer():
  # kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = k*k*C_in.
  return tf_keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


@tf_keras.utils.register_keras_serializable(package="tfvision")
class OverlappingPatchMerging(tf_keras.layers.Layer):
  """Zero padding -> Conv2D (with bias) -> LayerNorm: Pale's patch merging layer.

  7x7 stride 4 padding 2 before stage 1 and 3x3 stride 2 padding 1 before stages 2-4
  (Sec. "Overall Architecture"; CSWin's and CvT's explicit paddings), so a 224 input
  gives 56, 28, 14, 7.

  Args:
    filters: output channels (Table 1's C_i).
    kernel_size: 7 or 3.
    strides: 4 or 2.
    padding: zeros added on every side (PyTorch's `padding`).
    layer_norm_epsilon: LayerNorm epsilon (PyTorch's 1e-5).
  Input: [B, H, W, C_in]; output: [B, floor((H + 2p - k) / s) + 1, ..., filters].
  """

  def __init__(self, filters, kernel_size=3, strides=2, padding=1,
               layer_norm_epsilon=LAYER_NORM_EPSILON, **kwargs):
    super().__init__(**kwargs)
    self.filters = validation.check_positive("filters", filters, integer=True)
    self.kernel_size = validation.check_positive("kernel_size", kernel_size, integer=True)
    self.strides = validation.check_positive("strides", strides, integer=True)
    self.padding = validation.check_non_negative("padding", padding, integer=True)
    self.layer_norm_epsilon = validation.check_positive("layer_norm_epsilon",
                                                        layer_norm_epsilon)
    self.pad = tf_keras.layers.ZeroPadding2D(padding, name="pad") if padding else None
    self.conv = tf_keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="valid", use_bias=True,
        kernel_initializer=_torch_conv_initializer(), name="conv")
    self.norm = tf_keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm")

  def call(self, inputs):
    x = self.pad(inputs) if self.pad is not None else inputs
    return self.norm(self.conv(x))

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                  padding=self.padding, layer_norm_epsilon=self.layer_norm_epsilon)
    return config


@tf_keras.utils.register_keras_serializable(package="tfvision")
class PaleTransformerBlock(tf_keras.layers.Layer):
  """X~ = X + CPE(X); X^ = X~ + Attn(LN(X~)); X = X^ + MLP(LN(X^)) (Eq. 6-8).

  Args:
    channels: C (the block keeps it).
    num_heads: attention heads (Table 1's H_i).
    pale_size: int or (s_r, s_c) (Table 1's S_i).
    mode: attention mode of `PaleShapedAttention` ("parallel" is the paper's).
    sequential_direction: "row" or "column" for mode "sequential".
    mlp_ratio: MLP expansion (Table 1's R_i = 4).
    drop_path_rate: stochastic depth of the attention and MLP branches.
    layer_norm_epsilon: LayerNorm epsilon (PyTorch's 1e-5).
    activation: the MLP's activation (GELU, exact erf form, as CSWin / Swin).
    norm, norm_momentum, norm_epsilon: BatchNorm of the q/k/v projections (kind and
      PyTorch's defaults).
    recompute_grad: in training, recompute the block in the backward pass instead of
      keeping its activations (`tfvision.layers.recompute`).
  Input: [B, H, W, C]; output: same shape.
  """

  def __init__(self, channels, num_heads, pale_size=7, mode="parallel",
               sequential_direction="row", mlp_ratio=4.0, drop_path_rate=0.0,
               layer_norm_epsilon=LAYER_NORM_EPSILON, activation="gelu", norm="batch",
               norm_momentum=0.9, norm_epsilon=1e-5, recompute_grad=False, **kwargs):
    super().__init__(**kwargs)
    check_heads(channels, num_heads, mode)
    check_pale_size(pale_size)
    self.channels = channels
    self.num_heads = num_heads
    self.pale_size = list(pale_size) if isinstance(pale_size, (list, tuple)) else pale_size
    self.mode = mode
    self.sequential_direction = validation.check_in(
        "sequential_direction", sequential_direction, DIRECTIONS)
    self.mlp_ratio = validation.check_positive("mlp_ratio", mlp_ratio)
    self.drop_path_rate = validation.check_probability("drop_path_rate", drop_path_rate)
    self.layer_norm_epsilon = validation.check_positive("layer_norm_epsilon",
                                                        layer_norm_epsilon)
    self.activation = activation
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.recompute_grad = recompute.check_flag(recompute_grad)
    hidden = int(channels * mlp_ratio)
    self.cpe = ConditionalPositionEncoding(name="cpe")
    self.norm1 = tf_keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                    name="norm1")
    self.attention = PaleShapedAttention(
        channels, num_heads, pale_size=pale_size, mode=mode,
        sequential_direction=sequential_direction, norm=norm, norm_momentum=norm_momentum,
        norm_epsilon=norm_epsilon, name="attention")
    self.norm2 = tf_keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                    name="norm2")
    self.fc1 = linear(hidden, activation=get_activation(activation), name="fc1")
    self.fc2 = linear(channels, name="fc2")
    self.drop_path = DropPath(drop_path_rate, name="drop_path")

  def build(self, input_shape):
    if input_shape[-1] != self.channels:
      raise ValueError(f"PaleTransformerBlock keeps its channels={self.channels}, received "
                       f"input_shape={tuple(input_shape)!r}")
    super().build(input_shape)

  def call(self, inputs, training=None):
    return recompute.call(self, self._forward, inputs, training)

  def _forward(self, inputs, training):
    x = self.cpe(inputs)
    x = x + self.drop_path(self.attention(self.norm1(x), training=training),
                           training=training)
    return x + self.drop_path(self.fc2(self.fc1(self.norm2(x))), training=training)

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update(channels=self.channels, num_heads=self.num_heads,
                  pale_size=self.pale_size, mode=self.mode,
                  sequential_direction=self.sequential_direction, mlp_ratio=self.mlp_ratio,
                  drop_path_rate=self.drop_path_rate,
                  layer_norm_epsilon=self.layer_norm_epsilon, activation=self.activation,
                  norm=self.norm, norm_momentum=self.norm_momentum,
                  norm_epsilon=self.norm_epsilon, recompute_grad=self.recompute_grad)
    return config
