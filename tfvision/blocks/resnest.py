"""ResNeSt bottleneck: 1x1 -> split attention -> 1x1, with ResNet-D downsampling.

resnest.md Sec. 5.1 and the authors' `resnest/torch/models/resnet.py` (`Bottleneck`),
which the released weights come from (timm's `ResNestBottleneck` is the same module):

- group width = int(filters * base_width / 64) * cardinality; the output has
  4 * filters channels (expansion 4).
- Average downsampling ("avd"): a strided block downsamples with a 3x3 average pool,
  `AvgPool2d(3, stride, padding=1)` whose average counts the zero padding
  (count_include_pad=True), and the split-attention conv runs at stride 1. The pool
  follows the split attention (ResNeSt) or precedes it (`avd_first`, the "fast"
  variants of resnest.md Sec. 6.2). Which blocks carry the pool is the model's choice
  (`avd`): the first block of stages 2-4, also at stride 1 in dilated stages, as the
  authors' `is_first` rule.
- ResNet-D shortcut: `AvgPool2d(stride, stride, ceil_mode=True,
  count_include_pad=False)` then a 1x1 conv and BN. TF's "same" average pooling with
  a 2x2 window and stride 2 pads the bottom/right at odd sizes and averages over the
  valid entries only, which is exactly that pool.
- Zero-initialised last BN (resnest.md Sec. 5.2, Goyal et al.) by default.
- DropBlock (resnest.md Sec. 5.2) where the authors' Gluon code, which trained the
  published models, puts it: after BN1, after the split attention and after BN3, with
  block size 3 (the PyTorch port has no DropBlock implementation). DropBlock only
  scales by a non-negative mask, so applying it after the ReLU instead of before it is
  the same function.
- Drop path (stochastic depth) on the residual branch, an option not in the paper.
"""
import tensorflow as tf
import tf_keras

from tfvision.layers import recompute
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.regularization import DropBlock, DropPath
from tfvision.layers.split_attention import AUTHORS_CONV_INITIALIZER, SplitAttention
from tfvision.utils import validation

EXPANSION = 4
DROPBLOCK_SIZE = 3


def group_width(filters, base_width, cardinality):
  """Channels of the split-attention conv: int(filters * base_width / 64) * cardinality."""
  return int(filters * (base_width / 64.0)) * cardinality


@tf_keras.utils.register_keras_serializable(package="tfvision")
class AveragePoolDownsample(tf_keras.layers.Layer):
  """3x3 average pool with padding 1 that counts the padding (PyTorch's AvgPool2d(3, s, 1)).

  Args:
    strides: pooling stride (1 in dilated stages, 2 otherwise).
  Input: [B, H, W, C]; output: [B, ceil(H / strides), ceil(W / strides), C].
  """

  def __init__(self, strides=2, **kwargs):
    super().__init__(**kwargs)
    self.strides = validation.check_positive("strides", strides, integer=True)
    # Explicit zeros + "valid" pool: the zeros enter the average (count_include_pad).
    self.pad = tf_keras.layers.ZeroPadding2D(1, name="pad")
    self.pool = tf_keras.layers.AveragePooling2D(3, strides, padding="valid", name="pool")

  def call(self, inputs):
    return self.pool(self.pad(inputs))

  def get_config(self):
    config = super().get_config()
    config.update(strides=self.strides)
    return config


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ResNeStBottleneck(tf_keras.layers.Layer):
  """ResNeSt bottleneck block (post-activation, returns ReLU(branch + shortcut)).

  Args:
    filters: the bottleneck's "planes"; the output has 4 * filters channels.
    strides: the block's stride (taken by the 3x3 average pool when `avd`, else by the
      split-attention conv).
    dilation_rate: atrous rate of the split-attention conv.
    radix, cardinality, base_width: split attention settings (group width
      int(filters * base_width / 64) * cardinality).
    avd: downsample with the 3x3 average pool (applied also at stride 1).
    avd_first: put that pool before the split attention ("fast" variants).
    avg_down: ResNet-D shortcut (2x2 average pool, then 1x1 conv + BN) when the shortcut
      needs a projection; False uses a strided 1x1 conv.
    zero_init_last_bn: zero-initialise the last BN's gamma.
    dropblock_rate: DropBlock drop probability (0 disables; block size 3).
    drop_path_rate: stochastic-depth drop probability of the branch.
    norm, norm_momentum, norm_epsilon: normalisation settings (PyTorch's by default).
    weight_decay: L2 weight decay on kernels.
    recompute_grad: in training, recompute the block in the backward pass instead of
      keeping its activations (`tfvision.layers.recompute`).
  Input: [B, H, W, C]; output: [B, ceil(H / strides), ceil(W / strides), 4 * filters].
  """

  def __init__(self, filters, strides=1, dilation_rate=1, radix=2, cardinality=1,
               base_width=64, avd=True, avd_first=False, avg_down=True,
               zero_init_last_bn=True, dropblock_rate=0.0, drop_path_rate=0.0,
               norm="batch", norm_momentum=0.9, norm_epsilon=1e-5, weight_decay=0.0,
               recompute_grad=False, **kwargs):
    super().__init__(**kwargs)
    self.filters = validation.check_positive("filters", filters, integer=True)
    self.strides = validation.check_positive("strides", strides, integer=True)
    self.dilation_rate = validation.check_positive("dilation_rate", dilation_rate,
                                                   integer=True)
    self.radix = validation.check_positive("radix", radix, integer=True)
    self.cardinality = validation.check_positive("cardinality", cardinality, integer=True)
    self.base_width = validation.check_positive("base_width", base_width, integer=True)
    self.avd = bool(avd)
    self.avd_first = bool(avd_first)
    self.avg_down = bool(avg_down)
    self.zero_init_last_bn = bool(zero_init_last_bn)
    self.dropblock_rate = validation.check_probability("dropblock_rate", dropblock_rate)
    self.drop_path_rate = validation.check_probability("drop_path_rate", drop_path_rate)
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.weight_decay = weight_decay
    self.recompute_grad = recompute.check_flag(recompute_grad)
    width = group_width(filters, base_width, cardinality)
    if width < 1 or width % (radix * cardinality):
      raise ValueError(
          f"the split-attention width int(filters * base_width / 64) * cardinality = "
          f"{width} must be a positive multiple of radix * cardinality = "
          f"{radix * cardinality}, received base_width={base_width!r}")
    self.width = width

    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  weight_decay=weight_decay, kernel_initializer=AUTHORS_CONV_INITIALIZER)
    self.conv1 = ConvNormAct(width, 1, activation="relu", name="conv1", **common)
    self.pool = AveragePoolDownsample(strides, name="avd") if self.avd else None
    self.split_attention = SplitAttention(
        width, 3, strides=1 if self.avd else strides, dilation_rate=dilation_rate,
        radix=radix, cardinality=cardinality, norm=norm, norm_momentum=norm_momentum,
        norm_epsilon=norm_epsilon, kernel_initializer=AUTHORS_CONV_INITIALIZER,
        weight_decay=weight_decay, name="split_attention")
    self.conv3 = ConvNormAct(
        EXPANSION * filters, 1, activation=None,
        gamma_initializer="zeros" if self.zero_init_last_bn else "ones",
        name="conv3", **common)
    if self.dropblock_rate:
      keep = 1.0 - self.dropblock_rate
      self.dropblocks = [DropBlock(DROPBLOCK_SIZE, keep, name=f"dropblock{i}")
                         for i in (1, 2, 3)]
    else:
      self.dropblocks = None
    self.drop_path = DropPath(drop_path_rate, name="drop_path") if drop_path_rate else None
    self._common = common
    self.shortcut_pool = None
    self.shortcut = None

  def build(self, input_shape):
    if input_shape[-1] != EXPANSION * self.filters or self.strides > 1:
      if self.avg_down:
        if self.strides > 1:
          self.shortcut_pool = tf_keras.layers.AveragePooling2D(
              self.strides, self.strides, padding="same", name="shortcut_pool")
        self.shortcut = ConvNormAct(EXPANSION * self.filters, 1, activation=None,
                                    name="shortcut", **self._common)
      else:
        self.shortcut = ConvNormAct(EXPANSION * self.filters, 1, strides=self.strides,
                                    activation=None, name="shortcut", **self._common)
    super().build(input_shape)

  def _drop_block(self, index, x, training):
    if self.dropblocks is None:
      return x
    return self.dropblocks[index](x, training=training)

  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    return recompute.call(self, self._forward, inputs, training)

  @tf.autograph.experimental.do_not_convert
  def _forward(self, inputs, training):
    x = self.conv1(inputs, training=training)
    x = self._drop_block(0, x, training)
    if self.pool is not None and self.avd_first:
      x = self.pool(x)
    x = self.split_attention(x, training=training)
    x = self._drop_block(1, x, training)
    if self.pool is not None and not self.avd_first:
      x = self.pool(x)
    x = self.conv3(x, training=training)
    x = self._drop_block(2, x, training)
    if self.drop_path is not None:
      x = self.drop_path(x, training=training)
    shortcut = inputs
    if self.shortcut_pool is not None:
      shortcut = self.shortcut_pool(shortcut)
    if self.shortcut is not None:
      shortcut = self.shortcut(shortcut, training=training)
    return tf_keras.activations.relu(x + shortcut)

  def get_config(self):
    config = super().get_config()
    config.update(
        filters=self.filters, strides=self.strides, dilation_rate=self.dilation_rate,
        radix=self.radix, cardinality=self.cardinality, base_width=self.base_width,
        avd=self.avd, avd_first=self.avd_first, avg_down=self.avg_down,
        zero_init_last_bn=self.zero_init_last_bn, dropblock_rate=self.dropblock_rate,
        drop_path_rate=self.drop_path_rate, norm=self.norm,
        norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon,
        weight_decay=self.weight_decay, recompute_grad=self.recompute_grad)
    return config
