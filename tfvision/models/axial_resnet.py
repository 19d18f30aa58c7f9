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
   use m = 65 (presets `axial_deeplab_{s,l}_panoptic_span65`). deeplab2 has no local
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
   by default "axial" for Axial-ResNet and "all" for Axial-SWideRNet, as deeplab2
   (`tfvision.layers.recompute`; training only, the same gradients).

Inputs are pixels in [0, 255], normalised inside the model to x / 127.5 - 1 as deeplab2.
"""
import dataclasses
import typing
from typing import List, Optional

import tf_keras

from tfvision.blocks.axial import AxialBottleneckBlock
from tfvision.blocks.residual import WideResidualBlock
from tfvision.layers.activations import get_activation
from tfvision.layers.axial_attention import DEFAULT_MAX_SPAN, check_span
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.preprocessing import DEEPLAB_MEAN_RGB, DEEPLAB_STD_RGB
from tfvision.layers.regularization import drop_path_rate_for_stride
from tfvision.models.base import VisionModel
from tfvision.models.registry import Preset, preset_constructor, register_presets
from tfvision.models.spec import RecomputeSpec, arg
from tfvision.models.swidernet import SWideRNet, SWideRNetSpec

STEMS = ("conv7x7", "inception", "axial")
OUTPUT_STRIDES = (8, 16, 32)
AXIAL_BEYOND_STRIDES = (0, 1, 2, 4, 8, 16, 32)
_DROP_PATH_STRIDES = (2, 4, 8, 16, 32)
# deeplab2 considers five stages at these input strides, each striding by 2; the conv
# stems replace the first one (stride 1 -> 2).
_STAGE_INPUT_STRIDES = (1, 2, 4, 8, 16)
RESNET50_BLOCKS = (3, 4, 6, 3)
# Stage 1 of the fully axial model (deeplab2 prepends 3 blocks to num_blocks).
_AXIAL_STEM_BLOCKS = 3


@dataclasses.dataclass
class AxialAttentionSpec(RecomputeSpec):
  """The axial-attention arguments shared by Axial-ResNet and Axial-SWideRNet."""
  FAMILY: typing.ClassVar[str] = "axial_resnet"
  AXIAL_BLOCKS: typing.ClassVar[bool] = True
  # deeplab2's default (`axial_use_recompute_grad: True`).
  recompute_grad: str = RecomputeSpec.field_with_default("recompute_grad", "axial")
  use_axial_beyond_stride: int = arg(
      2, "axial blocks where a block's input stride is >= this: 2 every stage "
      "(Axial-ResNet), 16 the last two, 0 nowhere, 1 with stem='axial'",
      choices=AXIAL_BEYOND_STRIDES)
  attention_bottleneck_expansion: int = arg(
      2, "first 1x1 conv width of an axial block over its attention width", positive=True)
  num_heads: int = arg(8, "attention heads (must divide every key and value depth)",
                       positive=True)
  key_expansion: float = arg(1.0, "key depth over the attention width", positive=True)
  value_expansion: float = arg(2.0, "value depth over the attention width", positive=True)
  max_span: int = arg(DEFAULT_MAX_SPAN, "the longest axis any axial layer may see",
                      positive=True)
  position_sensitive: bool = arg(True, "the relative-position terms of Eq. 4 (False: "
                                 "content attention only)")
  span: Optional[int] = arg(None, "None: each axial layer attends over the whole axis (up "
                            "to max_span); an odd m: each query over the m positions "
                            "centred on it (Eq. 4), at any input size, the same weights",
                            nullable=True)

  def check(self):
    super().check()
    check_span(self.span, self.max_span)


@dataclasses.dataclass
class AxialResNetSpec(AxialAttentionSpec):
  """The architecture of Axial-ResNet / the Axial-DeepLab backbones (ResNet-50 layout)."""
  width_multiplier: float = arg(1.0, "channel multiplier of the four stages (S 0.5, M "
                                "0.75, L 1, XL 2)", positive=True)
  stem: str = arg("conv7x7", "'conv7x7' (deeplab2 'resnet'), 'inception' (three 3x3 "
                  "convs, 'resnet_beta', Axial-DeepLab) or 'axial' (a first stage of 3 "
                  "axial blocks at stride 1; needs use_axial_beyond_stride=1)",
                  choices=STEMS)
  stem_width_multiplier: float = arg(1.0, "channel multiplier of the conv stem",
                                     positive=True)
  stem_max_pool: Optional[bool] = arg(
      None, "3x3 stride-2 max-pool after the conv stem (the paper, Sec. 3); False moves "
      "that stride into conv2_x's first block as deeplab2 does; None: True after a conv "
      "stem", nullable=True)
  num_blocks: List[int] = arg(list(RESNET50_BLOCKS), "blocks of conv2_x .. conv5_x",
                              positive=True)
  layer_multiplier: float = arg(1.0, "depth multiplier of num_blocks (int(b * m) each)",
                                positive=True)
  output_stride: int = arg(32, "stride of endpoint '5': 32 classification, 16 or 8 "
                           "dilate (attention spans the whole axis either way)",
                           choices=OUTPUT_STRIDES)
  drop_path_rate: float = arg(0.0, "stochastic depth (deeplab2's scheme by stride; off in "
                              "the paper)", probability=True)
  drop_path_schedule: str = arg("constant", "'constant' or 'linear' by stage",
                                choices=("constant", "linear"))
  drop_path_beyond_stride: int = arg(16, "blocks whose input stride is below this get no "
                                     "drop path", choices=_DROP_PATH_STRIDES)

  def check(self):
    super().check()
    if len(self.num_blocks) != 4:
      raise ValueError(f"num_blocks must be 4 positive integers (conv2_x .. conv5_x), "
                       f"received num_blocks={self.num_blocks!r}")
    if self.stem != "axial" and int(64 * self.stem_width_multiplier) < 1:
      raise ValueError(f"stem_width_multiplier leaves the stem without channels, received "
                       f"stem_width_multiplier={self.stem_width_multiplier!r}")
    if int(round(64 * self.width_multiplier / 2)) < 1:
      raise ValueError(f"width_multiplier leaves a stage without channels, received "
                       f"width_multiplier={self.width_multiplier!r}")
    if min(int(b * self.layer_multiplier) for b in self.num_blocks) < 1:
      raise ValueError(f"layer_multiplier leaves a stage without blocks, received "
                       f"layer_multiplier={self.layer_multiplier!r}")
    if self.stem == "axial" and self.stem_max_pool:
      raise ValueError(f"the fully axial model has no conv stem to pool after, received "
                       f"stem_max_pool={self.stem_max_pool!r}")
    if (self.stem == "axial") != (self.use_axial_beyond_stride == 1):
      raise ValueError(
          f"the fully axial model (stem='axial') and use_axial_beyond_stride=1 go "
          f"together (deeplab2), received stem={self.stem!r}, "
          f"use_axial_beyond_stride={self.use_axial_beyond_stride!r}")

  @property
  def max_pool(self):
    """stem_max_pool resolved: None means after a conv stem (the paper), not after none."""
    if self.stem_max_pool is None:
      return self.stem != "axial"
    return self.stem_max_pool


def axial_resnet_plan(spec):
  """Per-block settings of an (Axial-)ResNet, following deeplab2's BlockGroup.

  Args:
    spec: an `AxialResNetSpec`.

  Returns:
    A list of stages (five with stem="axial", else four: conv2_x .. conv5_x); each a
    list of dicts with keys kind ("axial" or "bottleneck"), filters, base_filters,
    strides, dilation_rate, drop_path_rate and input_stride (the undilated stride of the
    block's input, which decides the block kind: axial where it is >=
    use_axial_beyond_stride > 0).
  """
  counts = [_AXIAL_STEM_BLOCKS] + [int(b * spec.layer_multiplier) for b in spec.num_blocks]
  first = 0 if spec.stem == "axial" else 1
  output_stride = spec.output_stride
  plan = []
  for index in range(first, len(_STAGE_INPUT_STRIDES)):
    # Widths follow the stage's place in ResNet (deeplab2: round(stride * 32 * width)).
    base = int(round(_STAGE_INPUT_STRIDES[index] * 32 * spec.width_multiplier))
    stage_in, stride = _STAGE_INPUT_STRIDES[index], 2
    if index == 1 and spec.max_pool:
      # The stem's max-pool already took conv2_x to stride 4.
      stage_in, stride = 4, 1
    current = stage_in
    stage = []
    for block in range(counts[index]):
      strides = stride if (block == 0 and stage_in < output_stride) else 1
      axial = current >= spec.use_axial_beyond_stride > 0
      expansion = spec.attention_bottleneck_expansion if axial else 1
      stage.append(dict(
          kind="axial" if axial else "bottleneck",
          filters=[base * expansion, base, 4 * base], base_filters=base, strides=strides,
          dilation_rate=current // output_stride if current > output_stride else 1,
          drop_path_rate=drop_path_rate_for_stride(
              spec.drop_path_rate, spec.drop_path_schedule, current,
              spec.drop_path_beyond_stride),
          input_stride=current))
      if block == 0:
        current *= stride
    plan.append(stage)
  return plan


def _check_heads_divide(plan, arch):
  """Every axial block's key and value depth must split evenly into the heads."""
  for stage in plan:
    for block in stage:
      if block["kind"] != "axial":
        continue
      for what, expansion in (("key", arch.key_expansion), ("value", arch.value_expansion)):
        depth = int(round(block["filters"][1] * expansion))
        if depth % arch.num_heads:
          raise ValueError(
              f"num_heads must divide every axial layer's {what} depth, but a block at "
              f"stride {block['input_stride']} has {what} depth {depth}; received "
              f"num_heads={arch.num_heads!r}")


def _axial_block(block, arch, common, layer_settings, name):
  return AxialBottleneckBlock(
      block["filters"], strides=block["strides"], num_heads=arch.num_heads,
      key_expansion=arch.key_expansion, value_expansion=arch.value_expansion,
      max_span=arch.max_span, position_sensitive=arch.position_sensitive,
      use_se=getattr(arch, "use_se", False), drop_path_rate=block["drop_path_rate"],
      span=arch.span, recompute_grad=arch.recomputes(axial=True),
      activation=common.activation, name=name, **layer_settings)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class AxialResNet(VisionModel):
  """Axial-ResNet (ResNet-50 layout) for classification or as a dense-prediction backbone.

  Endpoints "2".."5" are the activated outputs of conv2_x..conv5_x (deeplab2's res2..res5).
  """
  ARCH = AxialResNetSpec
  COMMON_DEFAULTS = dict(norm=dict(momentum=0.99, epsilon=1e-3))
  TINY = dict(width_multiplier=0.125, stem_width_multiplier=0.125, num_classes=7)
  MEAN_RGB = DEEPLAB_MEAN_RGB
  STD_RGB = DEEPLAB_STD_RGB

  @classmethod
  def check_arguments(cls, arch, common):
    _check_heads_divide(axial_resnet_plan(arch), arch)

  def build_backbone(self, arch, common):
    plan = axial_resnet_plan(arch)
    layer_settings = dict(common.norm.layer_kwargs(), weight_decay=common.weight_decay)
    inputs, x = self.image_input(common)
    x = self._stem(x, arch, layer_settings)
    act = get_activation(common.activation)
    endpoints = {}
    first_stage = 1 if arch.stem == "axial" else 2
    for offset, stage in enumerate(plan):
      stage_number = first_stage + offset
      for block_index, block in enumerate(stage):
        name = f"stage{stage_number}_block{block_index + 1}"
        if block["kind"] == "axial":
          layer = _axial_block(block, arch, common, layer_settings, name)
        else:
          layer = WideResidualBlock(
              block["filters"], kind="bottleneck", strides=block["strides"],
              dilation_rate=block["dilation_rate"], drop_path_rate=block["drop_path_rate"],
              activation=common.activation, recompute_grad=arch.recomputes(), name=name,
              **layer_settings)
        x = layer(x)
      if stage_number >= 2:
        # As SWideRNet: the activated stage output is the endpoint and the next stage's
        # input (the same graph with and without the head).
        x = tf_keras.layers.Activation(act, name=f"res{stage_number}")(x)
        endpoints[str(stage_number)] = x
    return inputs, endpoints

  @staticmethod
  def _stem(x, arch, layer_settings):
    """The conv stem, ending with BN and no activation (the first block applies it)."""
    width = arch.stem_width_multiplier
    if arch.stem == "conv7x7":
      x = ConvNormAct(int(round(64 * width)), 7, strides=2, activation=None, name="stem",
                      **layer_settings)(x)
    elif arch.stem == "inception":
      # deeplab2 `stems.InceptionSTEM` (int() rounding of its widths).
      x = ConvNormAct(int(64 * width), 3, strides=2, name="stem_conv1", **layer_settings)(x)
      x = ConvNormAct(int(64 * width), 3, name="stem_conv2", **layer_settings)(x)
      x = ConvNormAct(int(128 * width), 3, activation=None, name="stem_conv3",
                      **layer_settings)(x)
    if arch.max_pool:
      # 3x3 stride-2 max-pool with symmetric padding (PyTorch / TF1 DeepLab windows).
      # The input is not activated yet, and the next block starts with ReLU, so zero
      # padding gives exactly relu(max-pool(x)) with padding that never wins.
      x = tf_keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
      x = tf_keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    return x


AxialSWideRNetSpec = SWideRNetSpec.variant(
    "AxialSWideRNetSpec", bases=(AxialAttentionSpec,), family="axial_resnet",
    # deeplab2's Cityscapes configs: no SE, no SAC, drop path 0.2 on the linear schedule.
    use_se=False, sac_beyond_stride=0, drop_path_schedule="linear",
    # deeplab2 `AxialSWideRNet`: axial bottlenecks [4 f, f, 4 f], key 2 f, value 4 f.
    use_axial_beyond_stride=16, attention_bottleneck_expansion=4, key_expansion=2.0,
    value_expansion=4.0,
    # deeplab2 recomputes its axial blocks and, through SWideRNet's
    # conv_use_recompute_grad, the conv blocks too.
    recompute_grad="all")
AxialSWideRNetSpec.__doc__ = ("The architecture of Axial-SWideRNet-(w1, w2, l): "
                              "SWideRNet's arguments and the axial-attention ones.")


@tf_keras.utils.register_keras_serializable(package="tfvision")
class AxialSWideRNet(SWideRNet):
  """Axial-SWideRNet-(w1, w2, l): SWideRNet with axial blocks past stride 16 (deeplab2).

  Blocks whose undilated input stride is >= use_axial_beyond_stride (16: the last two
  blocks of conv5 and all of conv6) become axial bottlenecks with filters
  [4 f, f, 4 f], key depth 2 f and value depth 4 f, where f = round(stride * 32 * w2)
  (deeplab2 `AxialSWideRNet`); the other blocks are SWideRNet's. Defaults follow
  deeplab2's Cityscapes configs: no SE, no SAC, drop path 0.2 on a linear schedule.
  """
  ARCH = AxialSWideRNetSpec
  DEFAULT_NAME = "axial_swidernet"

  @classmethod
  def check_arguments(cls, arch, common):
    if arch.use_axial_beyond_stride == 1:
      raise ValueError("SWideRNet has a conv stem, so no block works at stride 1; "
                       "received use_axial_beyond_stride=1")
    _check_heads_divide(cls.plan(arch), arch)

  @classmethod
  def plan(cls, arch):
    plan = super().plan(arch)
    beyond = arch.use_axial_beyond_stride
    for stage in plan:
      for block in stage:
        if block["input_stride"] >= beyond > 0:
          base = block["base_filters"]
          block.update(kind="axial",
                       filters=[base * arch.attention_bottleneck_expansion, base, 4 * base])
    return plan

  def make_block(self, block, arch, common, layer_settings, name):
    if block["kind"] == "axial":
      return _axial_block(block, arch, common, layer_settings, name)
    return super().make_block(block, arch, common, layer_settings, name)


_TABLE1 = "axial-deeplab Table 1 (Conv-Stem + Axial-Attention), Fig. 3"
# deeplab2 ships Cityscapes configs for Axial-SWideRNet-(1, 1, l), l in {1, 3, 4.5}.
AXIAL_SWIDERNET_VARIANTS = ((1, 1, 1), (1, 1, 3), (1, 1, 4.5))


def axial_swidernet_name(w1, w2, l):
  """Registry name of Axial-SWideRNet-(w1, w2, l), e.g. "axial_swidernet_1_1_4.5"."""
  return "axial_swidernet_" + "_".join(f"{v:g}" for v in (w1, w2, l))


PRESETS = register_presets(
    Preset("axial_resnet_s", AxialResNet, fixed=dict(width_multiplier=0.5),
           source=_TABLE1 + ", width 0.5"),
    Preset("axial_resnet_m", AxialResNet, fixed=dict(width_multiplier=0.75),
           source=_TABLE1 + ", width 0.75"),
    Preset("axial_resnet_l", AxialResNet, fixed=dict(width_multiplier=1.0),
           source=_TABLE1 + ", width 1"),
    Preset("axial_resnet_xl", AxialResNet, fixed=dict(width_multiplier=2.0),
           source=_TABLE1 + ", width 2"),
    Preset("axial_deeplab_s", AxialResNet, fixed=dict(width_multiplier=0.5, stem="inception"),
           source="axial-deeplab Sec. 4.2; deeplab2 AxialDeepLabS (Inception stem)"),
    Preset("axial_deeplab_l", AxialResNet, fixed=dict(width_multiplier=1.0, stem="inception"),
           source="axial-deeplab Sec. 4.2; deeplab2 AxialDeepLabL (Inception stem)"),
    # Its stride-1 stage has half the base width, so 8 heads need twice the tiny width.
    Preset("full_axial_resnet_s", AxialResNet,
           fixed=dict(width_multiplier=0.5, stem="axial", use_axial_beyond_stride=1),
           tiny=dict(width_multiplier=0.25),
           source="axial-deeplab Table 1 (Full Axial-Attention); deeplab2 "
                  "use_axial_beyond_stride=1"),
    *(Preset(axial_swidernet_name(w1, w2, l), AxialSWideRNet, fixed=dict(w1=w1, w2=w2, l=l),
             source="deeplab2 configs/cityscapes/axial_deeplab (Axial-SWideRNet)")
      for w1, w2, l in AXIAL_SWIDERNET_VARIANTS))

AxialResNetS = preset_constructor(
    "axial_resnet_s", "AxialResNetS",
    "Axial-ResNet-S (paper Table 1 'Conv-Stem + Axial-Attention'; width 0.5).")
AxialResNetM = preset_constructor("axial_resnet_m", "AxialResNetM",
                                  "Axial-ResNet-M (width 0.75).")
AxialResNetL = preset_constructor("axial_resnet_l", "AxialResNetL",
                                  "Axial-ResNet-L (width 1).")
AxialResNetXL = preset_constructor("axial_resnet_xl", "AxialResNetXL",
                                   "Axial-ResNet-XL (width 2).")
AxialDeepLabSBackbone = preset_constructor(
    "axial_deeplab_s", "AxialDeepLabSBackbone",
    "Axial-DeepLab-S's backbone: Axial-ResNet-S with the Inception stem (deeplab2).")
AxialDeepLabLBackbone = preset_constructor(
    "axial_deeplab_l", "AxialDeepLabLBackbone",
    "Axial-DeepLab-L's backbone: Axial-ResNet-L with the Inception stem (deeplab2).")
FullAxialResNetS = preset_constructor(
    "full_axial_resnet_s", "FullAxialResNetS",
    "Fully self-attentional Axial-ResNet-S (Table 1 'Full Axial-Attention'; deeplab2's "
    "use_axial_beyond_stride=1: no conv stem, a first stage of 3 axial blocks).")
