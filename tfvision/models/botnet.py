"""BoTNet (Srinivas et al., CVPR 2021; botnet.md) and the ResNets it is compared with.

BoTNet-50/101/152/200 are ResNet-50/101/152/200 (7x7 stride-2 stem, 3x3 stride-2
max-pool, bottleneck stages c2-c5) whose three c5 blocks replace the 3x3 convolution by
global multi-head self-attention with split relative position logits (Table 1, Fig. 4):
the *only* difference from the ResNet. The first c5 block attends over the stride-16
map and then average-pools 2x2 with stride 2 (Sec. 3). BoTNet-S1 (Sec. 4.7.1) runs c5
at stride 1: all three blocks attend over the stride-16 map; here that is
`output_stride=16` (endpoint "5" then has stride 16).

The scaled family of Sec. 4.7.4 ("T3".."T7"): the paper's copy we work from leaves
"model depth and image resolutions" to an appendix it does not include. We take them
from the authors' own multiply-add script (gist
`aravindsrinivas/e8a9e33425e10ed0c69c1bf726b81495`, configs `bot3`..`bot7a`), which
reproduces the paper's Fig. 5 numbers (T3 = BoTNet-S1-59: 33.5M parameters, 7.3G
M.Adds): all are S1 networks with squeeze-excitation ratio 0.0625,

    T3: S1-59  at 224   blocks (3, 4, 6, 6)      T6: S1-77  at 320   (3, 4, 6, 12)
    T4: S1-110 at 224   blocks (3, 4, 23, 6)     T7: S1-128 at 384   (3, 4, 23, 12)
    T5: S1-128 at 256   blocks (3, 4, 23, 12)    (Fig. 5's T7-320 is T7 run at 320)

Where the paper is silent we follow the authors' code (the BoT gist
`aravindsrinivas/56359b79f0ce4449bcb04ab4b56a57a2` and that script), except:

1. SE placement: the script counts SE in every block, BoT blocks included, and the
   published parameter counts follow it; a third-party port (NZ99's
   bottleneck-transformer-flax) reads the paper's later version as putting SE in the
   ResNet blocks only. We could not read that text; the default follows the script,
   `se_in_attention_blocks=False` gives the other reading.
2. The gist applies the activation to the projection shortcut; ResNets do not and the
   paper calls MHSA the only change, so we do not (blocks/bottleneck_transformer.py).
3. Padding: strided convolutions pad symmetrically (the TPU ResNet's
   `fixed_padding`, torchvision); the max-pool pads one zero on each side, which equals
   PyTorch's -inf padding after ReLU (SiLU's minimum is -0.28, a small difference).
4. Relative position tables: the gist sizes them from the map it sees. With a static
   `input_shape` we do the same (BoTNet-50 at 224: 20,852,008 parameters, tables of
   27, 13, 13 rows per axis); with `input_shape=None` they are sized for
   `max_input_size` (default 1024, the paper's detection size) and smaller maps use
   their central rows.
5. Drop path (not used by the paper's BoTNet-50) rises linearly over the blocks.

Inputs are pixels in [0, 255], normalised inside with the ImageNet mean and standard
deviation (the TPU ResNet / detection input pipelines of the paper's codebase).
"""
import dataclasses
import math
import typing
from typing import Optional

import tf_keras

from tfvision.blocks.bottleneck_transformer import (BottleneckTransformerBlock,
                                                    ResNetBottleneckBlock)
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.regularization import linear_drop_path_rates
from tfvision.layers.relative_attention import POSITION_ENCODINGS
from tfvision.models.base import VisionModel
from tfvision.models.registry import Preset, preset_constructor, register_presets
from tfvision.models.spec import RecomputeSpec, arg

# Bottleneck blocks per stage (c2, c3, c4, c5); depth = 3 * sum + 2.
# 50/101/152: He et al. 2016; 200: He et al. 2016b (Model Garden's model_id 200);
# 59/77/110/128: the BoTNet authors' multiply-add script (T3..T7).
BLOCK_LAYOUTS = {
    50: (3, 4, 6, 3),
    59: (3, 4, 6, 6),
    77: (3, 4, 6, 12),
    101: (3, 4, 23, 3),
    110: (3, 4, 23, 6),
    128: (3, 4, 23, 12),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
OUTPUT_STRIDES = (16, 32)
SE_RATIO_SCALED = 0.0625  # the authors' script, `se_ratio = 0.0625 if use_se`


def stage_plan(depth, output_stride=32, drop_path_rate=0.0):
  """Per-block settings of a ResNet/BoTNet of `depth`.

  Returns:
    Four stages (c2..c5), each a list of dicts with keys filters_multiplier (1, 2, 4,
    8: bottleneck width / base width), strides, input_stride (stride of the block's
    input w.r.t. the image) and drop_path_rate.
  """
  layout = BLOCK_LAYOUTS[depth]
  stage_strides = (1, 2, 2, 2) if output_stride == 32 else (1, 2, 2, 1)
  rates = linear_drop_path_rates(drop_path_rate, sum(layout))
  plan, current, index = [], 4, 0
  for stage, (blocks, stride) in enumerate(zip(layout, stage_strides)):
    specs = []
    for block in range(blocks):
      strides = stride if block == 0 else 1
      specs.append(dict(filters_multiplier=2 ** stage, strides=strides,
                        input_stride=current, drop_path_rate=rates[index]))
      current *= strides
      index += 1
    plan.append(specs)
  return plan


@dataclasses.dataclass
class ResNetSpec(RecomputeSpec):
  """The architecture of a ResNet (v1.5), BoTNet's baseline."""
  FAMILY: typing.ClassVar[str] = "botnet"
  depth: int = arg(50, "one of BLOCK_LAYOUTS (50, 101, 152, 200; 59, 77, 110, 128)",
                   choices=tuple(BLOCK_LAYOUTS))
  se_ratio: float = arg(0.0, "squeeze-excitation ratio in every block (SE-ResNet); 0 "
                        "disables", minimum=0.0)
  base_width: int = arg(64, "stem width and c2 bottleneck width (64; the tiny test "
                        "models narrow it)", positive=True)
  output_stride: int = arg(32, "stride of endpoint '5' (ResNet has no atrous stages)",
                           choices=(32,))
  drop_path_rate: float = arg(0.0, "stochastic depth, rising linearly to this over the "
                              "blocks", probability=True)


@dataclasses.dataclass
class BoTNetSpec(ResNetSpec):
  """The architecture of BoTNet: a ResNet whose c5 blocks are Bottleneck Transformers."""
  output_stride: int = arg(32, "32 (BoTNet: the first c5 block pools 2x2 after "
                           "attention) or 16 (BoTNet-S1, Sec. 4.7.1: c5 at stride 1)",
                           choices=OUTPUT_STRIDES)
  num_heads: int = arg(4, "heads of each MHSA layer (Fig. 4: 4); must divide 8 * "
                       "base_width", positive=True)
  position_encoding: Optional[str] = arg(
      "relative", "'relative' (the paper), 'absolute' or None (content only); Table 4",
      choices=POSITION_ENCODINGS, nullable=True)
  content_logits: bool = arg(True, "False keeps only the q r^T term (Table 4's "
                             "position-only row)")
  max_input_size: int = arg(1024, "with input_shape=None, the largest input side the "
                            "position tables cover", positive=True)
  se_in_attention_blocks: bool = arg(True, "also apply SE in the BoT blocks (the "
                                     "authors' script)")

  def check(self):
    super().check()
    attention_width = 8 * self.base_width
    if attention_width % self.num_heads:
      raise ValueError(f"num_heads must divide the c5 bottleneck width {attention_width} "
                       f"(8 * base_width), received num_heads={self.num_heads!r}")
    if not self.content_logits and self.position_encoding is None:
      raise ValueError("attention needs content or position logits, received "
                       "content_logits=False with position_encoding=None")


class _ResNetFamily(VisionModel):
  """Stem, four bottleneck stages and the shared head; subclasses choose c5's blocks."""
  POSITIONAL = ("depth",)
  # The BoTNet gist: BN decay 0.9, epsilon 1e-5.
  COMMON_DEFAULTS = dict(norm=dict(momentum=0.9, epsilon=1e-5))
  # Same depth and layout, an 8-wide stem (c5 attention width 64, 16 per head).
  TINY = dict(base_width=8, num_classes=7)

  def build_backbone(self, arch, common):
    layer_settings = dict(common.norm.layer_kwargs(), weight_decay=common.weight_decay)
    inputs, x = self.image_input(common)
    x = ConvNormAct(arch.base_width, 7, strides=2, activation=common.activation,
                    name="stem", **layer_settings)(x)
    # Symmetric max-pool padding (PyTorch / TPU ResNet): zeros equal -inf after ReLU.
    x = tf_keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = tf_keras.layers.MaxPool2D(3, strides=2, name="stem_pool")(x)
    endpoints = {}
    plan = stage_plan(arch.depth, arch.output_stride, arch.drop_path_rate)
    for stage_index, stage in enumerate(plan):
      for block_index, block in enumerate(stage):
        x = self.make_block(stage_index, block, arch, common, layer_settings,
                            name=f"c{stage_index + 2}_block{block_index + 1}")(x)
      endpoints[str(stage_index + 2)] = x
    return inputs, endpoints

  def make_block(self, stage_index, block, arch, common, layer_settings, name):
    del stage_index
    return ResNetBottleneckBlock(
        arch.base_width * block["filters_multiplier"], strides=block["strides"],
        se_ratio=arch.se_ratio, drop_path_rate=block["drop_path_rate"],
        activation=common.activation, recompute_grad=arch.recomputes(), name=name,
        **layer_settings)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ResNet(_ResNetFamily):
  """ResNet (v1.5: stride in the 3x3 conv), the baseline of botnet.md Tables 1, 5, 9.

  The same layout as Model Garden's `ResNet(model_id)` and torchvision's resnet (equal
  parameter counts and kernel shapes), built from the blocks BoTNet shares so that the
  two differ only in c5. Endpoints "2".."5" are c2..c5 (strides 4..32). The name
  defaults to f"resnet{depth}".
  """
  ARCH = ResNetSpec

  @classmethod
  def default_name(cls, arch):
    return f"resnet{arch.depth}"


@tf_keras.utils.register_keras_serializable(package="tfvision")
class BoTNet(_ResNetFamily):
  """BoTNet: a ResNet whose c5 blocks are Bottleneck Transformer blocks (botnet.md).

  Endpoints "2".."5" are c2..c5 (strides 4, 8, 16, 32; "5" at 16 with
  output_stride=16). The name defaults to f"botnet{depth}" (S1: f"botnet_s1_{depth}").
  """
  ARCH = BoTNetSpec

  @classmethod
  def default_name(cls, arch):
    return f"botnet{arch.depth}" if arch.output_stride == 32 else f"botnet_s1_{arch.depth}"

  @staticmethod
  def _attention_max_size(arch, common, input_stride):
    """Position-table extent (rows, cols) for a block whose input has `input_stride`."""
    shape = common.input_shape or (None, None, 3)
    return tuple(math.ceil((side or arch.max_input_size) / input_stride)
                 for side in shape[:2])

  def make_block(self, stage_index, block, arch, common, layer_settings, name):
    if stage_index < 3:
      return super().make_block(stage_index, block, arch, common, layer_settings, name)
    se_ratio = arch.se_ratio if arch.se_in_attention_blocks else 0.0
    return BottleneckTransformerBlock(
        arch.base_width * block["filters_multiplier"], strides=block["strides"],
        num_heads=arch.num_heads,
        max_size=self._attention_max_size(arch, common, block["input_stride"]),
        position_encoding=arch.position_encoding, content_logits=arch.content_logits,
        se_ratio=se_ratio, drop_path_rate=block["drop_path_rate"],
        activation=common.activation, recompute_grad=arch.recomputes(), name=name,
        **layer_settings)


def BoTNetS1(depth=50, **kwargs):
  """BoTNet-S1-`depth` (botnet.md Sec. 4.7.1): c5 at stride 1, no SE unless given."""
  return BoTNet(depth, output_stride=16, **kwargs)


# The scaled family (botnet.md Sec. 4.7.4, Fig. 5): (depth, training image side).
SCALED_FAMILY = {
    "t3": (59, 224),
    "t4": (110, 224),
    "t5": (128, 256),
    "t6": (77, 320),
    "t7": (128, 384),
}

PRESETS = register_presets(
    *(Preset(f"resnet{depth}", ResNet, fixed=dict(depth=depth),
             source="botnet.md Tables 1, 5 (ResNet baseline)")
      for depth in (50, 101, 152, 200)),
    *(Preset(f"botnet{depth}", BoTNet, fixed=dict(depth=depth),
             source="botnet.md Table 1, Table 5, Table 8")
      for depth in (50, 101, 152, 200)),
    Preset("botnet_s1_50", BoTNet, fixed=dict(depth=50, output_stride=16),
           source="botnet.md Sec. 4.7.1, Table 9"),
    *(Preset(f"botnet_{variant}", BoTNet,
             fixed=dict(depth=depth, output_stride=16, se_ratio=SE_RATIO_SCALED),
             default_size=size,
             source=f"botnet.md Sec. 4.7.4 / authors' script: S1-{depth} at {size}")
      for variant, (depth, size) in SCALED_FAMILY.items()))

ResNet50 = preset_constructor("resnet50", "ResNet50",
                              "ResNet-50 (botnet.md Table 1 baseline: 25.5M parameters).")
ResNet101 = preset_constructor("resnet101", "ResNet101",
                               "ResNet-101 (botnet.md Table 5 baseline).")
ResNet152 = preset_constructor("resnet152", "ResNet152",
                               "ResNet-152 (botnet.md Table 5 baseline).")
ResNet200 = preset_constructor(
    "resnet200", "ResNet200", "ResNet-200 (blocks 3, 24, 36, 3; the BoT200 baseline of "
    "Table 8).")
BoTNet50 = preset_constructor("botnet50", "BoTNet50",
                              "BoTNet-50 (botnet.md Table 1: 20.8M parameters).")
BoTNet101 = preset_constructor("botnet101", "BoTNet101", "BoTNet-101 (botnet.md Table 5).")
BoTNet152 = preset_constructor("botnet152", "BoTNet152",
                               "BoTNet-152 (botnet.md Tables 5, 8).")
BoTNet200 = preset_constructor("botnet200", "BoTNet200",
                               "BoTNet-200 (botnet.md Table 8: 49.7 AP^bb at 1280).")
BoTNetT3 = preset_constructor(
    "botnet_t3", "BoTNetT3",
    "T3 = BoTNet-S1-59 with SE 0.0625, trained at 224 (33.5M / 7.3G in the paper).")
BoTNetT4 = preset_constructor("botnet_t4", "BoTNetT4",
                              "T4 = BoTNet-S1-110 with SE 0.0625, trained at 224.")
BoTNetT5 = preset_constructor("botnet_t5", "BoTNetT5",
                              "T5 = BoTNet-S1-128 with SE 0.0625, trained at 256.")
BoTNetT6 = preset_constructor("botnet_t6", "BoTNetT6",
                              "T6 = BoTNet-S1-77 with SE 0.0625, trained at 320.")
BoTNetT7 = preset_constructor(
    "botnet_t7", "BoTNetT7", "T7 = BoTNet-S1-128 with SE 0.0625, trained at 384 (84.7% "
    "top-1).")
