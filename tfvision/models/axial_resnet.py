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
9. Stacked decoder (MaX-DeepLab, Wang et al. CVPR 2021; MaX-DeepLab-L's backbone):
   `backbone_decoder_num_stacks` hourglass passes after the last stage, as deeplab2's
   `AxialResNet` builds them in classification mode (`__init__`'s `_decoder_stage{N}`
   loop, `call_stacked_decoder`, `layers/resized_fuse.ResizedFuse`): from output_stride
   down to `high_resolution_output_stride` and back, each stage fusing the running
   feature with the last two at its stride (non-activated sums; projections ReLU, 1x1
   conv, BN, strided when 2x finer, else bilinear with aligned corners), then blocks
   shaped as a ResNet stage at that stride (at output_stride, the stride-32 stage).
   deeplab2 keeps res2..res5 the encoder's and returns the decoder's activated output
   as `backbone_output`: endpoints "2".."5" stay the encoder's, "backbone_output" is
   added, and the classifier reads it. Its stages depend on output_stride (4 at 16,
   6 at 32), so checkpoints fit the stride they were trained at.

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
from tfvision.layers.resize import ResizeToMatch
from tfvision.models.base import VisionModel
from tfvision.models.heads import ClassificationHead
from tfvision.models.registry import Preset, preset_constructor, register_presets
from tfvision.models.releases import deeplab2_imagenet
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
DECODER_HIGH_RESOLUTION_STRIDES = (2, 4, 8)
# The endpoint holding the stacked decoder's activated output (deeplab2's name).
DECODER_ENDPOINT = "backbone_output"


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
  backbone_decoder_num_stacks: int = arg(
      0, "MaX-DeepLab's stacked decoder inside the backbone: hourglass passes from "
      "output_stride down to high_resolution_output_stride and back (0: none; MaX-L 1)",
      minimum=0)
  backbone_decoder_blocks_per_stage: int = arg(
      1, "residual blocks in each stage of the stacked decoder", positive=True)
  high_resolution_output_stride: int = arg(
      4, "the finest stride the stacked decoder descends to (below output_stride)",
      choices=DECODER_HIGH_RESOLUTION_STRIDES)

  def check(self):
    super().check()
    check_span(self.span, self.max_span)
    output_stride = getattr(self, "output_stride", 32)
    if self.backbone_decoder_num_stacks and (
        self.high_resolution_output_stride >= output_stride):
      raise ValueError(
          f"the stacked decoder descends from output_stride={output_stride!r} to a finer "
          f"stride, received high_resolution_output_stride="
          f"{self.high_resolution_output_stride!r}")


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


def _producer(tensor):
  """The layer whose output `tensor` is (a symbolic tensor of a functional graph)."""
  return tensor._keras_history.layer  # pylint: disable=protected-access


def _layer_input(tensor):
  """The input of the one-input layer that produced `tensor`."""
  return _producer(tensor).input


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


def stacked_decoder_plan(arch, width):
  """The stages of MaX-DeepLab's stacked decoder inside the backbone (deeplab2).

  deeplab2 `AxialResNet.__init__` (its `_decoder_stage{N}` loop) in classification mode,
  i.e. up to the end of the backbone's last stack: from output_stride the stride halves
  down to high_resolution_output_stride, then doubles back up to output_stride, which
  closes a stack; the next stack descends again.

  Args:
    arch: an axial spec (output_stride and the backbone_decoder_* arguments).
    width: the body's width multiplier (deeplab2's width_multiplier: Axial-ResNet's
      width_multiplier, Axial-SWideRNet's w2).

  Returns:
    One dict per decoder stage, in order: stride (where it works), original_stride (the
    ResNet stride its blocks are shaped for, deeplab2's original_resnet_input_stride:
    its stride, or 32 at output_stride), channels (the width the inputs are fused to,
    deeplab2 `ResizedFuse` num_channels: round(original_stride * 64 * width)) and
    base_filters (its blocks' base width, deeplab2's `decoder_channels // 4`: the floor
    of original_stride * 64 * width / 4).
  """
  stages = []
  stride, descending, stack = arch.output_stride, True, 0
  while stack < arch.backbone_decoder_num_stacks:
    stride = stride // 2 if descending else stride * 2
    if stride == arch.output_stride:
      stack += 1
      descending = True
    original = 32 if stride == arch.output_stride else stride
    stages.append(dict(stride=stride, original_stride=original,
                       channels=int(round(original * 64 * width)),
                       base_filters=int(original * 64 * width // 4)))
    if stride == arch.high_resolution_output_stride:
      descending = False
  return stages


def _decoder_block_settings(stage, arch):
  """Stride-dependent settings of a stacked-decoder block (deeplab2 `BlockGroup` with
  original_resnet_stride=1: no striding, atrous rate original_stride / output_stride
  past output_stride, drop path by original_stride)."""
  original = stage["original_stride"]
  rate = original // arch.output_stride if original > arch.output_stride else 1
  return dict(strides=1, dilation_rate=rate, second_dilation_rate=rate,
              input_stride=original,
              drop_path_rate=drop_path_rate_for_stride(
                  arch.drop_path_rate, arch.drop_path_schedule, original,
                  arch.drop_path_beyond_stride))


def _resized_fuse(features, stride, channels, reference, activation, name, layer_settings):
  """Fuses features of several strides and widths into one at `stride`, `channels` wide.

  deeplab2 `ResizedFuse` (model/layers/resized_fuse.py): a feature already `channels`
  wide is resized (bilinear, corners aligned) and added as it is; any other is
  activated and projected by a 1x1 conv + BN, strided by 2 when it is twice as fine as
  the target (deeplab2 tests (h + 1) // 2 == the target height, which between these
  power-of-2 strides holds exactly then), otherwise resized after the projection.

  Args:
    features: (non-activated tensor, its stride) pairs; deeplab2 numbers them from 1.
    stride: the target stride.
    channels: the target width.
    reference: a tensor at the target stride (its spatial size is the target's).
    activation: the activation before each projection.
    name: the decoder stage's name; its layers are `<name>_strided_conv<i>`,
      `<name>_resized_conv<i>` (deeplab2 `_strided_conv_bn<i>`, `_resized_conv_bn<i>`).
    layer_settings: normalisation and weight decay of the projections.
  Returns:
    The non-activated sum.
  """
  outputs = []
  for index, (x, feature_stride) in enumerate(features, 1):
    if x.shape[-1] != channels:
      x = tf_keras.layers.Activation(activation, name=f"{name}_act{index}")(x)
      if feature_stride * 2 == stride:
        x = ConvNormAct(channels, 1, strides=2, activation=None,
                        name=f"{name}_strided_conv{index}", **layer_settings)(x)
        feature_stride = stride
      else:
        x = ConvNormAct(channels, 1, activation=None, name=f"{name}_resized_conv{index}",
                        **layer_settings)(x)
    if feature_stride != stride:
      x = ResizeToMatch(name=f"{name}_resize{index}")([x, reference])
    outputs.append(x)
  return tf_keras.layers.Add(name=f"{name}_fuse")(outputs)


def build_stacked_decoder(x, features, arch, width, activation, make_block, layer_settings):
  """MaX-DeepLab's stacked decoder inside the backbone; returns its activated output.

  deeplab2 `AxialResNet.call_stacked_decoder` in classification mode: each stage fuses
  the running feature with the last two features already at its stride (an encoder
  stage's output and the decoder's earlier visit there; at output_stride the last
  stage's output), then applies its blocks. deeplab2 keeps the encoder's res2..res5 as
  they are and returns this output as `backbone_output`, the classifier's input.

  Args:
    x: the non-activated output of the last stage (at output_stride).
    features: {original stride (2, 4, 8, 16): the non-activated output of the encoder
      stage there}; deeplab2's `stride_to_features`, keyed min(stride, output_stride),
      a later stage replacing an earlier one at the same key.
    arch: an axial spec.
    width: the body's width multiplier (see `stacked_decoder_plan`).
    activation: the activation (of the fused projections and of the output).
    make_block: (stage dict, name) -> a residual block layer.
    layer_settings: normalisation and weight decay.
  """
  output_stride = arch.output_stride
  by_stride = {}
  for feature_stride in sorted(features):
    by_stride[min(feature_stride, output_stride)] = [features[feature_stride]]
  by_stride[output_stride] = [x]
  current, current_stride = x, output_stride
  for number, stage in enumerate(stacked_decoder_plan(arch, width), 1):
    stride, name = stage["stride"], f"decoder_stage{number}"
    inputs = [(current, current_stride)] + [(f, stride) for f in by_stride[stride][-2:]]
    current = _resized_fuse(inputs, stride, stage["channels"], by_stride[stride][0],
                            activation, name, layer_settings)
    for block in range(arch.backbone_decoder_blocks_per_stage):
      current = make_block(stage, f"{name}_block{block + 1}")(current)
    by_stride[stride].append(current)
    current_stride = stride
  return tf_keras.layers.Activation(activation, name=DECODER_ENDPOINT)(current)


class StackedDecoderHeadMixin:
  """With a stacked decoder, the classifier reads its output (deeplab2's
  `backbone_output`, what `AxialResNet.call_stacked_decoder` returns for classification),
  not endpoint "5" (res5, the encoder's last stage, kept as deeplab2 keeps it)."""

  def build_network(self, arch, common):
    if not (common.include_top and arch.backbone_decoder_num_stacks):
      return super().build_network(arch, common)
    inputs, endpoints = self.build_backbone(arch, common)
    dropout = common.dropout_rate
    if dropout is None:
      dropout = self.default_dropout_rate(arch)
    logits = ClassificationHead(
        common.num_classes, pooling=common.pooling, dropout_rate=dropout,
        classifier_activation=common.classifier_activation,
        name="head")(endpoints[DECODER_ENDPOINT])
    return inputs, logits


@tf_keras.utils.register_keras_serializable(package="tfvision")
class AxialResNet(StackedDecoderHeadMixin, VisionModel):
  """Axial-ResNet (ResNet-50 layout) for classification or as a dense-prediction backbone.

  Endpoints "2".."5" are the activated outputs of conv2_x..conv5_x (deeplab2's res2..res5);
  with a stacked decoder (`backbone_decoder_num_stacks` > 0), also "backbone_output",
  which the classifier then reads; its blocks are deeplab2's 'resnet' ones for their
  original stride (`_decoder_block`).
  """
  ARCH = AxialResNetSpec
  COMMON_DEFAULTS = dict(norm=dict(momentum=0.99, epsilon=1e-3))
  TINY = dict(width_multiplier=0.125, stem_width_multiplier=0.125, num_classes=7)
  MEAN_RGB = DEEPLAB_MEAN_RGB
  STD_RGB = DEEPLAB_STD_RGB

  @classmethod
  def check_arguments(cls, arch, common):
    decoder = [cls._decoder_block(stage, arch)
               for stage in stacked_decoder_plan(arch, arch.width_multiplier)]
    _check_heads_divide(axial_resnet_plan(arch) + [decoder], arch)

  def build_backbone(self, arch, common):
    plan = axial_resnet_plan(arch)
    layer_settings = dict(common.norm.layer_kwargs(), weight_decay=common.weight_decay)
    inputs, x = self.image_input(common)
    x = self._stem(x, arch, layer_settings)
    # deeplab2's 'stage1' for the stacked decoder: the stem's output (before the pool).
    stage_outputs = {2: x} if arch.stem != "axial" else {}
    if arch.max_pool:
      # 3x3 stride-2 max-pool with symmetric padding (PyTorch / TF1 DeepLab windows).
      # The input is not activated yet, and the next block starts with ReLU, so zero
      # padding gives exactly relu(max-pool(x)) with padding that never wins.
      x = tf_keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
      x = tf_keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    act = get_activation(common.activation)
    endpoints = {}
    first_stage = 1 if arch.stem == "axial" else 2
    for offset, stage in enumerate(plan):
      stage_number = first_stage + offset
      for block_index, block in enumerate(stage):
        name = f"stage{stage_number}_block{block_index + 1}"
        x = self._block(block, arch, common, layer_settings, name)(x)
      # The undilated stride of the stage's output.
      stage_outputs[2 ** stage_number] = x
      if stage_number >= 2:
        # As SWideRNet: the activated stage output is the endpoint and the next stage's
        # input (the same graph with and without the head).
        x = tf_keras.layers.Activation(act, name=f"res{stage_number}")(x)
        endpoints[str(stage_number)] = x
    if arch.backbone_decoder_num_stacks:
      endpoints[DECODER_ENDPOINT] = build_stacked_decoder(
          stage_outputs.pop(32), stage_outputs, arch, arch.width_multiplier, act,
          lambda stage, name: self._block(self._decoder_block(stage, arch), arch, common,
                                          layer_settings, name),
          layer_settings)
    return inputs, endpoints

  @staticmethod
  def _block(block, arch, common, layer_settings, name):
    """A residual block from its plan entry: axial, or a ResNet bottleneck."""
    if block["kind"] == "axial":
      return _axial_block(block, arch, common, layer_settings, name)
    return WideResidualBlock(
        block["filters"], kind="bottleneck", strides=block["strides"],
        dilation_rate=block["dilation_rate"], drop_path_rate=block["drop_path_rate"],
        activation=common.activation, recompute_grad=arch.recomputes(), name=name,
        **layer_settings)

  @staticmethod
  def _decoder_block(stage, arch):
    """The plan entry of a stacked-decoder block: deeplab2 `BlockGroup` for 'resnet' /
    'resnet_beta', axial where original_stride >= use_axial_beyond_stride > 0, else a
    bottleneck [f, f, 4 f]."""
    base = stage["base_filters"]
    axial = stage["original_stride"] >= arch.use_axial_beyond_stride > 0
    expansion = arch.attention_bottleneck_expansion if axial else 1
    return dict(_decoder_block_settings(stage, arch), kind="axial" if axial else "bottleneck",
                filters=[base * expansion, base, 4 * base], base_filters=base)

  @staticmethod
  def _stem(x, arch, layer_settings):
    """The conv stem, ending with BN and no activation (the first block applies it); the
    max-pool, when there is one, follows in `build_backbone`."""
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
class AxialSWideRNet(StackedDecoderHeadMixin, SWideRNet):
  """Axial-SWideRNet-(w1, w2, l): SWideRNet with axial blocks past stride 16 (deeplab2).

  Blocks whose undilated input stride is >= use_axial_beyond_stride (16: the last two
  blocks of conv5 and all of conv6) become axial bottlenecks with filters
  [4 f, f, 4 f], key depth 2 f and value depth 4 f, where f = round(stride * 32 * w2)
  (deeplab2 `AxialSWideRNet`); the other blocks are SWideRNet's. Defaults follow
  deeplab2's Cityscapes configs: no SE, no SAC, drop path 0.2 on a linear schedule.

  With `backbone_decoder_num_stacks` > 0 (MaX-DeepLab-L's backbone) the stacked decoder
  (`build_stacked_decoder`) follows conv6; endpoints "2".."5" stay the encoder's
  (deeplab2's res2..res5) and its activated output is the endpoint "backbone_output",
  which the classifier reads. Its blocks are deeplab2's 'wider_resnet' ones for their
  original stride (`_decoder_block`).
  """
  ARCH = AxialSWideRNetSpec
  DEFAULT_NAME = "axial_swidernet"

  @classmethod
  def check_arguments(cls, arch, common):
    if arch.use_axial_beyond_stride == 1:
      raise ValueError("SWideRNet has a conv stem, so no block works at stride 1; "
                       "received use_axial_beyond_stride=1")
    decoder = [cls._decoder_block(stage, arch) for stage in stacked_decoder_plan(arch, arch.w2)]
    _check_heads_divide(cls.plan(arch) + [decoder], arch)

  def build_backbone(self, arch, common):
    inputs, endpoints = super().build_backbone(arch, common)
    if not arch.backbone_decoder_num_stacks:
      return inputs, endpoints
    # deeplab2 fuses the stages' outputs before their activation: SWideRNet's graph
    # activates each one in its `res<N>` layer, whose input is that output. Endpoint
    # "<N>" is the stage at undilated stride 2 ** N.
    stage_outputs = {2 ** int(key): _layer_input(value) for key, value in endpoints.items()}
    # Stride 2 (conv2, deeplab2's 'stage1', no endpoint): conv3's first block's input.
    x = stage_outputs[4]
    while _producer(x).name != "stage2_block1":
      x = _layer_input(x)
    stage_outputs[2] = _layer_input(x)
    layer_settings = dict(common.norm.layer_kwargs(), weight_decay=common.weight_decay)
    endpoints[DECODER_ENDPOINT] = build_stacked_decoder(
        stage_outputs.pop(32), stage_outputs, arch, arch.w2, get_activation(common.activation),
        lambda stage, name: self.make_block(self._decoder_block(stage, arch), arch, common,
                                            layer_settings, name),
        layer_settings)
    return inputs, endpoints

  @staticmethod
  def _decoder_block(stage, arch):
    """The plan entry of a stacked-decoder block: deeplab2 `BlockGroup` for
    'wider_resnet' at original_resnet_stride=1: axial [e f, f, 4 f] where original_stride
    >= use_axial_beyond_stride > 0, else a basic block [4 f, 4 f] below original stride
    32 and a bottleneck [f, 2 f, 4 f] at 32; SAC and SE placed by original_stride as in
    the encoder (`wide_resnet_plan`)."""
    base, original = stage["base_filters"], stage["original_stride"]
    if original >= arch.use_axial_beyond_stride > 0:
      kind, filters = "axial", [base * arch.attention_bottleneck_expansion, base, 4 * base]
    elif original < 32:
      kind, filters = "basic", [4 * base, 4 * base]
    else:
      kind, filters = "bottleneck", [base, 2 * base, 4 * base]
    return dict(_decoder_block_settings(stage, arch), kind=kind, filters=filters,
                base_filters=base,
                switchable_atrous=original >= arch.sac_beyond_stride > 0,
                use_se=bool(arch.use_se) and original >= arch.se_beyond_stride)

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
             source="deeplab2 configs/cityscapes/axial_deeplab (Axial-SWideRNet)",
             weights={"imagenet": deeplab2_imagenet(axial_swidernet_name(w1, w2, l))})
      for w1, w2, l in AXIAL_SWIDERNET_VARIANTS),
    # deeplab2's MaX-DeepLab-S backbone (`MaXDeepLabSBackbone`: its default config with
    # classification_mode): ResNet-50-beta (Inception stem, no max-pool) with axial
    # bottlenecks [2 f, f, 4 f] in the blocks whose input stride is 16 or more, key f,
    # value 2 f, 8 heads. deeplab2 counts it at 41,343,424 parameters.
    Preset("max_deeplab_s_backbone", AxialResNet,
           fixed=dict(width_multiplier=1.0, stem="inception", stem_max_pool=False,
                      use_axial_beyond_stride=16, attention_bottleneck_expansion=2),
           defaults=dict(drop_path_rate=0.2, drop_path_schedule="linear"),
           source="deeplab2 axial_resnet_instances.MaXDeepLabSBackbone (MaX-S w/ ReLU)",
           weights={"imagenet": deeplab2_imagenet("max_deeplab_s_backbone")}),
    # deeplab2's MaX-DeepLab-L backbone (`MaXDeepLabLBackbone`: `MaXDeepLabL` in
    # classification mode, without the backbone's dual-path transformers): the
    # wide-ResNet body [3, 6, 3, 3] of Axial-SWideRNet-(1, 1, 1) (axial bottlenecks
    # [4 f, f, 4 f], key 2 f, value 4 f beyond stride 16, drop path from stride 4) and one
    # stack of MaX-DeepLab's stacked decoder (one block per stage, down to stride 4 and
    # back). Its stages depend on output_stride, so the default is deeplab2's 16, the
    # stride its ImageNet checkpoint initialises the Cityscapes model at (strictly);
    # deeplab2 counts it at 175,115,392 parameters there. deeplab2 recomputes its axial
    # blocks only (`conv_use_recompute_grad` unset). The test size is the fixture's
    # (tests/data/weights/max_deeplab_l_backbone): widths 1/32, blocks [3, 1, 2, 1, 1].
    Preset("max_deeplab_l_backbone", AxialSWideRNet,
           fixed=dict(w1=1.0, w2=1.0, l=1.0, backbone_decoder_num_stacks=1,
                      backbone_decoder_blocks_per_stage=1, high_resolution_output_stride=4),
           defaults=dict(output_stride=16, recompute_grad="axial"),
           tiny=dict(w1=1 / 32, w2=1 / 32, l=1 / 3),
           source="deeplab2 axial_resnet_instances.MaXDeepLabLBackbone (MaX-L w/ ReLU; "
                  "axial_resnet.AxialResNet stacked decoder)",
           weights={"imagenet": deeplab2_imagenet("max_deeplab_l_backbone")}))

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
