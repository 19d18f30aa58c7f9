"""ResNeSt: split-attention networks (Zhang et al. 2020; resnest.md).

A ResNet-D (resnest.md Sec. 5.1) whose bottlenecks use split attention (Sec. 3):

- stem: three 3x3 convs (stride 2, 1, 1) with `stem_width`, `stem_width`,
  2 * `stem_width` channels, each with BN and ReLU, then a 3x3 stride-2 max pool with
  padding 1 (stride 4);
- four stages of [3, 4, 6, 3] (50), [3, 4, 23, 3] (101), [3, 24, 36, 3] (200) or
  [3, 30, 48, 8] (269) `ResNeStBottleneck`s with 64, 128, 256, 512 planes (outputs
  256 ... 2048), strides 1, 2, 2, 2; the authors' Gluon model zoo adds ResNeSt-14
  ([1, 1, 1, 1]) and ResNeSt-26 ([2, 2, 2, 2]), which the paper does not list;
- the shared classification head (global average pool, dropout, 1000-way FC).

Where the paper is silent the authors' PyTorch code (zhanghang1989/ResNeSt,
`resnest/torch/models/resnet.py`, `resnest.py`, `ablation.py`), whose weights timm
redistributes, decided:

1. Stem width 32 for ResNeSt-14, 26, 50 and the ablation variants, 64 for 101, 200,
   269.
2. PyTorch pads symmetrically: the stride-2 stem conv and the split-attention convs use
   explicit symmetric zero padding; the stem max pool pads one zero on every side
   (its input is post-ReLU, so zeros act as PyTorch's -inf padding); the 3x3 average
   pool of strided blocks counts its zero padding (`AvgPool2d(3, s, padding=1)`).
3. The 3x3 average pool ("avd") sits in the first block of stages 2-4, after the split
   attention (ResNeSt) or before it (`fast`, resnest.md Sec. 6.2); in dilated stages
   (output stride 8 / 16) it stays, with stride 1 (the authors' `is_first` rule).
   timm's dilated ResNeSts differ here: they drop that pool and put a 2x2 stride-1
   average pool in the shortcut, where the authors' code has none.
4. Dilated stages (Sec. 7.3, output_stride 8 or 16) replace the stride by atrous rates:
   the first block of a dilated stage uses the previous stage's rate, the others the
   stage's (rates 1, 2 for OS16's last stage; 1, 2 and 2, 4 for OS8), and the
   shortcut has no average pool.
5. Regularisation (Sec. 5.2): DropBlock with drop probability 0.1 and block size 3 in
   the last two stages (the authors' Gluon constructors, which trained the published
   models; the PyTorch port leaves it out), dropout 0.2 before the classifier for
   depth >= 200 (Gluon's `final_drop`), and zero-initialised last BN of each block.
   The Gluon trainer ramps the DropBlock probability from 0 to 0.1 over training;
   here the rate is a constructor argument.
6. BN with PyTorch's defaults (epsilon 1e-5, momentum 0.1 = tf_keras momentum 0.9);
   conv kernels He-normal with fan-out, as the authors initialise them.
7. Drop path (`drop_path_rate`, linear in the block index as timm) is an option that
   the paper does not use.

Inputs are pixels in [0, 255], normalised inside the model with the ImageNet mean and
standard deviation, as the authors' data pipelines do.
"""
import dataclasses
import typing
from typing import Optional

import tf_keras

from tfvision.blocks.resnest import ResNeStBottleneck, group_width
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.regularization import linear_drop_path_rates
from tfvision.layers.split_attention import AUTHORS_CONV_INITIALIZER, attention_channels
from tfvision.models.base import VisionModel
from tfvision.models.registry import (Preset, Release, preset_constructor,
                                      register_presets)
from tfvision.models.spec import RecomputeSpec, arg

# 14 and 26: the authors' Gluon `resnest14` / `resnest26` (GluonCV model zoo), which
# timm ships as resnest14d / resnest26d.
BLOCKS_PER_STAGE = {14: (1, 1, 1, 1), 26: (2, 2, 2, 2), 50: (3, 4, 6, 3),
                    101: (3, 4, 23, 3), 200: (3, 24, 36, 3), 269: (3, 30, 48, 8)}
OUTPUT_STRIDES = (8, 16, 32)
_STAGE_PLANES = (64, 128, 256, 512)


def default_stem_width(depth):
  """32 up to ResNeSt-50, 64 for the deeper models (the authors' constructors)."""
  return 32 if depth <= 50 else 64


def default_dropout_rate(depth):
  """0.2 before the classifier for depth >= 200 (resnest.md Sec. 5.2), else 0."""
  return 0.2 if depth >= 200 else 0.0


@dataclasses.dataclass
class ResNeStSpec(RecomputeSpec):
  """The architecture of a ResNeSt (resnest.md; the authors' `resnet.py`)."""
  FAMILY: typing.ClassVar[str] = "resnest"
  depth: int = arg(50, "14, 26, 50, 101, 200 or 269", choices=tuple(BLOCKS_PER_STAGE))
  radix: int = arg(2, "splits per cardinal group (resnest.md 's'); 1 gates with a sigmoid",
                   positive=True)
  cardinality: int = arg(1, "cardinal groups ('x')", positive=True)
  base_width: int = arg(64, "width per cardinal group at the first stage ('d'); the "
                        "split-attention width is int(planes * base_width / 64) * "
                        "cardinality", positive=True)
  fast: bool = arg(False, "ResNeSt-fast (Sec. 6.2): the 3x3 average pool of strided "
                   "blocks precedes the split attention")
  stem_width: Optional[int] = arg(None, "channels of the first two stem convs (None: 32 "
                                  "up to depth 50, else 64, times width_multiplier)",
                                  positive=True, nullable=True)
  width_multiplier: float = arg(1.0, "scales the stage planes and the stem (1 for the "
                                "paper's models; smaller gives narrow test models)",
                                positive=True)
  output_stride: int = arg(32, "stride of endpoint '5': 32 classification; 16 or 8 dilate "
                           "the last stages (Sec. 7.3)", choices=OUTPUT_STRIDES)
  dropblock_rate: float = arg(0.1, "DropBlock drop probability in the last two stages "
                              "(Sec. 5.2; 0 disables)", probability=True)
  drop_path_rate: float = arg(0.0, "stochastic depth of the last block, linear in the "
                              "block index (timm; not in the paper)", probability=True)
  zero_init_last_bn: bool = arg(True, "zero-initialise the last BN of every block "
                                "(Sec. 5.2)")

  def stem(self):
    """The stem width this spec builds."""
    if self.stem_width is not None:
      return self.stem_width
    return max(1, int(round(default_stem_width(self.depth) * self.width_multiplier)))


def resnest_plan(spec):
  """Per-block settings of a ResNeSt, following the authors' `ResNet._make_layer`.

  Args:
    spec: a `ResNeStSpec`.

  Returns:
    A list of four stages, each a list of dicts with keys filters, strides,
    dilation_rate, avd, avd_first, dropblock_rate and drop_path_rate.
  """
  blocks = BLOCKS_PER_STAGE[spec.depth]
  rates = linear_drop_path_rates(spec.drop_path_rate, sum(blocks))
  plan = []
  net_stride, dilation, index = 4, 1, 0
  for stage, num_blocks in enumerate(blocks):
    filters = int(round(_STAGE_PLANES[stage] * spec.width_multiplier))
    stride = 1 if stage == 0 else 2
    previous_dilation = dilation
    if net_stride >= spec.output_stride:
      dilation *= stride
      stride = 1
    else:
      net_stride *= stride
    blocks_ = []
    for block in range(num_blocks):
      first = block == 0
      blocks_.append(dict(
          filters=filters, strides=stride if first else 1,
          dilation_rate=previous_dilation if first else dilation,
          # The authors' `avd and (stride > 1 or is_first)`; stage 1 is not "first".
          avd=first and stage > 0, avd_first=bool(spec.fast),
          dropblock_rate=spec.dropblock_rate if stage >= 2 else 0.0,
          drop_path_rate=rates[index]))
      index += 1
    plan.append(blocks_)
  return plan


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ResNeSt(VisionModel):
  """ResNeSt-{14, 26, 50, 101, 200, 269} and the radix / cardinality / width variants.

  `ResNeSt(50, radix=4, cardinality=2, base_width=40, fast=True)`: depth may be given
  by position. Endpoints "2".."5" are the outputs of the four stages (post-activation
  blocks). The split attention and the blocks are ReLU networks in the authors' code:
  `activation` must be "relu".
  """
  ARCH = ResNeStSpec
  POSITIONAL = ("depth",)
  # PyTorch's BatchNorm2d defaults (momentum 0.1 = Keras 0.9, epsilon 1e-5).
  COMMON_DEFAULTS = dict(norm=dict(momentum=0.9, epsilon=1e-5))
  # Same depth, radix, cardinality and layout, planes / 16. The base width is 64 so that
  # every stage's split-attention width stays divisible by radix * cardinality.
  TINY = dict(width_multiplier=1 / 16, base_width=64, num_classes=7)

  @classmethod
  def check_arguments(cls, arch, common):
    if common.activation != "relu":
      raise ValueError(f"ResNeSt is a ReLU network (its split attention and blocks are "
                       f"the authors' ReLU design), received "
                       f"activation={common.activation!r}")
    groups = arch.radix * arch.cardinality
    for stage_index, stage in enumerate(resnest_plan(arch)):
      filters = stage[0]["filters"]
      width = group_width(filters, arch.base_width, arch.cardinality) if filters else 0
      if filters < 1 or width < 1 or width % groups:
        raise ValueError(
            f"stage {stage_index + 1} has {width} split-attention channels "
            f"(int({filters} * base_width / 64) * cardinality), which must be a positive "
            f"multiple of radix * cardinality = {groups}; received base_width="
            f"{arch.base_width!r}, cardinality={arch.cardinality!r}, radix={arch.radix!r}, "
            f"width_multiplier={arch.width_multiplier!r}")
      if attention_channels(width, arch.radix) % arch.cardinality:
        raise ValueError(
            f"stage {stage_index + 1}'s gating width max({width} * radix // 4, 32) is "
            f"not divisible by cardinality, received cardinality={arch.cardinality!r}")

  @classmethod
  def default_dropout_rate(cls, arch):
    return default_dropout_rate(arch.depth)

  def build_backbone(self, arch, common):
    layer_settings = dict(common.norm.layer_kwargs(), weight_decay=common.weight_decay)
    stem = arch.stem()
    inputs, x = self.image_input(common)
    for index, (filters, strides) in enumerate(((stem, 2), (stem, 1), (2 * stem, 1))):
      x = ConvNormAct(filters, 3, strides=strides, activation="relu",
                      kernel_initializer=AUTHORS_CONV_INITIALIZER,
                      name=f"stem_conv{index + 1}", **layer_settings)(x)
    # PyTorch's MaxPool2d(3, 2, padding=1): symmetric padding, zeros are safe after ReLU.
    x = tf_keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = tf_keras.layers.MaxPooling2D(3, 2, padding="valid", name="stem_pool")(x)
    endpoints = {}
    for stage_index, stage in enumerate(resnest_plan(arch)):
      for block_index, block in enumerate(stage):
        x = ResNeStBottleneck(
            radix=arch.radix, cardinality=arch.cardinality, base_width=arch.base_width,
            zero_init_last_bn=arch.zero_init_last_bn, recompute_grad=arch.recomputes(),
            name=f"stage{stage_index + 1}_block{block_index + 1}", **block,
            **layer_settings)(x)
      endpoints[str(stage_index + 2)] = x
    return inputs, endpoints


# The ablation models of resnest.md Table 3 (right) and the authors' `ablation.py`:
# ResNeSt-50-fast with (radix, cardinality, base width).
FAST_VARIANTS = ((1, 1, 64), (2, 1, 64), (4, 1, 64), (1, 2, 40), (2, 2, 40), (4, 2, 40),
                 (1, 4, 24))


def fast_variant_name(radix, cardinality, base_width):
  """Registry name of a ResNeSt-50-fast ablation model, e.g. "resnest50_fast_2s1x64d"."""
  return f"resnest50_fast_{radix}s{cardinality}x{base_width}d"


_HUB = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"


def _timm_release(checkpoint, top1, reference, size=224, crop_pct=0.875,
                  interpolation="bilinear", notes=""):
  """The authors' ImageNet weights as timm ships them (safetensors on the Hugging Face hub).

  `size`, `crop_pct` and `interpolation` are timm's pretrained config of `checkpoint`:
  evaluation resizes the shorter side to floor(size / crop_pct), then crops the centre.
  """
  return Release(
      url=_HUB.format(checkpoint), converter="timm_resnest", dataset="imagenet2012",
      labels="imagenet1k", input_size=(size, size),
      crop=(f"resize shorter side to {int(size / crop_pct)} ({interpolation}), center "
            f"crop {size} (timm {checkpoint}: crop_pct {crop_pct})"),
      metrics={"top1": top1}, reference=reference, sha256=None,
      filename=f"{checkpoint}.safetensors", notes=notes)


_GLUON = ("GluonCV model zoo (docs/model_zoo/csv_tables/Classifications/ResNeSt.csv), "
          "whose Gluon weights timm converted")
_GLUON_NOTES = ("trained and published with the authors' Gluon code (GluonCV); timm "
                "converted the parameters to the PyTorch key layout, which the "
                "timm_resnest table reads. The architecture is the preset's.")
_ABLATION = "authors' ablation.md, PyTorch column (the weights timm redistributes)"
# Released checkpoints by preset: (timm checkpoint, top-1, where the top-1 comes from,
# timm's evaluation size / crop_pct / interpolation).
RELEASES = {
    "resnest14": _timm_release("resnest14d.gluon_in1k", 75.75, _GLUON, notes=_GLUON_NOTES),
    "resnest26": _timm_release("resnest26d.gluon_in1k", 78.68, _GLUON, notes=_GLUON_NOTES),
    "resnest50": _timm_release(
        "resnest50d.in1k", 81.13, "resnest.md Table 3 (left), ResNeSt-50 (the authors' "
        "README gives 81.03 for the released PyTorch file)"),
    "resnest101": _timm_release(
        "resnest101e.in1k", 83.0, "resnest.md Table 4 (README: 82.83 for the released "
        "PyTorch file)", size=256),
    "resnest200": _timm_release(
        "resnest200e.in1k", 83.9, "resnest.md Table 4 (README: 83.84 for the released "
        "PyTorch file)", size=320, crop_pct=0.909, interpolation="bicubic"),
    "resnest269": _timm_release(
        "resnest269e.in1k", 84.5, "resnest.md Table 4 (README: 84.54 for the released "
        "PyTorch file)", size=416, crop_pct=0.928, interpolation="bicubic"),
    fast_variant_name(4, 2, 40): _timm_release(
        "resnest50d_4s2x40d.in1k", 80.86, _ABLATION, interpolation="bicubic"),
    fast_variant_name(1, 4, 24): _timm_release(
        "resnest50d_1s4x24d.in1k", 80.99, _ABLATION, interpolation="bicubic"),
}


def _weights(name):
  return {"imagenet": RELEASES[name]} if name in RELEASES else {}


PRESETS = register_presets(
    *(Preset(f"resnest{depth}", ResNeSt, fixed=dict(depth=depth), default_size=size,
             source=source, weights=_weights(f"resnest{depth}"))
      for depth, size, source in (
          (14, 224, "GluonCV resnest14 (authors' Gluon model zoo; timm resnest14d)"),
          (26, 224, "GluonCV resnest26 (authors' Gluon model zoo; timm resnest26d)"),
          (50, 224, "resnest.md Table 4 / authors' resnest50"),
          (101, 256, "resnest.md Table 4 / authors' resnest101"),
          (200, 320, "resnest.md Table 4 / authors' resnest200"),
          (269, 416, "resnest.md Table 4 / authors' resnest269"))),
    *(Preset(fast_variant_name(radix, cardinality, width), ResNeSt,
             fixed=dict(depth=50, radix=radix, cardinality=cardinality, base_width=width,
                        fast=True),
             source="resnest.md Table 3 / authors' ablation.py",
             weights=_weights(fast_variant_name(radix, cardinality, width)))
      for radix, cardinality, width in FAST_VARIANTS))

ResNeSt14 = preset_constructor(
    "resnest14", "ResNeSt14", "ResNeSt-14 (2s1x64d, one block per stage, stem width 32; "
    "GluonCV model zoo).")
ResNeSt26 = preset_constructor(
    "resnest26", "ResNeSt26", "ResNeSt-26 (2s1x64d, two blocks per stage, stem width 32; "
    "GluonCV model zoo).")
ResNeSt50 = preset_constructor("resnest50", "ResNeSt50",
                               "ResNeSt-50 (2s1x64d, stem width 32; resnest.md Table 3 / 4).")
ResNeSt101 = preset_constructor("resnest101", "ResNeSt101",
                                "ResNeSt-101 (2s1x64d, stem width 64; trained at 256).")
ResNeSt200 = preset_constructor(
    "resnest200", "ResNeSt200", "ResNeSt-200 (2s1x64d, stem width 64, dropout 0.2; "
    "trained at 320).")
ResNeSt269 = preset_constructor(
    "resnest269", "ResNeSt269", "ResNeSt-269 (2s1x64d, stem width 64, dropout 0.2; "
    "trained at 416).")
