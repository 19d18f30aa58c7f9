"""Pale Transformer Tiny / Small / Base (Wu et al., AAAI 2022; pale-transformer.md).

Architecture (Table 1): overlapping-conv patch merging (7x7 stride 4, then 3x3 stride 2)
before each of four stages of [2, 2, 16, 2] Pale Transformer blocks (Eq. 6-8) with
C = 64 / 96 / 128 doubling per stage, heads [2, 4, 8, 16] (T, S) or [4, 8, 16, 32] (B),
pale size 7 and MLP ratio 4 everywhere; a final LayerNorm, average pooling and one linear
classifier ("following Swin and CSWin").

The authors never released code (PaddleViT issue #168), so the paper is the whole spec;
where it is silent the works it follows decided, and each choice is named here:
1. Parallel attention (Eq. 1-3): q, k, v from three separable convs over all C channels
   (Eq. 13), the first half of the channels attends within row groups and the second
   within column groups, each with half the heads (CSWin's `num_heads // 2`), then a
   linear projection (Eq. 15). See tfvision/layers/pale_attention.py.
2. Separable conv = depthwise 3x3 (no bias) + BatchNorm + pointwise with bias, stride 1
   for q, k and v (CvT's "dw_bn" projection, `QKV_BIAS: True`; Eq. 13-14 count
   full-resolution keys, so no CvT-style stride-2 key/value squeeze).
3. Block (Eq. 6-8): CPE = x + depthwise 3x3 (with bias), pre-norm LayerNorms, MLP
   Linear-GELU(erf)-Linear, no LayerScale, drop path on the attention and MLP branches.
4. Patch merging = Conv2d (with bias) + LayerNorm with CSWin's explicit paddings (2 for
   the 7x7 stride-4 conv, 1 for the 3x3 stride-2 convs).
5. LayerNorm epsilon 1e-5 (PyTorch's default; tf_keras's is 1e-3); BatchNorm of the
   projections momentum 0.9 (PyTorch 0.1), epsilon 1e-5.
6. Stochastic depth: linear ramp from 0 over all 22 blocks to 0.1 / 0.3 / 0.5 for
   T / S / B (appendix; Swin's and CSWin's `torch.linspace(0, rate, sum(depths))`).
7. Endpoints are the same with and without the classifier (every tfvision family):
   "2".."4" are the outputs of stages 1-3 and "5" the final LayerNorm's output (the
   classifier's input). CSWin's segmentation backbone, which the paper's ADE20K / COCO
   settings follow, adds a LayerNorm on each of the four outputs (`norm1`..`norm4`),
   created for the dense model only; tfvision's dense heads start with conv + BN on
   each feature, and an ImageNet checkpoint initialises the whole backbone.
8. Inputs in [0, 255] are normalised with the ImageNet mean / std (timm's defaults,
   which CSWin's and CvT's pipelines use).
9. Linear layers trunc_normal(0.02) with zero bias (CSWin `_init_weights`); convs keep
   PyTorch's default initialisation.

Counts (trainable parameters with the 1000-class head; MACs at 224 by
tfvision.utils.flops; BENCHMARKS.md, tests/test_pale.py): 21.75M / 48.31M / 85.32M and
4.20G / 8.98G / 15.53G against Table 2's 22M / 48M / 85M and 4.2G / 9.0G / 15.6G (within
1.2% and 0.5%), and one layer costs exactly Eq. 16 (tests/test_pale_attention.py). That
is what supports readings 1-4: q/k/v projections per branch (C/2 -> C/2) would give
Pale-T 19.3M parameters, no output projection 20.1M, a linear q/k/v would miss Eq. 13's
27hwc and the stride-2 keys of CvT would cut Eq. 14's attention cost by 4.
"""
import dataclasses
import typing
from typing import List, Union

import tf_keras

from tfvision.blocks.pale import (LAYER_NORM_EPSILON, OverlappingPatchMerging,
                                  PaleTransformerBlock)
from tfvision.layers.pale_attention import MODES, check_heads, check_pale_size
from tfvision.layers.regularization import linear_drop_path_rates
from tfvision.models.base import VisionModel
from tfvision.models.registry import Preset, preset_constructor, register_presets
from tfvision.models.spec import RecomputeSpec, arg

NUM_STAGES = 4
# Sec. "Overall Architecture": 7x7 stride 4 before stage 1, 3x3 stride 2 before the
# others; paddings from CSWin / CvT.
_MERGING = ((7, 4, 2), (3, 2, 1), (3, 2, 1), (3, 2, 1))


@dataclasses.dataclass
class PaleTransformerSpec(RecomputeSpec):
  """The architecture of a Pale Transformer (pale-transformer.md Table 1)."""
  FAMILY: typing.ClassVar[str] = "pale"
  embed_dim: int = arg(64, "C_1; stage i has C_1 * 2^(i-1) channels (Table 1)",
                       positive=True)
  depths: List[int] = arg([2, 2, 16, 2], "blocks per stage (Table 1)", positive=True)
  num_heads: List[int] = arg([2, 4, 8, 16], "heads per stage (Table 1's H_i)",
                             positive=True)
  pale_size: Union[int, List[int]] = arg(7, "pale size S_i: one int or one per stage "
                                         "(Table 1: 7; Table 7 varies it)", positive=True)
  mlp_ratio: float = arg(4.0, "MLP expansion (Table 1's R_i)", positive=True)
  mode: str = arg("parallel", "attention: 'parallel' (the paper's), 'sequential', "
                  "'vanilla', 'axial' or 'cross_shaped' (Table 8)", choices=MODES)
  output_stride: int = arg(32, "stride of endpoint '5' (no atrous variant exists)",
                           choices=(32,))
  drop_path_rate: float = arg(0.1, "the last block's stochastic depth (linear ramp from "
                              "0; T / S / B: 0.1 / 0.3 / 0.5)", probability=True)
  layer_norm_epsilon: float = arg(LAYER_NORM_EPSILON, "LayerNorm epsilon (PyTorch's "
                                  "1e-5)", positive=True)

  def check(self):
    super().check()
    for name in ("depths", "num_heads"):
      if len(getattr(self, name)) != NUM_STAGES:
        raise ValueError(f"{name} must be {NUM_STAGES} positive integers (one per stage), "
                         f"received {name}={getattr(self, name)!r}")
    if isinstance(self.pale_size, list) and len(self.pale_size) != NUM_STAGES:
      raise ValueError(f"pale_size must be an integer or {NUM_STAGES} integers (one per "
                       f"stage), received pale_size={self.pale_size!r}")
    for index, size in enumerate(self.stage_pale_sizes()):
      check_pale_size(size)
      check_heads(self.embed_dim * 2 ** index, self.num_heads[index], self.mode)

  def stage_pale_sizes(self):
    if isinstance(self.pale_size, list):
      return list(self.pale_size)
    return [self.pale_size] * NUM_STAGES


@tf_keras.utils.register_keras_serializable(package="tfvision")
class PaleTransformer(VisionModel):
  """Pale Transformer for classification or as a dense-prediction backbone.

  Any input size works (pales are padded as needed). `activation` is the MLP's (GELU);
  `norm` is the BatchNorm of the q/k/v projections (PyTorch's defaults).
  """
  ARCH = PaleTransformerSpec
  COMMON_DEFAULTS = dict(norm=dict(momentum=0.9, epsilon=1e-5), activation="gelu")
  DEFAULT_NAME = "pale_transformer"
  # The same layout (four stages, parallel pale attention, patch merging, CPE, MLP) with
  # 16 channels at stage 1, 2 heads per stage and pale size 3, so that every stage of a
  # 64x64 input (16, 8, 4, 2 tokens per side) needs padding. Two blocks per stage
  # instead of [2, 2, 16, 2]: stage 3's sixteen blocks are copies of one layout, and with
  # all 22 the harness's graph-heavy checks (XLA, SavedModel, TFLite, the distributed
  # step) took over 20 minutes of the 2-core CI machine (5.5 with 8 blocks).
  TINY = dict(embed_dim=16, depths=[2, 2, 2, 2], num_heads=[2, 2, 2, 2], pale_size=3,
              num_classes=7)

  def build_backbone(self, arch, common):
    rates = linear_drop_path_rates(arch.drop_path_rate, sum(arch.depths))
    inputs, x = self.image_input(common, min_size=3)
    endpoints = {}
    start = 0
    for index, pale_size in enumerate(arch.stage_pale_sizes()):
      channels = arch.embed_dim * 2 ** index
      kernel, stride, padding = _MERGING[index]
      x = OverlappingPatchMerging(
          channels, kernel, stride, padding, arch.layer_norm_epsilon,
          name="patch_embed" if index == 0 else f"merge{index}")(x)
      for block_index in range(arch.depths[index]):
        x = PaleTransformerBlock(
            channels, arch.num_heads[index], pale_size=pale_size, mode=arch.mode,
            sequential_direction="row" if block_index % 2 == 0 else "column",
            mlp_ratio=arch.mlp_ratio, drop_path_rate=rates[start + block_index],
            layer_norm_epsilon=arch.layer_norm_epsilon, activation=common.activation,
            recompute_grad=arch.recomputes(), **common.norm.layer_kwargs(),
            name=f"stage{index + 1}_block{block_index + 1}")(x)
      start += arch.depths[index]
      if index == NUM_STAGES - 1:
        x = tf_keras.layers.LayerNormalization(epsilon=arch.layer_norm_epsilon,
                                               name="norm")(x)
      endpoints[str(index + 2)] = x
    return inputs, endpoints


PRESETS = register_presets(
    Preset("pale_tiny", PaleTransformer, fixed=dict(embed_dim=64, num_heads=[2, 4, 8, 16]),
           defaults=dict(drop_path_rate=0.1), source="pale-transformer.md Table 1 (Pale-T)"),
    Preset("pale_small", PaleTransformer, fixed=dict(embed_dim=96, num_heads=[2, 4, 8, 16]),
           defaults=dict(drop_path_rate=0.3), source="pale-transformer.md Table 1 (Pale-S)"),
    Preset("pale_base", PaleTransformer,
           fixed=dict(embed_dim=128, num_heads=[4, 8, 16, 32]),
           defaults=dict(drop_path_rate=0.5), source="pale-transformer.md Table 1 (Pale-B)"))

PaleTransformerTiny = preset_constructor(
    "pale_tiny", "PaleTransformerTiny", "Pale-T (Table 1): C = 64, heads [2, 4, 8, 16], "
    "drop path 0.1.")
PaleTransformerSmall = preset_constructor(
    "pale_small", "PaleTransformerSmall", "Pale-S (Table 1): C = 96, heads [2, 4, 8, 16], "
    "drop path 0.3.")
PaleTransformerBase = preset_constructor(
    "pale_base", "PaleTransformerBase", "Pale-B (Table 1): C = 128, heads [4, 8, 16, 32], "
    "drop path 0.5.")
