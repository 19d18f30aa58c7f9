"""Axial-ResNet, Axial-DeepLab backbones and Axial-SWideRNet (Wang et al., ECCV 2020).

Axial-ResNet (the paper's "Axial-ResNet" paragraph in Sec. 3; Table 1 "Conv-Stem +
Axial-Attention") is ResNet-50 with the 3x3 convolution of every bottleneck replaced by
height-axis then width-axis position-sensitive attention
(`tfvision.blocks.axial.AxialBottleneckBlock`), at width multipliers 0.5 / 0.75 / 1 / 2
for S / M / L / XL. Axial-DeepLab's backbones are the
same networks with the Inception-style stem (three 3x3 convs) of DeepLab's ResNet-beta.
Axial-SWideRNet-(w1, w2, l) is SWideRNet with axial blocks wherever the (undilated)
input stride of a block is at least 16.

Where the paper is silent, the released TensorFlow code decided (deeplab2
`model/encoder/axial_resnet.py`, `axial_resnet_instances.py`,
`model/layers/axial_block_groups.py`; its parameter counts are the references), except
for one point where the paper is explicit:

1. Max-pool: the paper ("Axial-ResNet", Sec. 3) keeps ResNet's stem, the 7x7 stride-2
   conv *and* the 3x3 stride-2 max-pool ("conv-stem"), as TF1 DeepLab's ResNet-beta
   keeps the max-pool after its Inception stem; deeplab2 drops it and strides the first block of conv2_x
   instead, so that block attends at stride 2 (112 x 112 at 224) before subsampling.
   The max-pool has no parameters, so deeplab2's counts hold either way; the paper's
   2.8B M-Adds for Axial-ResNet-S (Table 1) match the max-pool (2.72 G counted here),
   not deeplab2's arrangement (3.25 G). `stem_max_pool` defaults to the paper; False
   gives deeplab2's graph.
2. Stride: the first block of each later stage carries it, by subsampling each axis
   right after its attention pass (also the paper's "optional striding").
3. Widths: stage filters are round(stride * 32 * width) for the ResNet input strides
   2, 4, 8, 16, i.e. 64, 128, 256, 512 times the width multiplier; the conv stem keeps
   64 channels at every width (deeplab2's stem_width_multiplier is 1 for S and L).
   Axial blocks use filters [2 f, f, 4 f] with key depth f, value depth 2 f, 8 heads.
4. Axial-DeepLab: the issue text says "axial blocks past stride 16"; deeplab2's
   AxialDeepLabS/L (like AxialResNetS/L) use `use_axial_beyond_stride=2`, i.e. axial
   blocks in every stage, and the reference counts (11,565,856 for axial_deeplab_s)
   hold only for that placement. "Past stride 16" is deeplab2's Axial-SWideRNet and
   MaX-DeepLab placement.
5. Relative embeddings hold 2 * 255 - 1 distances (deeplab2's MAX_SPAN), so any axis up
   to 255 long is attended globally (`max_span`); a longer one raises ValueError
   (deeplab2 raises NotImplementedError past 129). `span` = m gives the paper's local
   attention (Eq. 4, span-m windows; `PositionSensitiveAxialAttention`) in every axial
   block, at any input size and with the same weights; the paper's Cityscapes models
   use m = 65 (registry: `axial_deeplab_{s,l}_panoptic_span65`). deeplab2 has no local
   attention.
6. Fully self-attentional ("Full Axial-Attention" of Table 1, `stem="axial"`): deeplab2's
   `use_axial_beyond_stride=1` replaces the conv stem by a first stage of three axial
   blocks (base width 32, the first strided). As in deeplab2, the first of them applies
   its ReLU to the normalised image. Its parameters match Table 1 (12.5M with the head);
   its M-Adds do not (6.0 G counted here against 3.3B): the paper's stem differs in a
   way neither the paper nor deeplab2 documents.
7. Drop path: the paper does not use it for Axial-ResNet and deeplab2's ResNet
   instances keep it off (default 0). Axial-SWideRNet follows deeplab2's Cityscapes
   configs: keep probability 0.8 on the "linear" schedule from stride 4, and neither
   SE nor SAC ("the naive SWideRNet", deeplab2 g3doc/projects/axial_deeplab.md).
8. Recompute-grad: deeplab2 recomputes every axial block in the backward pass
   (`axial_use_recompute_grad: True`) and, in SWideRNet and Axial-SWideRNet, every
   conv block too (`conv_use_recompute_grad: True`, inherited from SWideRNet's
   config); `recompute_grad` = "axial" / "all" / "none" says which blocks recompute,
   by default "axial" here and "all" in Axial-SWideRNet, as deeplab2
   (`tfvision.layers.recompute`; training only, same gradients).

Inputs are pixels in [0, 255], normalised inside the model to x / 127.5 - 1 as deeplab2.
"""
import tf_keras

from tfvision.blocks.axial import AxialBottleneckBlock
from tfvision.blocks.residual import WideResidualBlock
from tfvision.layers.activations import get_activation
from tfvision.layers.axial_attention import DEFAULT_MAX_SPAN, check_span
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.preprocessing import DEEPLAB_MEAN_RGB, DEEPLAB_STD_RGB
from tfvision.layers.regularization import drop_path_rate_for_stride
from tfvision.models.base import VisionModel
from tfvision.models.registry import register_model
from tfvision.models.swidernet import SWideRNet
from tfvision.utils import validation

STEMS = ("conv7x7", "inception", "axial")
# Which residual blocks recompute their activations in the backward pass.
RECOMPUTE_GRAD = ("none", "axial", "all")
OUTPUT_STRIDES = (8, 16, 32)
AXIAL_BEYOND_STRIDES = (0, 1, 2, 4, 8, 16, 32)
_DROP_PATH_STRIDES = (2, 4, 8, 16, 32)
# deeplab2 considers five stages at these input strides, each striding by 2; the conv
# stems replace the first one (stride 1 -> 2).
_STAGE_INPUT_STRIDES = (1, 2, 4, 8, 16)
RESNET50_BLOCKS = (3, 4, 6, 3)
# Stage 1 of the fully axial model (deeplab2 prepends 3 blocks to num_blocks).
_AXIAL_STEM_BLOCKS = 3


def axial_resnet_plan(num_blocks=RESNET50_BLOCKS, layer_multiplier=1.0,
                      width_multiplier=1.0, stem="conv7x7", stem_max_pool=True, output_stride=32,
                      use_axial_beyond_stride=2, attention_bottleneck_expansion=2,
                      drop_path_rate=0.0, drop_path_schedule="constant",
                      drop_path_beyond_stride=16):
  """Per-block settings of an (Axial-)ResNet, following deeplab2's BlockGroup.

  Returns:
    A list of stages (five with stem="axial", else four: conv2_x .. conv5_x); each a
    list of dicts with keys kind ("axial" or "bottleneck"), filters, base_filters,
    strides, dilation_rate, drop_path_rate and input_stride (the undilated stride of the
    block's input, which decides the block kind: axial where it is >=
    use_axial_beyond_stride > 0).
  """
  counts = [_AXIAL_STEM_BLOCKS] + [int(b * layer_multiplier) for b in num_blocks]
  first = 0 if stem == "axial" else 1
  plan = []
  for index in range(first, len(_STAGE_INPUT_STRIDES)):
    # Widths follow the stage's place in ResNet (deeplab2: round(stride * 32 * width)).
    base = int(round(_STAGE_INPUT_STRIDES[index] * 32 * width_multiplier))
    stage_in, stride = _STAGE_INPUT_STRIDES[index], 2
    if index == 1 and stem_max_pool:
      # The stem's max-pool already took conv2_x to stride 4.
      stage_in, stride = 4, 1
    current = stage_in
    stage = []
    for block in range(counts[index]):
      strides = stride if (block == 0 and stage_in < output_stride) else 1
      axial = current >= use_axial_beyond_stride > 0
      expansion = attention_bottleneck_expansion if axial else 1
      stage.append(dict(
          kind="axial" if axial else "bottleneck",
          filters=[base * expansion, base, 4 * base], base_filters=base, strides=strides,
          dilation_rate=current // output_stride if current > output_stride else 1,
          drop_path_rate=drop_path_rate_for_stride(
              drop_path_rate, drop_path_schedule, current, drop_path_beyond_stride),
          input_stride=current))
      if block == 0:
        current *= stride
    plan.append(stage)
  return plan


def _check_num_blocks(num_blocks):
  try:
    blocks = tuple(num_blocks)
  except TypeError:
    blocks = None
  if (blocks is None or len(blocks) != 4 or
      any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in blocks)):
    raise ValueError(f"num_blocks must be 4 positive integers (conv2_x .. conv5_x), "
                     f"received num_blocks={num_blocks!r}")
  return blocks


def _check_axial_args(config):
  """Validates the axial-attention arguments shared by every family constructor."""
  validation.check_in("use_axial_beyond_stride", config["use_axial_beyond_stride"],
                      AXIAL_BEYOND_STRIDES)
  validation.check_positive("attention_bottleneck_expansion",
                            config["attention_bottleneck_expansion"], integer=True)
  validation.check_positive("num_heads", config["num_heads"], integer=True)
  validation.check_positive("key_expansion", config["key_expansion"])
  validation.check_positive("value_expansion", config["value_expansion"])
  validation.check_positive("max_span", config["max_span"], integer=True)
  check_span(config["span"], config["max_span"])
  validation.check_in("recompute_grad", config["recompute_grad"], RECOMPUTE_GRAD)
  if not isinstance(config["position_sensitive"], bool):
    raise ValueError(f"position_sensitive must be True or False, received "
                     f"position_sensitive={config['position_sensitive']!r}")


def _check_heads_divide(plan, config):
  """Every axial block's key and value depth must split evenly into the heads."""
  for stage in plan:
    for spec in stage:
      if spec["kind"] != "axial":
        continue
      for what, expansion in (("key", config["key_expansion"]),
                              ("value", config["value_expansion"])):
        depth = int(round(spec["filters"][1] * expansion))
        if depth % config["num_heads"]:
          raise ValueError(
              f"num_heads must divide every axial layer's {what} depth, but a block at "
              f"stride {spec['input_stride']} has {what} depth {depth}; received "
              f"num_heads={config['num_heads']!r}")


def _axial_block(spec, config, common, name):
  return AxialBottleneckBlock(
      spec["filters"], strides=spec["strides"], num_heads=config["num_heads"],
      key_expansion=config["key_expansion"], value_expansion=config["value_expansion"],
      max_span=config["max_span"], position_sensitive=config["position_sensitive"],
      use_se=config.get("use_se", False), drop_path_rate=spec["drop_path_rate"],
      span=config["span"], recompute_grad=config["recompute_grad"] != "none",
      name=name, **common)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class AxialResNet(VisionModel):
  """Axial-ResNet (ResNet-50 layout) for classification or as a dense-prediction backbone.

  Args:
    width_multiplier: channel multiplier of the four stages (S 0.5, M 0.75, L 1, XL 2).
    stem: "conv7x7" (7x7 stride-2 conv + BN, deeplab2 "resnet"), "inception" (three 3x3
      convs 64, 64, 128, deeplab2 "resnet_beta", Axial-DeepLab) or "axial" (no conv:
      a first stage of 3 axial blocks at stride 1; needs use_axial_beyond_stride=1).
    stem_width_multiplier: channel multiplier of the conv stem.
    stem_max_pool: 3x3 stride-2 max-pool after the conv stem (the paper, Sec. 3, and
      TF1 DeepLab's ResNet-beta); False moves that stride into the first block of
      conv2_x as deeplab2 does. None: True after a conv stem. No parameters either way.
    num_blocks: blocks of conv2_x .. conv5_x.
    layer_multiplier: depth multiplier of num_blocks (int(b * multiplier) each).
    use_axial_beyond_stride: axial blocks where a block's input stride is >= this;
      2 puts them in every stage (Axial-ResNet), 16 in the last two, 0 nowhere
      (a ResNet-50 in deeplab2's arrangement), 1 with stem="axial".
    output_stride: 32 for classification; 16 or 8 for dense prediction (no stride and
      atrous rates past it; attention spans the whole axis either way).
    attention_bottleneck_expansion: first 1x1 conv width over the attention width.
    num_heads: attention heads.
    key_expansion, value_expansion: key / value depth over the attention width.
    max_span: relative embeddings for distances up to max_span - 1: the longest axis of
      global attention, and the largest span.
    position_sensitive: the relative-position terms of Eq. 4 (False: content attention).
    span: None (global attention) or the odd local span m of every axial layer (Eq. 4;
      any input size, the same weights).
    recompute_grad: "axial" (deeplab2's default), "all" or "none": which residual
      blocks recompute their activations in the backward pass when training.
    include_top, num_classes, input_shape, pooling, classifier_activation,
    dropout_rate: the common classification arguments.
    drop_path_rate, drop_path_schedule, drop_path_beyond_stride: stochastic depth by
      stride (deeplab2's scheme; off by default).
    norm, norm_momentum, norm_epsilon: normalisation settings.
    weight_decay: L2 weight decay on kernels and embeddings.
    name: model name.
  """

  def __init__(self, width_multiplier=1.0, stem="conv7x7", stem_width_multiplier=1.0,
               stem_max_pool=None, num_blocks=RESNET50_BLOCKS, layer_multiplier=1.0,
               use_axial_beyond_stride=2,
               output_stride=32, attention_bottleneck_expansion=2, num_heads=8,
               key_expansion=1.0, value_expansion=2.0, max_span=DEFAULT_MAX_SPAN,
               position_sensitive=True, span=None, recompute_grad="axial",
               include_top=True, num_classes=1000,
               input_shape=None, pooling="avg", classifier_activation=None,
               drop_path_rate=0.0, drop_path_schedule="constant",
               drop_path_beyond_stride=16, dropout_rate=0.0, norm="batch",
               norm_momentum=0.99, norm_epsilon=1e-3, weight_decay=0.0,
               name="axial_resnet"):
    config = dict(
        width_multiplier=width_multiplier, stem=stem,
        stem_width_multiplier=stem_width_multiplier, stem_max_pool=stem_max_pool,
        num_blocks=(list(num_blocks) if isinstance(num_blocks, (list, tuple))
                    else num_blocks),
        layer_multiplier=layer_multiplier, use_axial_beyond_stride=use_axial_beyond_stride,
        output_stride=output_stride,
        attention_bottleneck_expansion=attention_bottleneck_expansion,
        num_heads=num_heads, key_expansion=key_expansion, value_expansion=value_expansion,
        max_span=max_span, position_sensitive=position_sensitive, span=span,
        recompute_grad=recompute_grad, include_top=include_top, num_classes=num_classes,
        input_shape=None if input_shape is None else list(input_shape), pooling=pooling,
        classifier_activation=classifier_activation, drop_path_rate=drop_path_rate,
        drop_path_schedule=drop_path_schedule,
        drop_path_beyond_stride=drop_path_beyond_stride, dropout_rate=dropout_rate,
        norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
        weight_decay=weight_decay, name=name)
    plan = self._validate_and_plan(config)
    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  weight_decay=weight_decay)

    inputs, x = self._make_inputs(input_shape, DEEPLAB_MEAN_RGB, DEEPLAB_STD_RGB)
    x = self._stem(x, stem, stem_width_multiplier, self._max_pool(config), common)
    act = get_activation("relu")
    endpoints = {}
    first_stage = 1 if stem == "axial" else 2
    for offset, stage in enumerate(plan):
      stage_number = first_stage + offset
      for block_index, spec in enumerate(stage):
        name_ = f"stage{stage_number}_block{block_index + 1}"
        if spec["kind"] == "axial":
          block = _axial_block(spec, config, common, name_)
        else:
          block = WideResidualBlock(
              spec["filters"], kind="bottleneck", strides=spec["strides"],
              dilation_rate=spec["dilation_rate"], drop_path_rate=spec["drop_path_rate"],
              recompute_grad=recompute_grad == "all", name=name_, **common)
        x = block(x)
      if stage_number >= 2:
        endpoints[str(stage_number)] = tf_keras.layers.Activation(
            act, name=f"res{stage_number}")(x)
    self._finish(config, inputs, endpoints, "5", include_top, num_classes, pooling,
                 classifier_activation, dropout_rate, name=name)

  @staticmethod
  def _max_pool(config):
    """stem_max_pool resolved: None means after a conv stem (the paper), not after none."""
    if config["stem_max_pool"] is None:
      return config["stem"] != "axial"
    return config["stem_max_pool"]

  @staticmethod
  def _stem(x, stem, width, max_pool, common):
    """The conv stem, ending with BN and no activation (the first block applies it)."""
    if stem == "conv7x7":
      x = ConvNormAct(int(round(64 * width)), 7, strides=2, activation=None, name="stem",
                      **common)(x)
    elif stem == "inception":
      # deeplab2 `stems.InceptionSTEM` (int() rounding of its widths).
      x = ConvNormAct(int(64 * width), 3, strides=2, name="stem_conv1", **common)(x)
      x = ConvNormAct(int(64 * width), 3, name="stem_conv2", **common)(x)
      x = ConvNormAct(int(128 * width), 3, activation=None, name="stem_conv3", **common)(x)
    if max_pool:
      # 3x3 stride-2 max-pool with symmetric padding (PyTorch / TF1 DeepLab windows).
      # The input is not activated yet, and the next block starts with ReLU, so zero
      # padding gives exactly relu(max-pool(x)) with padding that never wins.
      x = tf_keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
      x = tf_keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    return x

  def _validate_and_plan(self, config):
    """Checks the arguments and returns the block plan."""
    self._check_common_args(config)
    validation.check_positive("width_multiplier", config["width_multiplier"])
    validation.check_in("stem", config["stem"], STEMS)
    validation.check_positive("stem_width_multiplier", config["stem_width_multiplier"])
    if config["stem"] != "axial" and int(64 * config["stem_width_multiplier"]) < 1:
      raise ValueError(f"stem_width_multiplier leaves the stem without channels, received "
                       f"stem_width_multiplier={config['stem_width_multiplier']!r}")
    if int(round(64 * config["width_multiplier"] / 2)) < 1:
      raise ValueError(f"width_multiplier leaves a stage without channels, received "
                       f"width_multiplier={config['width_multiplier']!r}")
    blocks = _check_num_blocks(config["num_blocks"])
    validation.check_positive("layer_multiplier", config["layer_multiplier"])
    if min(int(b * config["layer_multiplier"]) for b in blocks) < 1:
      raise ValueError(f"layer_multiplier leaves a stage without blocks, received "
                       f"layer_multiplier={config['layer_multiplier']!r}")
    max_pool = config["stem_max_pool"]
    if max_pool is not None and not isinstance(max_pool, bool):
      raise ValueError(f"stem_max_pool must be None, True or False, received "
                       f"stem_max_pool={config['stem_max_pool']!r}")
    if config["stem"] == "axial" and config["stem_max_pool"]:
      raise ValueError(f"the fully axial model has no conv stem to pool after, received "
                       f"stem_max_pool={config['stem_max_pool']!r}")
    validation.check_in("output_stride", config["output_stride"], OUTPUT_STRIDES)
    _check_axial_args(config)
    if (config["stem"] == "axial") != (config["use_axial_beyond_stride"] == 1):
      raise ValueError(
          f"the fully axial model (stem='axial') and use_axial_beyond_stride=1 go "
          f"together (deeplab2), received stem={config['stem']!r}, "
          f"use_axial_beyond_stride={config['use_axial_beyond_stride']!r}")
    validation.check_in("drop_path_schedule", config["drop_path_schedule"],
                        ("constant", "linear"))
    validation.check_in("drop_path_beyond_stride", config["drop_path_beyond_stride"],
                        _DROP_PATH_STRIDES)
    plan = axial_resnet_plan(
        blocks, config["layer_multiplier"], config["width_multiplier"], config["stem"],
        self._max_pool(config), config["output_stride"], config["use_axial_beyond_stride"],
        config["attention_bottleneck_expansion"], config["drop_path_rate"],
        config["drop_path_schedule"], config["drop_path_beyond_stride"])
    _check_heads_divide(plan, config)
    return plan


def AxialResNetS(**kwargs):
  """Axial-ResNet-S (paper Table 1 "Conv-Stem + Axial-Attention"; width 0.5)."""
  return AxialResNet(**{**dict(width_multiplier=0.5, name="axial_resnet_s"), **kwargs})


def AxialResNetM(**kwargs):
  """Axial-ResNet-M (width 0.75)."""
  return AxialResNet(**{**dict(width_multiplier=0.75, name="axial_resnet_m"), **kwargs})


def AxialResNetL(**kwargs):
  """Axial-ResNet-L (width 1)."""
  return AxialResNet(**{**dict(width_multiplier=1.0, name="axial_resnet_l"), **kwargs})


def AxialResNetXL(**kwargs):
  """Axial-ResNet-XL (width 2)."""
  return AxialResNet(**{**dict(width_multiplier=2.0, name="axial_resnet_xl"), **kwargs})


def AxialDeepLabSBackbone(**kwargs):
  """Axial-DeepLab-S's backbone: Axial-ResNet-S with the Inception stem (deeplab2)."""
  return AxialResNet(**{**dict(width_multiplier=0.5, stem="inception",
                               name="axial_deeplab_s"), **kwargs})


def AxialDeepLabLBackbone(**kwargs):
  """Axial-DeepLab-L's backbone: Axial-ResNet-L with the Inception stem (deeplab2)."""
  return AxialResNet(**{**dict(width_multiplier=1.0, stem="inception",
                               name="axial_deeplab_l"), **kwargs})


def FullAxialResNetS(**kwargs):
  """Fully self-attentional Axial-ResNet-S (Table 1 "Full Axial-Attention"; deeplab2's
  use_axial_beyond_stride=1: no conv stem, a first stage of 3 axial blocks)."""
  return AxialResNet(**{**dict(width_multiplier=0.5, stem="axial",
                               use_axial_beyond_stride=1, name="full_axial_resnet_s"),
                        **kwargs})


@tf_keras.utils.register_keras_serializable(package="tfvision")
class AxialSWideRNet(SWideRNet):
  """Axial-SWideRNet-(w1, w2, l): SWideRNet with axial blocks past stride 16 (deeplab2).

  Blocks whose undilated input stride is >= use_axial_beyond_stride (16: the last two
  blocks of conv5 and all of conv6) become axial bottlenecks with filters
  [4 f, f, 4 f], key depth 2 f and value depth 4 f, where f = round(stride * 32 * w2)
  (deeplab2 `AxialSWideRNet`); the other blocks are SWideRNet's. Defaults follow
  deeplab2's Cityscapes configs: no SE, no SAC, drop path 0.2 on a linear schedule.

  Args:
    w1, w2, l, use_se, se_beyond_stride, sac_beyond_stride, output_stride, multi_grid, include_top,
    num_classes, input_shape, pooling, classifier_activation, drop_path_rate,
    drop_path_schedule, drop_path_beyond_stride, dropout_rate, norm, norm_momentum,
    norm_epsilon, weight_decay, name: as SWideRNet.
    use_axial_beyond_stride: axial blocks where the input stride is >= this (0: none).
    attention_bottleneck_expansion, num_heads, key_expansion, value_expansion,
    max_span, position_sensitive, span: as AxialResNet.
    recompute_grad: "all" (deeplab2's default: Axial-SWideRNet inherits SWideRNet's
      conv_use_recompute_grad and recomputes axial blocks too), "axial" or "none".
  """

  def __init__(self, w1=1.0, w2=1.0, l=1.0, use_se=False, se_beyond_stride=2,
               sac_beyond_stride=0, use_axial_beyond_stride=16, attention_bottleneck_expansion=4, num_heads=8,
               key_expansion=2.0, value_expansion=4.0, max_span=DEFAULT_MAX_SPAN,
               position_sensitive=True, span=None, recompute_grad="all",
               output_stride=32, multi_grid=None,
               include_top=True, num_classes=1000, input_shape=None, pooling="avg",
               classifier_activation=None, drop_path_rate=0.2, drop_path_schedule="linear",
               drop_path_beyond_stride=4, dropout_rate=0.0, norm="batch",
               norm_momentum=0.99, norm_epsilon=1e-3, weight_decay=0.0,
               name="axial_swidernet"):
    super().__init__(
        w1=w1, w2=w2, l=l, use_se=use_se, se_beyond_stride=se_beyond_stride,
        sac_beyond_stride=sac_beyond_stride, output_stride=output_stride,
        multi_grid=multi_grid, include_top=include_top,
        num_classes=num_classes, input_shape=input_shape, pooling=pooling,
        classifier_activation=classifier_activation, drop_path_rate=drop_path_rate,
        drop_path_schedule=drop_path_schedule,
        drop_path_beyond_stride=drop_path_beyond_stride, dropout_rate=dropout_rate,
        norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
        weight_decay=weight_decay, name=name,
        # SWideRNet keeps extra keyword arguments in its config for subclasses.
        use_axial_beyond_stride=use_axial_beyond_stride,
        attention_bottleneck_expansion=attention_bottleneck_expansion,
        num_heads=num_heads, key_expansion=key_expansion,
        value_expansion=value_expansion, max_span=max_span,
        position_sensitive=position_sensitive, span=span, recompute_grad=recompute_grad)

  def _validate_and_plan(self, config):
    plan = super()._validate_and_plan(config)
    _check_axial_args(config)
    if config["use_axial_beyond_stride"] == 1:
      raise ValueError("SWideRNet has a conv stem, so no block works at stride 1; "
                       f"received use_axial_beyond_stride=1")
    beyond = config["use_axial_beyond_stride"]
    expansion = config["attention_bottleneck_expansion"]
    for stage in plan:
      for spec in stage:
        if spec["input_stride"] >= beyond > 0:
          base = spec["base_filters"]
          spec.update(kind="axial", filters=[base * expansion, base, 4 * base])
    _check_heads_divide(plan, config)
    return plan

  def _make_block(self, spec, config, common, name):
    if spec["kind"] == "axial":
      return _axial_block(spec, config, common, name)
    return super()._make_block(
        spec, config, dict(common, recompute_grad=config["recompute_grad"] == "all"), name)


# Tiny configurations: same depth and layout, narrow stages (8 heads still divide them).
_TINY_RESNET = dict(width_multiplier=0.125, stem_width_multiplier=0.125, num_classes=7)
_TINY_SWIDERNET = dict(w1=1 / 16, w2=1 / 16, num_classes=7)
_TABLE1 = "axial-deeplab Table 1 (Conv-Stem + Axial-Attention), Fig. 3"

register_model("axial_resnet_s", AxialResNetS, family="axial_resnet", tiny=_TINY_RESNET,
               paper=_TABLE1 + ", width 0.5")
register_model("axial_resnet_m", AxialResNetM, family="axial_resnet", tiny=_TINY_RESNET,
               paper=_TABLE1 + ", width 0.75")
register_model("axial_resnet_l", AxialResNetL, family="axial_resnet", tiny=_TINY_RESNET,
               paper=_TABLE1 + ", width 1")
register_model("axial_resnet_xl", AxialResNetXL, family="axial_resnet", tiny=_TINY_RESNET,
               paper=_TABLE1 + ", width 2")
register_model("axial_deeplab_s", AxialDeepLabSBackbone, family="axial_resnet",
               tiny=_TINY_RESNET, paper="axial-deeplab Sec. 4.2; deeplab2 AxialDeepLabS")
register_model("axial_deeplab_l", AxialDeepLabLBackbone, family="axial_resnet",
               tiny=_TINY_RESNET, paper="axial-deeplab Sec. 4.2; deeplab2 AxialDeepLabL")
# Its stride-1 stage has half the base width, so 8 heads need twice the tiny width.
register_model("full_axial_resnet_s", FullAxialResNetS, family="axial_resnet",
               tiny=dict(_TINY_RESNET, width_multiplier=0.25),
               paper="axial-deeplab Table 1 (Full Axial-Attention); deeplab2 "
                     "use_axial_beyond_stride=1")

# deeplab2 ships Cityscapes configs for Axial-SWideRNet-(1, 1, l), l in {1, 3, 4.5}.
AXIAL_SWIDERNET_VARIANTS = ((1, 1, 1), (1, 1, 3), (1, 1, 4.5))


def axial_swidernet_name(w1, w2, l):
  """Registry name of Axial-SWideRNet-(w1, w2, l), e.g. "axial_swidernet_1_1_4.5"."""
  return "axial_swidernet_" + "_".join(f"{v:g}" for v in (w1, w2, l))


for _w1, _w2, _l in AXIAL_SWIDERNET_VARIANTS:
  register_model(
      axial_swidernet_name(_w1, _w2, _l), AxialSWideRNet,
      defaults=dict(w1=_w1, w2=_w2, l=_l, name=axial_swidernet_name(_w1, _w2, _l)),
      family="axial_resnet", tiny=_TINY_SWIDERNET,
      paper="deeplab2 configs/cityscapes/axial_deeplab (Axial-SWideRNet)")
