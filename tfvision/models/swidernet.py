"""SWideRNet-(w1, w2, l) and Wide-ResNet-41 (Chen, Wang, Qiao 2020; swidernet.md).

Architecture (swidernet.md Table 1): a 3x3 stride-2 stem with 64*w1 channels; stage 1
(conv2) of 3 basic blocks with 128*w1 channels; stages 2-4 (conv3-conv5) of 3l, 6l, 3l
basic blocks with 256, 512, 1024 (x w2) channels; stage 5 (conv6) of 3l bottlenecks
(512, 1024, 2048) x w2; simplified SE (Eq. 1) and Switchable Atrous Convolution (Eq. 2)
switchable. Block counts are `[3] + [int(b * l) for b in (3, 6, 3, 3)]` (truncation, as
deeplab2's `scale_int_list`, so l = 0.75 and 4.5 work). Channel counts are
`int(round(stride * 32 * w))` times 4 (basic) or (1, 2, 4) (bottleneck), as deeplab2's
`AxialResNet` computes them.

Where Table 1 and the released code (deeplab2 `axial_resnet.py`,
`axial_block_groups.py`, `axial_blocks.py`, `axial_resnet_instances.SWideRNet`), which
produced the published checkpoints, differ, we follow the released code:

1. Stride placement: Table 1 strides the *last* block of conv3, conv4 and conv5; deeplab2
   strides the *first* block of the following stage (conv4, conv5, conv6). The feature
   at each stride is the same size; which block carries the stride differs.
2. Max-pool: Table 1 has a 3x3 stride-2 max-pool after conv2; deeplab2 has no max-pool
   and strides the first 3x3 conv of conv3 instead. Hence conv2 runs at stride 2 and
   conv6 (the bottlenecks) at stride 32.
3. SE placement: Table 1 puts SE in conv3-conv6; deeplab2 applies it in all five stages
   when enabled (conv2 included). We follow deeplab2 by default (`se_beyond_stride=2`);
   `se_beyond_stride=4` gives the paper's placement, whose parameter count reproduces
   Tables 3-4 exactly (SE adds 17,511,168 at w2 = 1 = the paper's 168.77M - 151.26M;
   deeplab2's placement adds 49,536 more at w1 = 1).
4. Blocks take non-activated inputs, apply ReLU first and return the non-activated sum
   (deeplab2's `AxialBlock`); endpoints are the activated stage outputs (deeplab2's
   "res2".."res5").
5. Atrous convolution for output strides 8 and 16 follows deeplab2's `BlockGroup`: the
   first block of a dilated stage keeps rate 1 in its first 3x3 conv (it replaces the
   strided conv) and the following convs use stride / output_stride.
6. Drop path: the paper uses a constant survival rate of 0.8 (Sec. 4.1); deeplab2 applies
   it to blocks whose input stride is >= 4 (`drop_path_beyond_stride`), with a
   "constant" or "linear" schedule by stage. Both are available; the default is the
   paper's constant 0.2 drop rate.
7. SAC (`sac_beyond_stride`): deeplab2 uses SAC in stages whose output stride is >=
   `sac_beyond_stride` (32 = conv6 only, as Table 1), with global context around every
   3x3 conv of those stages and the switch only where the conv has stride 1.

Inputs are pixels in [0, 255], normalised inside the model to x / 127.5 - 1 as deeplab2
(`model/deeplab.py`).
"""
import dataclasses
import typing
from typing import List, Optional

import tf_keras

from tfvision.blocks.residual import WideResidualBlock
from tfvision.layers.activations import get_activation
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.preprocessing import DEEPLAB_MEAN_RGB, DEEPLAB_STD_RGB
from tfvision.layers.regularization import drop_path_rate_for_stride
from tfvision.models.base import VisionModel
from tfvision.models.registry import Preset, preset_constructor, register_presets
from tfvision.models.releases import deeplab2_imagenet
from tfvision.models.spec import RecomputeSpec, arg

OUTPUT_STRIDES = (8, 16, 32)
STAGE_STRIDES = (2, 4, 8, 16, 32)
# deeplab2 runs five stages at these input strides with these strides (the stem
# already strides by 2, so stage 1 has none).
_STAGE_INPUT_STRIDES = (2, 2, 4, 8, 16)
_STAGE_STRIDES = (1, 2, 2, 2, 2)
# Stride used for each stage's channel count: filters = round(stride * 32 * w).
_STAGE_WIDTH_STRIDES = (1, 2, 4, 8, 16)
_BASE_BLOCKS = (3, 6, 3, 3)


def num_blocks_per_stage(l):
  """[3] + [int(b * l) for b in (3, 6, 3, 3)] (swidernet.md Table 1, deeplab2)."""
  return [3] + [int(b * l) for b in _BASE_BLOCKS]


@dataclasses.dataclass
class SWideRNetSpec(RecomputeSpec):
  """The architecture of SWideRNet-(w1, w2, l) (swidernet.md Table 1; deeplab2)."""
  FAMILY: typing.ClassVar[str] = "swidernet"
  w1: float = arg(1.0, "width multiplier of the stem and stage 1 (conv1, conv2)",
                  positive=True)
  w2: float = arg(1.0, "width multiplier of stages 2-5 (conv3-conv6)", positive=True)
  l: float = arg(1.0, "depth multiplier of stages 2-5 (at least 1/3, so every stage has "
                 "a block)", positive=True)
  use_se: bool = arg(True, "simplified squeeze-and-excitation (swidernet.md Eq. 1)")
  se_beyond_stride: int = arg(2, "SE in stages whose output stride is >= this: 2 = all "
                              "five (deeplab2), 4 = conv3-conv6 (Table 1)",
                              choices=STAGE_STRIDES)
  sac_beyond_stride: int = arg(32, "switchable atrous convolution in stages whose output "
                               "stride is >= this (32: conv6, Table 1); 0 disables",
                               choices=(0,) + STAGE_STRIDES)
  output_stride: int = arg(32, "stride of endpoint '5': 32 for classification, 16 or 8 "
                           "dilate the last stages (deeplab2's scheme)",
                           choices=OUTPUT_STRIDES)
  multi_grid: Optional[List[int]] = arg(None, "unit rates of the last blocks of the last "
                                        "stage, e.g. [1, 2, 4] (Table 3 'MG')",
                                        nullable=True, positive=True)
  drop_path_rate: float = arg(0.2, "drop probability of the residual branches (Sec. 4.1: "
                              "survival 0.8)", probability=True)
  drop_path_schedule: str = arg("constant", "'constant' (the paper) or 'linear' by stage "
                                "(deeplab2's configs)", choices=("constant", "linear"))
  drop_path_beyond_stride: int = arg(4, "blocks whose input stride is below this get no "
                                     "drop path (deeplab2)", positive=True)

  def check(self):
    super().check()
    if int(3 * self.l) < 1:
      raise ValueError(f"l must be >= 1/3 so that every stage has a block, received "
                       f"l={self.l!r}")
    last_stage = num_blocks_per_stage(self.l)[-1]
    if self.multi_grid is not None and not 0 < len(self.multi_grid) <= last_stage:
      raise ValueError(f"multi_grid needs 1 to {last_stage} rates (the last stage's "
                       f"blocks), received multi_grid={self.multi_grid!r}")


def wide_resnet_plan(spec):
  """Per-block settings of SWideRNet-(w1, w2, l), following deeplab2's BlockGroup.

  Args:
    spec: a `SWideRNetSpec` (or a subclass).

  Returns:
    A list of five stages; each stage a list of dicts with keys kind ("basic" or
    "bottleneck"), filters, base_filters, strides, dilation_rate, second_dilation_rate,
    switchable_atrous, use_se, drop_path_rate and input_stride (the undilated stride of
    the block's input, which subclasses use to place other block types by stride).
  """
  blocks = num_blocks_per_stage(spec.l)
  output_stride = spec.output_stride
  plan = []
  for index, (stage_in, stride) in enumerate(zip(_STAGE_INPUT_STRIDES, _STAGE_STRIDES)):
    width = spec.w1 if index == 0 else spec.w2
    base = int(round(_STAGE_WIDTH_STRIDES[index] * 32 * width))
    stage_out = stage_in * stride
    bottleneck = stage_out >= 32
    filters = [base, 2 * base, 4 * base] if bottleneck else [4 * base, 4 * base]
    use_sac = stage_out >= spec.sac_beyond_stride > 0
    stage_se = bool(spec.use_se) and stage_out >= spec.se_beyond_stride
    current = stage_in
    stage = []
    for block in range(blocks[index]):
      strides = stride if (block == 0 and stage_in < output_stride) else 1
      rate = current // output_stride if current > output_stride else 1
      if block == 0 and stage_out > output_stride:
        second_rate = stage_out // output_stride
      else:
        second_rate = rate
      stage.append(dict(
          kind="bottleneck" if bottleneck else "basic", filters=list(filters),
          base_filters=base, strides=strides, dilation_rate=rate,
          second_dilation_rate=second_rate, switchable_atrous=use_sac, use_se=stage_se,
          drop_path_rate=drop_path_rate_for_stride(
              spec.drop_path_rate, spec.drop_path_schedule, current,
              spec.drop_path_beyond_stride),
          input_stride=current))
      if block == 0 and stride > 1:
        current *= stride
    plan.append(stage)
  if spec.multi_grid:
    last = plan[-1]
    offset = len(last) - len(spec.multi_grid)
    for i, unit_rate in enumerate(spec.multi_grid):
      block = last[offset + i]
      block["dilation_rate"] *= unit_rate
      block["second_dilation_rate"] *= unit_rate
  return plan


@tf_keras.utils.register_keras_serializable(package="tfvision")
class SWideRNet(VisionModel):
  """SWideRNet-(w1, w2, l) for classification or as a dense-prediction backbone.

  `SWideRNet(0.25, 0.5, 1)`: w1, w2 and l may be given by position. Endpoints "2".."5"
  are the activated outputs of conv3..conv6 (deeplab2's res2..res5).
  """
  ARCH = SWideRNetSpec
  POSITIONAL = ("w1", "w2", "l")
  COMMON_DEFAULTS = dict(norm=dict(momentum=0.99, epsilon=1e-3))
  TINY = dict(w1=1 / 16, w2=1 / 16, num_classes=7)
  MEAN_RGB = DEEPLAB_MEAN_RGB
  STD_RGB = DEEPLAB_STD_RGB

  def build_backbone(self, arch, common):
    plan = self.plan(arch)
    layer_settings = dict(common.norm.layer_kwargs(), weight_decay=common.weight_decay)
    inputs, x = self.image_input(common)
    # Stem: 3x3 stride-2 conv + BN, no activation (the first block applies it).
    x = ConvNormAct(int(round(64 * arch.w1)), 3, strides=2, activation=None, name="stem",
                    **layer_settings)(x)
    act = get_activation(common.activation)
    endpoints = {}
    for stage_index, stage in enumerate(plan):
      for block_index, block in enumerate(stage):
        x = self.make_block(block, arch, common, layer_settings,
                            name=f"stage{stage_index + 1}_block{block_index + 1}")(x)
      if stage_index >= 1:
        # The activated stage output is the endpoint and what the next stage consumes
        # (its first block's own ReLU then changes nothing), so the graph is the same
        # with and without the head.
        x = tf_keras.layers.Activation(act, name=f"res{stage_index + 1}")(x)
        endpoints[str(stage_index + 1)] = x
    return inputs, endpoints

  @classmethod
  def plan(cls, arch):
    """The block plan (subclasses place other block kinds in it)."""
    return wide_resnet_plan(arch)

  def make_block(self, block, arch, common, layer_settings, name):
    """Builds one residual block from its plan entry (subclasses add block kinds)."""
    return WideResidualBlock(
        block["filters"], kind=block["kind"], strides=block["strides"],
        dilation_rate=block["dilation_rate"],
        second_dilation_rate=block["second_dilation_rate"], use_se=block["use_se"],
        switchable_atrous=block["switchable_atrous"],
        drop_path_rate=block["drop_path_rate"], activation=common.activation,
        recompute_grad=arch.recomputes(), name=name, **layer_settings)


# Fast regime (swidernet.md Table 5) and strong regime (Table 4; 4.5 from Tables 8-10).
FAST_VARIANTS = ((0.25, 0.25, 0.75), (0.25, 0.35, 0.75), (0.25, 0.35, 1), (0.25, 0.5, 1),
                 (0.25, 0.75, 1))
STRONG_VARIANTS = ((1, 1, 1), (1, 1.5, 1), (1, 2, 1), (1, 1, 2), (1, 1, 3), (1, 1, 4),
                   (1, 1, 4.5), (1, 1, 5), (1, 1, 5.5), (1, 1, 6), (1, 1.5, 2), (1, 1.5, 3))


def variant_name(w1, w2, l):
  """Registry name of SWideRNet-(w1, w2, l), e.g. "swidernet_0.25_0.5_1"."""
  return "swidernet_" + "_".join(f"{v:g}" for v in (w1, w2, l))


# deeplab2's released SWideRNet-SAC-(1, 1, l): SAC in the stride-32 stage, no SE.
SAC_VARIANTS = (1, 3, 4.5)


def sac_variant_name(l):
  """Registry name of deeplab2's SWideRNet-SAC-(1, 1, l), e.g. "swidernet_sac_1_1_4.5"."""
  return f"swidernet_sac_1_1_{l:g}"


PRESETS = register_presets(
    # Wide-ResNet-41 (Chen et al. 2020 [4]): SWideRNet-(1, 1, 1) without SE and SAC.
    Preset("wide_resnet41", SWideRNet,
           fixed=dict(w1=1.0, w2=1.0, l=1.0, use_se=False, sac_beyond_stride=0),
           source="swidernet.md Table 1 (WR-41)",
           weights={"imagenet": deeplab2_imagenet("wide_resnet41")}),
    # deeplab2's configs: SAC beyond stride 32 and no SE (`use_squeeze_and_excite` is
    # unset in configs/cityscapes/panoptic_deeplab/swidernet_sac_*), drop path 0.2 on
    # the linear schedule.
    *(Preset(sac_variant_name(l), SWideRNet,
             fixed=dict(w1=1.0, w2=1.0, l=float(l), use_se=False, sac_beyond_stride=32),
             defaults=dict(drop_path_schedule="linear"),
             source="deeplab2 SWideRNet-SAC (swidernet.md Sec. 3 without SE)",
             weights={"imagenet": deeplab2_imagenet(sac_variant_name(l))})
      for l in SAC_VARIANTS),
    *(Preset(variant_name(w1, w2, l), SWideRNet, fixed=dict(w1=w1, w2=w2, l=l),
             source=("swidernet.md Table 5 (fast)" if (w1, w2, l) in FAST_VARIANTS
                     else "swidernet.md Table 4 (strong)"))
      for w1, w2, l in FAST_VARIANTS + STRONG_VARIANTS))

WideResNet41 = preset_constructor(
    "wide_resnet41", "WideResNet41",
    "Wide-ResNet-41 (Chen et al. 2020): SWideRNet-(1, 1, 1) without SE and SAC.")
