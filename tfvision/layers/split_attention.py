"""Split attention (ResNeSt, Zhang et al. 2020; resnest.md Sec. 3, Eq. 1-3).

A grouped convolution produces `radix` splits of every cardinal group; a gating
branch pools the sum over splits (Eq. 1), maps it through two grouped fully connected
layers and weights the splits with an r-softmax over the radix axis (Eq. 3; a sigmoid
when radix is 1), and the weighted splits are summed (Eq. 2).

Layout ("radix-major", resnest.md Fig. 2 caption and the authors' `splat.py`): the conv
has `radix * cardinality` groups and its output channels are ordered
[radix, cardinality, filters / cardinality]. The gating branch is grouped by cardinal
group: its logits are ordered [cardinality, radix, filters / cardinality], and the
r-softmax transposes them to the radix-major order of the splits (the authors'
`rSoftMax`: view(B, K, R, -1).transpose(1, 2)).

Details decided by the authors' code (zhanghang1989/ResNeSt `resnest/torch/models/
splat.py`, which timm's `split_attn.py` reproduces and which produced the released
weights): the attention width is `max(in_channels * radix // 4, 32)`; fc1 and fc2 are
grouped 1x1 convolutions with bias, fc1 is followed by BN and ReLU; the 3x3 conv has no
bias and is followed by BN and ReLU. Kernels are stored in the tf_keras grouped-Conv2D
layout ([kh, kw, in / groups, out]), i.e. PyTorch's [out, in / groups, kh, kw]
transposed, so released weights port with a transpose.

The grouped 3x3 convolution calls `tf.nn.conv2d` with the grouped kernel directly
(`tfvision.layers.conv.conv2d`): TensorFlow 2.20 runs it natively with cuDNN, oneDNN (x86
CPUs) and XLA, and it converts to a TFLite CONV_2D. tf_keras's `Conv2D(groups=...)`
instead wraps it in a separate jit-compiled function on CPU, which measured 1.1x-5.6x
slower (ResNeSt-50 stage shapes, batch 8). Without oneDNN, TensorFlow's generic CPU
kernels cannot take the gradient of a grouped or dilated convolution, so there (and only
there) `conv2d` splits the groups, convolves each (space-to-batch where dilated) and
concatenates, which is slower but trains everywhere. At inference there (training falsy)
the splits are not concatenated at all: bn0 is folded into each group's kernel and bias,
each group's conv + bias + ReLU runs as one fused kernel, and the r-softmax weights the
per-group outputs directly (`_folded_splits`); the same sums as the concatenated path,
differentiable, and the training graph is unchanged.
"""
import tensorflow as tf
import tf_keras

from tfvision.layers import conv as conv_lib
from tfvision.layers.conv import conv2d, make_norm, symmetric_padding
from tfvision.utils import validation

# The authors' code initialises every conv with N(0, sqrt(2 / (k * k * out_channels))).
AUTHORS_CONV_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}


def _sum(tensors):
  """t0 + t1 + ... as chained binary adds (TFLite ADD, which has int8 kernels)."""
  total = tensors[0]
  for tensor in tensors[1:]:
    total = total + tensor
  return total


def attention_channels(in_channels, radix, reduction_factor=4, min_channels=32):
  """Width of the gating branch: max(in_channels * radix // reduction, min_channels).

  The authors' `SplAtConv2d` (`inter_channels`); timm rounds to a multiple of 8
  instead, which gives the same widths for every released model.
  """
  return max(in_channels * radix // reduction_factor, min_channels)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class SplitAttention(tf_keras.layers.Layer):
  """Split-attention convolution: grouped conv into radix splits, r-softmax fusion.

  Args:
    filters: output channels C (each of the `radix` splits has C channels).
    kernel_size: spatial size of the grouped convolution (odd).
    strides: stride of the grouped convolution (explicit symmetric padding when > 1,
      as PyTorch pads).
    dilation_rate: atrous rate of the grouped convolution.
    radix: splits per cardinal group R (>= 1); R = 1 gates with a sigmoid.
    cardinality: cardinal groups K (>= 1); `filters` must be divisible by K and the
      input channels by R * K.
    reduction_factor: the gating width is max(C_in * R // reduction_factor,
      min_attention_channels).
    min_attention_channels: lower bound of the gating width.
    norm, norm_momentum, norm_epsilon: normalisation after the conv and after fc1
      (PyTorch defaults: momentum 0.9 in tf_keras terms, epsilon 1e-5).
    kernel_initializer: initializer of the conv and fc kernels (the authors' He
      normal, fan-out, by default).
    weight_decay: L2 weight decay on the kernels.
  Input: [B, H, W, C_in]; output: [B, H / strides, W / strides, filters].
  """

  def __init__(self, filters, kernel_size=3, strides=1, dilation_rate=1, radix=2,
               cardinality=1, reduction_factor=4, min_attention_channels=32,
               norm="batch", norm_momentum=0.9, norm_epsilon=1e-5,
               kernel_initializer=None, weight_decay=0.0, **kwargs):
    super().__init__(**kwargs)
    self.filters = validation.check_positive("filters", filters, integer=True)
    self.kernel_size = validation.check_positive("kernel_size", kernel_size, integer=True)
    self.strides = validation.check_positive("strides", strides, integer=True)
    self.dilation_rate = validation.check_positive("dilation_rate", dilation_rate,
                                                   integer=True)
    self.radix = validation.check_positive("radix", radix, integer=True)
    self.cardinality = validation.check_positive("cardinality", cardinality, integer=True)
    validation.check_divisible("filters", filters, cardinality, "cardinality")
    self.reduction_factor = validation.check_positive("reduction_factor", reduction_factor,
                                                      integer=True)
    self.min_attention_channels = validation.check_positive(
        "min_attention_channels", min_attention_channels, integer=True)
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.kernel_initializer = tf_keras.initializers.get(
        kernel_initializer or AUTHORS_CONV_INITIALIZER)
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)
    self.bn0 = make_norm(norm, norm_momentum, norm_epsilon, name="bn0")
    self.bn1 = make_norm(norm, norm_momentum, norm_epsilon, name="bn1")

  @property
  def groups(self):
    """Groups of the convolution: radix * cardinality."""
    return self.radix * self.cardinality

  def build(self, input_shape):
    in_channels = input_shape[-1]
    if in_channels is None:
      raise ValueError(f"SplitAttention needs a known channel count, received "
                       f"input_shape={tuple(input_shape)!r}")
    if in_channels % self.groups:
      raise ValueError(
          f"input channels must be divisible by radix * cardinality = {self.groups} "
          f"(radix={self.radix}, cardinality={self.cardinality}), received "
          f"in_channels={in_channels!r}")
    self.attention_channels = attention_channels(
        in_channels, self.radix, self.reduction_factor, self.min_attention_channels)
    if self.attention_channels % self.cardinality:
      raise ValueError(
          f"the gating width max(in_channels * radix // reduction_factor, "
          f"min_attention_channels) must be divisible by cardinality={self.cardinality}, "
          f"received attention_channels={self.attention_channels!r}")
    regularizer = tf_keras.regularizers.l2(self.weight_decay) if self.weight_decay else None
    # One initializer instance per weight: an unseeded tf_keras initializer called twice
    # returns the same values.
    fresh = lambda: tf_keras.initializers.get(  # noqa: E731
        tf_keras.initializers.serialize(self.kernel_initializer))
    split_channels = self.filters * self.radix
    per_card = self.filters // self.cardinality
    attn_per_card = self.attention_channels // self.cardinality
    self.kernel = self.add_weight(
        "kernel", shape=(self.kernel_size, self.kernel_size, in_channels // self.groups,
                         split_channels),
        initializer=fresh(), regularizer=regularizer)
    # fc1 / fc2: grouped 1x1 convs, stored as tf_keras grouped Conv2D kernels.
    self.fc1_kernel = self.add_weight(
        "fc1_kernel", shape=(1, 1, per_card, self.attention_channels),
        initializer=fresh(), regularizer=regularizer)
    self.fc1_bias = self.add_weight("fc1_bias", shape=(self.attention_channels,),
                                    initializer="zeros")
    self.fc2_kernel = self.add_weight(
        "fc2_kernel", shape=(1, 1, attn_per_card, split_channels),
        initializer=fresh(), regularizer=regularizer)
    self.fc2_bias = self.add_weight("fc2_bias", shape=(split_channels,),
                                    initializer="zeros")
    if self.bn0 is not None:
      self.bn0.build(tf.TensorShape([None, None, None, split_channels]))
      self.bn1.build(tf.TensorShape([None, 1, 1, self.attention_channels]))
    super().build(input_shape)

  def _grouped_dense(self, inputs, kernel, bias):
    """A grouped 1x1 conv on pooled vectors: [B, K * d_in] -> [B, K * d_out]."""
    groups = self.cardinality
    d_in, d_out = kernel.shape[2], kernel.shape[3] // groups
    kernel = tf.cast(kernel, inputs.dtype)
    if groups == 1:
      y = tf.matmul(inputs, tf.reshape(kernel, [d_in, d_out]))
    else:
      x = tf.reshape(inputs, [-1, groups, d_in])
      # Output channel g * d_out + j of a grouped conv belongs to group g.
      w = tf.reshape(kernel, [d_in, groups, d_out])
      y = tf.reshape(tf.einsum("bgi,igo->bgo", x, w), [-1, groups * d_out])
    return y + tf.cast(bias, y.dtype)

  def _folded_splits(self, x, padding):
    """Inference on the Eigen kernels: the radix splits, each ReLU(conv(x) * s + b).

    bn0 (moving statistics) is folded into each group's slice of the kernel (scale s)
    and a bias; one convolution per group (the Eigen kernels have no grouped kernel
    with a gradient, see `conv2d`), whose bias add and ReLU TensorFlow fuses into it.
    Groups are ordered [radix, cardinality] (radix-major), so split r is the
    concatenation of groups r * K ... r * K + K - 1.

    Args:
      x: [B, H, W, C_in], already padded for the stride.
      padding: "SAME" or "VALID".
    Returns:
      `radix` tensors [B, H', W', filters].
    """
    bn = self.bn0
    variance = tf.cast(bn.moving_variance, tf.float32)
    scale = tf.math.rsqrt(variance + bn.epsilon)
    if bn.scale:
      scale = scale * tf.cast(bn.gamma, tf.float32)
    offset = -tf.cast(bn.moving_mean, tf.float32) * scale
    if bn.center:
      offset = offset + tf.cast(bn.beta, tf.float32)
    kernel = tf.cast(tf.cast(self.kernel, tf.float32) * scale, x.dtype)
    offset = tf.cast(offset, x.dtype)
    groups = self.groups
    outputs = [
        tf.nn.relu(tf.nn.bias_add(conv2d(part, k, self.strides, self.dilation_rate,
                                         padding, inference=True), b))
        for part, k, b in zip(tf.split(x, groups, axis=-1), tf.split(kernel, groups, axis=-1),
                              tf.split(offset, groups))]
    per_split = self.cardinality
    return [outputs[r * per_split] if per_split == 1 else
            tf.concat(outputs[r * per_split:(r + 1) * per_split], axis=-1)
            for r in range(self.radix)]

  def _fold_at_inference(self, x, training):
    """Whether `call` takes `_folded_splits`: inference, Eigen kernels, grouped conv."""
    return ((training is None or training is False) and self.groups > 1
            and isinstance(self.bn0, tf_keras.layers.BatchNormalization)
            and not conv_lib.direct_kernel_trains(x))

  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    x = inputs
    kernel = tf.cast(self.kernel, x.dtype)
    if self.strides > 1:
      # PyTorch pads symmetrically; TF's "SAME" would pad bottom/right only.
      begin, end = symmetric_padding(self.kernel_size, self.dilation_rate)
      x = tf.pad(x, [[0, 0], [begin, end], [begin, end], [0, 0]])
      padding = "VALID"
    else:
      padding = "SAME"
    radix, channels = self.radix, self.filters
    splits = None
    if self._fold_at_inference(x, training):
      splits = self._folded_splits(x, padding)
      x = splits[0] if radix == 1 else None
    else:
      x = conv2d(x, kernel, self.strides, self.dilation_rate, padding)
      if self.bn0 is not None:
        x = self.bn0(x, training=training)
      x = tf.nn.relu(x)

    # Eq. 1: global pooling of the sum over splits (pooling is linear, so pool first).
    if splits is not None:
      # Chained ADDs, not ADD_N: LiteRT has no int8 ADD_N (a model exported on Eigen).
      pooled = _sum([tf.reduce_mean(split, axis=[1, 2]) for split in splits])
    else:
      pooled = tf.reduce_mean(x, axis=[1, 2])
      if radix > 1:
        pooled = tf.reduce_sum(tf.reshape(pooled, [-1, radix, channels]), axis=1)
    gate = self._grouped_dense(pooled, self.fc1_kernel, self.fc1_bias)
    if self.bn1 is not None:
      # As [B, 1, 1, A], the BatchNorm2d of the authors' code, which runs fused here.
      gate = tf.reshape(self.bn1(gate[:, None, None, :], training=training),
                        [-1, self.attention_channels])
    gate = tf.nn.relu(gate)
    logits = self._grouped_dense(gate, self.fc2_kernel, self.fc2_bias)
    attention = tf.cast(self.r_softmax(logits), inputs.dtype)
    if radix == 1:
      return x * attention[:, None, None, :]
    if splits is not None:
      return _sum([split * attention[:, None, None, r, :] for r, split in enumerate(splits)])
    # Eq. 2: weighted sum over the radix-major splits.
    shape = tf.shape(x)
    splits = tf.reshape(x, [shape[0], shape[1], shape[2], radix, channels])
    weighted = splits * attention[:, None, None, :, :]
    return tf.reduce_sum(weighted, axis=3)

  def r_softmax(self, logits):
    """Eq. 3 in float32: softmax over the radix (sigmoid when radix is 1).

    Args:
      logits: [B, R * C] in the gating branch's cardinal-major order
        [cardinality, radix, C / cardinality].
    Returns:
      float32 attention, [B, R, C] radix-major for R > 1 ([B, C] for R = 1).
    """
    logits = tf.cast(logits, tf.float32)
    if self.radix == 1:
      return tf.sigmoid(logits)
    per_card = self.filters // self.cardinality
    grouped = tf.reshape(logits, [-1, self.cardinality, self.radix, per_card])
    weights = tf.nn.softmax(grouped, axis=2)
    return tf.reshape(tf.transpose(weights, [0, 2, 1, 3]), [-1, self.radix, self.filters])

  def compute_output_shape(self, input_shape):
    input_shape = tf.TensorShape(input_shape)
    spatial = [None if d is None else -(-d // self.strides) for d in input_shape[1:3]]
    return tf.TensorShape([input_shape[0]] + spatial + [self.filters])

  def get_config(self):
    config = super().get_config()
    config.update(
        filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
        dilation_rate=self.dilation_rate, radix=self.radix, cardinality=self.cardinality,
        reduction_factor=self.reduction_factor,
        min_attention_channels=self.min_attention_channels, norm=self.norm,
        norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon,
        kernel_initializer=tf_keras.initializers.serialize(self.kernel_initializer),
        weight_decay=self.weight_decay)
    return config
