"""Convolution building blocks: ConvNormAct, GlobalContext, SwitchableAtrousConv2D.

Padding: TF's "same" pads more at the bottom/right when the stride is 2, PyTorch and
deeplab2 (`Conv2DSame`) pad symmetrically. `padding="symmetric"` pads explicitly with
`ZeroPadding2D` and convolves "valid" whenever the two would differ, so weights ported
from PyTorch or deeplab2 give the same outputs.

Portability: TensorFlow's generic (Eigen) CPU kernels, which run wherever oneDNN is off
(AMD and older Intel CPUs by default, or `TF_ENABLE_ONEDNN_OPTS=0`), have no gradient for a
direct `tf.nn.conv2d` with `dilations > 1` or with a grouped kernel. `conv2d` below keeps
the direct kernel where it trains (oneDNN, cuDNN, XLA on TPU) and elsewhere lowers the
dilated convolution to space-to-batch + dense conv + batch-to-space (`tf.nn.convolution`,
the lowering tf_keras's own dilated `Conv2D` uses) and a grouped one to one convolution
per group. Both lowerings compute the same sums (float rounding aside).
"""
import functools

import tensorflow as tf
import tf_keras

from tfvision.layers.activations import get_activation
from tfvision.utils import validation

_PADDINGS = ("symmetric", "same", "valid")
_NORMS = ("batch", "sync_batch", None)


def symmetric_padding(kernel_size, dilation_rate=1):
  """(begin, end) zero padding that centres a dilated kernel, as deeplab2 and PyTorch.

  Args:
    kernel_size: the kernel size along one axis.
    dilation_rate: the atrous rate along that axis.
  """
  effective = kernel_size + (kernel_size - 1) * (dilation_rate - 1)
  total = effective - 1
  return (total // 2, total - total // 2)


@functools.lru_cache(maxsize=None)
def onednn_enabled():
  """Whether this process runs TensorFlow's oneDNN CPU kernels.

  Fixed when TensorFlow starts: `TF_ENABLE_ONEDNN_OPTS`, or by default on CPUs with
  AVX-512 VNNI-class features.
  """
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=import-outside-toplevel
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return False


def direct_kernel_trains(inputs):
  """Whether a direct dilated or grouped `tf.nn.conv2d` on `inputs` can be differentiated.

  cuDNN and oneDNN have those gradient kernels, the Eigen CPU kernels do not. The device is
  the one `inputs` was placed on where it is known (an explicit `tf.device` scope), else a
  GPU if one is visible (TensorFlow's default placement), else the CPU.
  """
  device = getattr(inputs, "device", "") or ""
  device_type = (tf.DeviceSpec.from_string(device).device_type or "").upper()
  if device_type == "GPU":
    return True
  if device_type != "CPU" and tf.config.list_logical_devices("GPU"):
    return True
  return onednn_enabled()


def _lowered_conv2d(inputs, kernel, strides, dilation_rate, padding, groups):
  """The Eigen kernels' trainable form: space-to-batch for the dilation, one conv per group."""
  convolve = functools.partial(tf.nn.convolution, strides=strides, padding=padding,
                               dilations=dilation_rate)
  if groups == 1:
    return convolve(inputs, kernel)
  parts = zip(tf.split(inputs, groups, axis=-1), tf.split(kernel, groups, axis=-1))
  return tf.concat([convolve(x, k) for x, k in parts], axis=-1)


def _direct_with_lowered_gradient(inputs, kernel, strides, dilation_rate, padding, groups):
  """The direct dilated conv forward, differentiated through the lowered form.

  The Eigen kernels run a direct dilated `tf.nn.conv2d` forward faster than
  space-to-batch + conv + batch-to-space (BENCHMARKS.md, issue 19), but have no gradient
  for it; the gradient is that of `_lowered_conv2d` (the same function), recomputed
  only if a gradient is asked for.
  """

  @tf.custom_gradient
  def forward(x, k):
    y = tf.nn.conv2d(x, k, strides=strides, padding=padding, dilations=dilation_rate)

    def gradient(dy):
      with tf.GradientTape() as tape:
        tape.watch([x, k])
        z = _lowered_conv2d(x, k, strides, dilation_rate, padding, groups)
      return tape.gradient(z, [x, k], output_gradients=dy)

    return y, gradient

  return forward(inputs, kernel)


def conv2d(inputs, kernel, strides=1, dilation_rate=1, padding="SAME", inference=False):
  """2-D convolution, dilated and/or grouped, that trains on every backend.

  Args:
    inputs: [B, H, W, C_in].
    kernel: [kh, kw, C_in / groups, C_out] (the tf_keras grouped-Conv2D layout); the
      number of groups is `C_in // kernel.shape[2]`.
    strides, dilation_rate: ints (not both > 1, as for `tf.nn.conv2d` on CPU).
    padding: "SAME" or "VALID".
    inference: the caller is in inference mode (training falsy). On the Eigen kernels a
      dilated, ungrouped conv then runs the direct kernel forward (faster there) with the
      lowered form's gradient (`_direct_with_lowered_gradient`); training keeps the
      lowered form. Grouped convs stay lowered: the direct grouped forward is no faster
      on Eigen.
  Returns:
    [B, H', W', C_out], the same values as `tf.nn.conv2d(inputs, kernel, strides,
    padding, dilations=dilation_rate)`.
  """
  groups = inputs.shape[-1] // kernel.shape[2]
  if (groups == 1 and dilation_rate == 1) or direct_kernel_trains(inputs):
    return tf.nn.conv2d(inputs, kernel, strides=strides, padding=padding,
                        dilations=dilation_rate)
  if inference and groups == 1:
    return _direct_with_lowered_gradient(inputs, kernel, strides, dilation_rate, padding,
                                         groups)
  # Eigen: space-to-batch for the dilation (tf.nn.convolution), one conv per group.
  return _lowered_conv2d(inputs, kernel, strides, dilation_rate, padding, groups)


def _pair(value):
  if isinstance(value, (tuple, list)):
    return tuple(value)
  return (value, value)


def make_norm(norm, momentum, epsilon, gamma_initializer="ones", name=None):
  """Builds the normalisation layer named by `norm` ("batch", "sync_batch" or None)."""
  validation.check_in("norm", norm, _NORMS)
  if norm is None:
    return None
  cls = (tf_keras.layers.experimental.SyncBatchNormalization
         if norm == "sync_batch" else tf_keras.layers.BatchNormalization)
  return cls(momentum=momentum, epsilon=epsilon, gamma_initializer=gamma_initializer,
             name=name)


def _regularizer(weight_decay):
  return tf_keras.regularizers.l2(weight_decay) if weight_decay else None


@tf_keras.utils.register_keras_serializable(package="tfvision")
class GlobalContext(tf_keras.layers.Layer):
  """x + Conv1x1(GAP(x)), the conv zero-initialised so the layer starts as identity.

  The global context module of DetectoRS (Qiao et al. 2020) used before and after the
  switchable atrous convolution; kernel and bias zero-initialised as deeplab2's
  `convolutions.GlobalContext`.

  Args:
    weight_decay: L2 weight decay on the 1x1 kernel.
  Input: [B, H, W, C]; output: same shape.
  """

  def __init__(self, weight_decay=0.0, **kwargs):
    super().__init__(**kwargs)
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)

  def build(self, input_shape):
    channels = input_shape[-1]
    if channels is None:
      raise ValueError(f"GlobalContext needs a known channel count, received "
                       f"input_shape={tuple(input_shape)!r}")
    self.conv = tf_keras.layers.Conv2D(
        channels, 1, use_bias=True, kernel_initializer="zeros", bias_initializer="zeros",
        kernel_regularizer=_regularizer(self.weight_decay), name="conv")
    self.conv.build(tf.TensorShape([None, 1, 1, channels]))
    super().build(input_shape)

  def call(self, inputs):
    pooled = tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)
    return inputs + self.conv(pooled)

  def get_config(self):
    config = super().get_config()
    config.update(weight_decay=self.weight_decay)
    return config


@tf_keras.utils.register_keras_serializable(package="tfvision")
class SwitchableAtrousConv2D(tf_keras.layers.Layer):
  """Switchable Atrous Convolution (swidernet.md Eq. 2, DetectoRS), stride 1.

  y = (1 - S(x)) * Conv(x, w, r) + S(x) * Conv(x, w, 3r) with one shared kernel w;
  the switch S(x) = Conv1x1(AvgPool5x5(x)) is input- and location-dependent. As in
  deeplab2 the switch has no squashing non-linearity and is zero-initialised (the layer
  starts as a plain rate-r convolution), the 5x5 average pool uses "same" padding that
  excludes the border from the average, and global context modules (zero-initialised)
  wrap the convolution before and after when `global_context` is set.

  Args:
    filters: output channels.
    kernel_size: spatial kernel size (odd).
    dilation_rate: the small atrous rate r; the large one is 3r.
    use_bias: add a bias after mixing.
    global_context: insert GlobalContext before and after (swidernet.md Sec. 3.1).
    kernel_initializer: initializer of the shared kernel.
    weight_decay: L2 weight decay on the kernels.
  Input: [B, H, W, C_in]; output: [B, H, W, filters].
  """

  def __init__(self, filters, kernel_size=3, dilation_rate=1, use_bias=False,
               global_context=True, kernel_initializer="he_normal", weight_decay=0.0,
               **kwargs):
    super().__init__(**kwargs)
    self.filters = validation.check_positive("filters", filters, integer=True)
    self.kernel_size = validation.check_positive("kernel_size", kernel_size, integer=True)
    self.dilation_rate = validation.check_positive("dilation_rate", dilation_rate,
                                                   integer=True)
    self.use_bias = bool(use_bias)
    self.global_context = bool(global_context)
    self.kernel_initializer = tf_keras.initializers.get(kernel_initializer)
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)
    self.pool = tf_keras.layers.AveragePooling2D(5, strides=1, padding="same", name="pool")
    self.switch = tf_keras.layers.Conv2D(
        1, 1, use_bias=True, kernel_initializer="zeros", bias_initializer="zeros",
        name="switch")
    if self.global_context:
      self.pre_context = GlobalContext(weight_decay, name="pre_global_context")
      self.post_context = GlobalContext(weight_decay, name="post_global_context")

  def build(self, input_shape):
    in_channels = input_shape[-1]
    if in_channels is None:
      raise ValueError(f"SwitchableAtrousConv2D needs a known channel count, received "
                       f"input_shape={tuple(input_shape)!r}")
    self.kernel = self.add_weight(
        "kernel", shape=(self.kernel_size, self.kernel_size, in_channels, self.filters),
        initializer=self.kernel_initializer, regularizer=_regularizer(self.weight_decay))
    self.bias = (self.add_weight("bias", shape=(self.filters,), initializer="zeros")
                 if self.use_bias else None)
    if self.global_context:
      self.pre_context.build(input_shape)
      out_shape = tf.TensorShape(input_shape)[:-1].concatenate([self.filters])
      self.post_context.build(out_shape)
    self.switch.build(tf.TensorShape(input_shape))
    super().build(input_shape)

  def call(self, inputs, training=None):
    x = self.pre_context(inputs) if self.global_context else inputs
    switch = self.switch(self.pool(x))
    kernel = tf.cast(self.kernel, x.dtype)
    inference = training is None or training is False
    small = conv2d(x, kernel, 1, self.dilation_rate, "SAME", inference=inference)
    large = conv2d(x, kernel, 1, 3 * self.dilation_rate, "SAME", inference=inference)
    y = small + switch * (large - small)
    if self.bias is not None:
      y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
    if self.global_context:
      y = self.post_context(y)
    return y

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)[:-1].concatenate([self.filters])

  def get_config(self):
    config = super().get_config()
    config.update(
        filters=self.filters, kernel_size=self.kernel_size,
        dilation_rate=self.dilation_rate, use_bias=self.use_bias,
        global_context=self.global_context,
        kernel_initializer=tf_keras.initializers.serialize(self.kernel_initializer),
        weight_decay=self.weight_decay)
    return config


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ConvNormAct(tf_keras.layers.Layer):
  """Conv2D -> normalisation -> activation, with explicit symmetric padding.

  Args:
    filters: output channels.
    kernel_size: int or (kh, kw).
    strides: int or pair.
    dilation_rate: int atrous rate.
    groups: grouped convolution groups (filters and input channels divisible by it).
    padding: "symmetric" (zero-pad evenly and convolve "valid" whenever TF's "same"
      would pad unevenly: stride > 1 or an even effective kernel), "same" or "valid".
    use_bias: None means "bias only when there is no normalisation".
    norm: "batch", "sync_batch" or None.
    norm_momentum, norm_epsilon: BatchNormalization settings (tf_keras defaults match
      deeplab2; PyTorch ports use momentum 0.9, epsilon 1e-5).
    gamma_initializer: "zeros" for the last BN of a residual branch (Goyal et al. 2017).
    activation: activation name or None.
    switchable_atrous: replace the conv by SwitchableAtrousConv2D where stride is 1, and
      wrap it in global context modules (also where strided), as deeplab2's Conv2DSame.
    kernel_initializer: conv kernel initializer.
    weight_decay: L2 weight decay on the kernel.
  Input: [B, H, W, C]; output: [B, H', W', filters].
  """

  def __init__(self, filters, kernel_size=3, strides=1, dilation_rate=1, groups=1,
               padding="symmetric", use_bias=None, norm="batch", norm_momentum=0.99,
               norm_epsilon=1e-3, gamma_initializer="ones", activation="relu",
               switchable_atrous=False, kernel_initializer="he_normal", weight_decay=0.0,
               **kwargs):
    super().__init__(**kwargs)
    self.filters = validation.check_positive("filters", filters, integer=True)
    self.kernel_size = _pair(kernel_size)
    self.strides = _pair(strides)
    for value in self.kernel_size:
      validation.check_positive("kernel_size", value, integer=True)
    for value in self.strides:
      validation.check_positive("strides", value, integer=True)
    self.dilation_rate = validation.check_positive("dilation_rate", dilation_rate,
                                                   integer=True)
    self.groups = validation.check_positive("groups", groups, integer=True)
    validation.check_divisible("filters", filters, groups, "groups")
    self.padding = validation.check_in("padding", padding, _PADDINGS)
    self.norm = validation.check_in("norm", norm, _NORMS)
    self.use_bias = (norm is None) if use_bias is None else bool(use_bias)
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.gamma_initializer = gamma_initializer
    self.activation = activation
    self.switchable_atrous = bool(switchable_atrous)
    self.kernel_initializer = tf_keras.initializers.get(kernel_initializer)
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)
    self._act = get_activation(activation)

    strided = self.strides != (1, 1)
    if self.switchable_atrous and groups != 1:
      raise ValueError(f"switchable_atrous supports groups=1 only, received groups={groups!r}")
    if self.switchable_atrous and not strided:
      self.pre_pad = None
      self.conv = SwitchableAtrousConv2D(
          filters, self.kernel_size[0], dilation_rate, use_bias=self.use_bias,
          global_context=True, kernel_initializer=self.kernel_initializer,
          weight_decay=weight_decay, name="conv")
      self.pre_context = self.post_context = None
    else:
      pads = [symmetric_padding(k, self.dilation_rate) for k in self.kernel_size]
      uneven = any(begin != end for begin, end in pads)
      if padding == "symmetric" and (strided or uneven):
        self.pre_pad = tf_keras.layers.ZeroPadding2D(padding=tuple(pads), name="pad")
        conv_padding = "valid"
      else:
        self.pre_pad = None
        conv_padding = "valid" if padding == "valid" else "same"
      self.conv = tf_keras.layers.Conv2D(
          filters, self.kernel_size, strides=self.strides, padding=conv_padding,
          dilation_rate=dilation_rate, groups=groups, use_bias=self.use_bias,
          kernel_initializer=self.kernel_initializer,
          kernel_regularizer=_regularizer(weight_decay), name="conv")
      if self.switchable_atrous:
        # deeplab2 keeps the global context around the strided (plain) conv.
        self.pre_context = GlobalContext(weight_decay, name="pre_global_context")
        self.post_context = GlobalContext(weight_decay, name="post_global_context")
      else:
        self.pre_context = self.post_context = None
    self.bn = make_norm(norm, norm_momentum, norm_epsilon, gamma_initializer, name="bn")

  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    x = inputs
    if self.pre_context is not None:
      x = self.pre_context(x)
    if self.pre_pad is not None:
      x = self.pre_pad(x)
    x = self.conv(x)
    if self.post_context is not None:
      x = self.post_context(x)
    if self.bn is not None:
      x = self.bn(x, training=training)
    if self._act is not None:
      x = self._act(x)
    return x

  def get_config(self):
    config = super().get_config()
    config.update(
        filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
        dilation_rate=self.dilation_rate, groups=self.groups, padding=self.padding,
        use_bias=self.use_bias, norm=self.norm, norm_momentum=self.norm_momentum,
        norm_epsilon=self.norm_epsilon, gamma_initializer=self.gamma_initializer,
        activation=self.activation, switchable_atrous=self.switchable_atrous,
        kernel_initializer=tf_keras.initializers.serialize(self.kernel_initializer),
        weight_decay=self.weight_decay)
    return config
