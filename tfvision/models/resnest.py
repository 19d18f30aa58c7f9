"""ResNeSt: split-attention networks (Zhang et al. 2020; resnest.md).

A ResNet-D (resnest.md Sec. 5.1) whose bottlenecks use split attention (Sec. 3):

- stem: three 3x3 convs (stride 2, 1, 1) with `stem_width`, `stem_width`,
  2 * `stem_width` channels, each with BN and ReLU, then a 3x3 stride-2 max pool with
  padding 1 (stride 4);
- four stages of [3, 4, 6, 3] (50), [3, 4, 23, 3] (101), [3, 24, 36, 3] (200) or
  [3, 30, 48, 8] (269) `ResNeStBottleneck`s with 64, 128, 256, 512 planes (outputs
  256 ... 2048), strides 1, 2, 2, 2;
- the shared classification head (global average pool, dropout, 1000-way FC).

Where the paper is silent the authors' PyTorch code (zhanghang1989/ResNeSt,
`resnest/torch/models/resnet.py`, `resnest.py`, `ablation.py`), whose weights timm
redistributes, decided:

1. Stem width 32 for ResNeSt-50 and its ablation variants, 64 for 101, 200, 269.
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
import tf_keras

from tfvision.blocks.resnest import ResNeStBottleneck, group_width
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.preprocessing import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from tfvision.layers.regularization import linear_drop_path_rates
from tfvision.layers.split_attention import AUTHORS_CONV_INITIALIZER, attention_channels
from tfvision.models.base import VisionModel
from tfvision.models.registry import register_model
from tfvision.utils import validation

BLOCKS_PER_STAGE = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 200: (3, 24, 36, 3),
                    269: (3, 30, 48, 8)}
OUTPUT_STRIDES = (8, 16, 32)
_STAGE_PLANES = (64, 128, 256, 512)


def default_stem_width(depth):
  """32 for ResNeSt-50, 64 for the deeper models (the authors' constructors)."""
  return 32 if depth <= 50 else 64


def default_dropout_rate(depth):
  """0.2 before the classifier for depth >= 200 (resnest.md Sec. 5.2), else 0."""
  return 0.2 if depth >= 200 else 0.0


def resnest_plan(depth, fast=False, width_multiplier=1.0, output_stride=32,
                 dropblock_rate=0.1, drop_path_rate=0.0):
  """Per-block settings of a ResNeSt, following the authors' `ResNet._make_layer`.

  Returns:
    A list of four stages, each a list of dicts with keys filters, strides,
    dilation_rate, avd, avd_first, dropblock_rate and drop_path_rate.
  """
  blocks = BLOCKS_PER_STAGE[depth]
  rates = linear_drop_path_rates(drop_path_rate, sum(blocks))
  plan = []
  net_stride, dilation, index = 4, 1, 0
  for stage, num_blocks in enumerate(blocks):
    filters = int(round(_STAGE_PLANES[stage] * width_multiplier))
    stride = 1 if stage == 0 else 2
    previous_dilation = dilation
    if net_stride >= output_stride:
      dilation *= stride
      stride = 1
    else:
      net_stride *= stride
    specs = []
    for block in range(num_blocks):
      first = block == 0
      specs.append(dict(
          filters=filters, strides=stride if first else 1,
          dilation_rate=previous_dilation if first else dilation,
          # The authors' `avd and (stride > 1 or is_first)`; stage 1 is not "first".
          avd=first and stage > 0, avd_first=bool(fast),
          dropblock_rate=dropblock_rate if stage >= 2 else 0.0,
          drop_path_rate=rates[index]))
      index += 1
    plan.append(specs)
  return plan


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ResNeSt(VisionModel):
  """ResNeSt-{50, 101, 200, 269} and the radix / cardinality / width variants.

  Args:
    depth: 50, 101, 200 or 269.
    radix: splits per cardinal group (resnest.md "s"); 1 gates with a sigmoid.
    cardinality: cardinal groups ("x").
    base_width: width per cardinal group at the first stage ("d"); the split-attention
      width is int(planes * base_width / 64) * cardinality.
    fast: the "ResNeSt-fast" setting (Sec. 6.2): the 3x3 average pool of strided blocks
      precedes the split attention.
    stem_width: channels of the first two stem convs (None: 32 for depth 50, else 64).
    width_multiplier: scales the stage planes and the stem (1 for the paper's models;
      smaller values give narrow test models).
    output_stride: 32 for classification; 16 or 8 dilate the last stages (Sec. 7.3).
    include_top: attach the classification head; False returns endpoints "2".."5".
    num_classes: classifier width.
    input_shape: (H, W, 3) or None for any size.
    pooling: "avg" or "max" pooling in the head.
    classifier_activation: None (logits) or an activation name.
    dropout_rate: dropout before the classifier; None means 0.2 for depth >= 200 and 0
      otherwise (Sec. 5.2).
    dropblock_rate: DropBlock drop probability in the last two stages (Sec. 5.2; 0
      disables).
    drop_path_rate: stochastic depth of the last block (linear in the block index).
    zero_init_last_bn: zero-initialise the last BN of every block (Sec. 5.2).
    norm, norm_momentum, norm_epsilon: normalisation settings (PyTorch's defaults).
    weight_decay: L2 weight decay on conv kernels.
    name: model name.
  """

  def __init__(self, depth=50, radix=2, cardinality=1, base_width=64, fast=False,
               stem_width=None, width_multiplier=1.0, output_stride=32,
               include_top=True, num_classes=1000, input_shape=None, pooling="avg",
               classifier_activation=None, dropout_rate=None, dropblock_rate=0.1,
               drop_path_rate=0.0, zero_init_last_bn=True, norm="batch",
               norm_momentum=0.9, norm_epsilon=1e-5, weight_decay=0.0, name="resnest",
               **kwargs):
    config = dict(
        depth=depth, radix=radix, cardinality=cardinality, base_width=base_width,
        fast=fast, stem_width=stem_width, width_multiplier=width_multiplier,
        output_stride=output_stride, include_top=include_top, num_classes=num_classes,
        input_shape=None if input_shape is None else list(input_shape), pooling=pooling,
        classifier_activation=classifier_activation, dropout_rate=dropout_rate,
        dropblock_rate=dropblock_rate, drop_path_rate=drop_path_rate,
        zero_init_last_bn=zero_init_last_bn, norm=norm, norm_momentum=norm_momentum,
        norm_epsilon=norm_epsilon, weight_decay=weight_decay, name=name)
    config.update(kwargs)
    plan, stem, dropout = self._validate_and_plan(config)
    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  weight_decay=weight_decay)

    inputs, x = self._make_inputs(input_shape, IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)
    for index, (filters, strides) in enumerate(((stem, 2), (stem, 1), (2 * stem, 1))):
      x = ConvNormAct(filters, 3, strides=strides, activation="relu",
                      kernel_initializer=AUTHORS_CONV_INITIALIZER,
                      name=f"stem_conv{index + 1}", **common)(x)
    # PyTorch's MaxPool2d(3, 2, padding=1): symmetric padding, zeros are safe after ReLU.
    x = tf_keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = tf_keras.layers.MaxPooling2D(3, 2, padding="valid", name="stem_pool")(x)
    endpoints = {}
    for stage_index, stage in enumerate(plan):
      for block_index, spec in enumerate(stage):
        x = ResNeStBottleneck(
            radix=radix, cardinality=cardinality, base_width=base_width,
            zero_init_last_bn=zero_init_last_bn,
            name=f"stage{stage_index + 1}_block{block_index + 1}", **spec, **common)(x)
      endpoints[str(stage_index + 2)] = x
    self._finish(config, inputs, endpoints, "5", include_top, num_classes, pooling,
                 classifier_activation, dropout, name=name)

  def _validate_and_plan(self, config):
    """Checks the arguments; returns (block plan, stem width, classifier dropout)."""
    depth = config["depth"]
    validation.check_in("depth", depth, tuple(BLOCKS_PER_STAGE))
    dropout = config["dropout_rate"]
    if dropout is None:
      dropout = default_dropout_rate(depth)
    self._check_common_args(dict(config, dropout_rate=dropout))
    radix = validation.check_positive("radix", config["radix"], integer=True)
    cardinality = validation.check_positive("cardinality", config["cardinality"],
                                            integer=True)
    base_width = validation.check_positive("base_width", config["base_width"], integer=True)
    validation.check_positive("width_multiplier", config["width_multiplier"])
    validation.check_in("output_stride", config["output_stride"], OUTPUT_STRIDES)
    validation.check_probability("dropblock_rate", config["dropblock_rate"])
    validation.check_non_negative("weight_decay", config["weight_decay"])
    if not isinstance(config["fast"], bool):
      raise ValueError(f"fast must be True or False, received fast={config['fast']!r}")
    stem = config["stem_width"]
    if stem is None:
      stem = max(1, int(round(default_stem_width(depth) * config["width_multiplier"])))
    validation.check_positive("stem_width", stem, integer=True)
    plan = resnest_plan(depth, config["fast"], config["width_multiplier"],
                        config["output_stride"], config["dropblock_rate"],
                        config["drop_path_rate"])
    groups = radix * cardinality
    for stage_index, stage in enumerate(plan):
      filters = stage[0]["filters"]
      width = group_width(filters, base_width, cardinality) if filters else 0
      if filters < 1 or width < 1 or width % groups:
        raise ValueError(
            f"stage {stage_index + 1} has {width} split-attention channels "
            f"(int({filters} * base_width / 64) * cardinality), which must be a positive "
            f"multiple of radix * cardinality = {groups}; received base_width="
            f"{base_width!r}, cardinality={cardinality!r}, radix={radix!r}, "
            f"width_multiplier={config['width_multiplier']!r}")
      if attention_channels(width, radix) % cardinality:
        raise ValueError(
            f"stage {stage_index + 1}'s gating width max({width} * radix // 4, 32) is "
            f"not divisible by cardinality, received cardinality={cardinality!r}")
    return plan, stem, dropout


def ResNeSt50(**kwargs):
  """ResNeSt-50 (2s1x64d, stem width 32; resnest.md Table 3 / 4)."""
  return ResNeSt(**{**dict(depth=50, name="resnest50"), **kwargs})


def ResNeSt101(**kwargs):
  """ResNeSt-101 (2s1x64d, stem width 64; trained at 256)."""
  return ResNeSt(**{**dict(depth=101, name="resnest101"), **kwargs})


def ResNeSt200(**kwargs):
  """ResNeSt-200 (2s1x64d, stem width 64, dropout 0.2; trained at 320)."""
  return ResNeSt(**{**dict(depth=200, name="resnest200"), **kwargs})


def ResNeSt269(**kwargs):
  """ResNeSt-269 (2s1x64d, stem width 64, dropout 0.2; trained at 416)."""
  return ResNeSt(**{**dict(depth=269, name="resnest269"), **kwargs})


# Tiny configuration: same depth, radix, cardinality and layout, planes / 16. The
# base width is 64 so that every stage's split-attention width stays divisible by
# radix * cardinality at this size.
_TINY = dict(width_multiplier=1 / 16, base_width=64, num_classes=7)

for _depth, _size, _builder in ((50, 224, ResNeSt50), (101, 256, ResNeSt101),
                                (200, 320, ResNeSt200), (269, 416, ResNeSt269)):
  register_model(f"resnest{_depth}", _builder, family="resnest", default_size=_size,
                 tiny=_TINY, paper=f"resnest.md Table 4 / authors' resnest{_depth}")

# The ablation models of resnest.md Table 3 (right) and the authors' `ablation.py`:
# ResNeSt-50-fast with (radix, cardinality, base width).
FAST_VARIANTS = ((1, 1, 64), (2, 1, 64), (4, 1, 64), (1, 2, 40), (2, 2, 40), (4, 2, 40),
                 (1, 4, 24))


def fast_variant_name(radix, cardinality, base_width):
  """Registry name of a ResNeSt-50-fast ablation model, e.g. "resnest50_fast_2s1x64d"."""
  return f"resnest50_fast_{radix}s{cardinality}x{base_width}d"


for _radix, _card, _width in FAST_VARIANTS:
  _name = fast_variant_name(_radix, _card, _width)
  register_model(
      _name, ResNeSt,
      defaults=dict(depth=50, radix=_radix, cardinality=_card, base_width=_width,
                    fast=True, name=_name),
      family="resnest", default_size=224, tiny=_TINY,
      paper="resnest.md Table 3 / authors' ablation.py")
