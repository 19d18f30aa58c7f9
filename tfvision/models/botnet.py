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
import math

import tf_keras

from tfvision.blocks.bottleneck_transformer import (BottleneckTransformerBlock,
                                                    ResNetBottleneckBlock)
from tfvision.layers.activations import get_activation
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.preprocessing import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from tfvision.layers.regularization import linear_drop_path_rates
from tfvision.layers.relative_attention import POSITION_ENCODINGS
from tfvision.models.base import VisionModel
from tfvision.models.registry import register_model
from tfvision.utils import validation

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
NORMS = ("batch", "sync_batch", None)


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


class _ResNetFamily(VisionModel):
  """Stem, four bottleneck stages and the shared head; subclasses choose c5's blocks."""

  def _check_family_args(self, config):
    self._check_common_args(config)
    if config["depth"] not in BLOCK_LAYOUTS:
      raise ValueError(f"depth must be one of {sorted(BLOCK_LAYOUTS)}, received "
                       f"depth={config['depth']!r}")
    validation.check_positive("base_width", config["base_width"], integer=True)
    validation.check_non_negative("se_ratio", config["se_ratio"])
    validation.check_in("norm", config["norm"], NORMS)
    validation.check_non_negative("weight_decay", config["weight_decay"])
    get_activation(config["activation"])

  def _build_network(self, config, output_stride=32):
    common = dict(norm=config["norm"], norm_momentum=config["norm_momentum"],
                  norm_epsilon=config["norm_epsilon"], weight_decay=config["weight_decay"])
    inputs, x = self._make_inputs(config["input_shape"], IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)
    width = config["base_width"]
    x = ConvNormAct(width, 7, strides=2, activation=config["activation"], name="stem",
                    **common)(x)
    # Symmetric max-pool padding (PyTorch / TPU ResNet): zeros equal -inf after ReLU.
    x = tf_keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = tf_keras.layers.MaxPool2D(3, strides=2, name="stem_pool")(x)
    endpoints = {}
    plan = stage_plan(config["depth"], output_stride, config["drop_path_rate"])
    for stage_index, stage in enumerate(plan):
      for block_index, spec in enumerate(stage):
        block = self._make_block(stage_index, spec, config, common,
                                 name=f"c{stage_index + 2}_block{block_index + 1}")
        x = block(x)
      endpoints[str(stage_index + 2)] = x
    self._finish(config, inputs, endpoints, "5", config["include_top"],
                 config["num_classes"], config["pooling"], config["classifier_activation"],
                 config["dropout_rate"], name=config["name"])

  def _make_block(self, stage_index, spec, config, common, name):
    return ResNetBottleneckBlock(
        config["base_width"] * spec["filters_multiplier"], strides=spec["strides"],
        se_ratio=config["se_ratio"], drop_path_rate=spec["drop_path_rate"],
        activation=config["activation"], name=name, **common)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ResNet(_ResNetFamily):
  """ResNet (v1.5: stride in the 3x3 conv), the baseline of botnet.md Tables 1, 5, 9.

  The same layout as Model Garden's `ResNet(model_id)` and torchvision's resnet (equal
  parameter counts and kernel shapes), built from the blocks BoTNet shares so that the
  two differ only in c5.

  Args:
    depth: one of BLOCK_LAYOUTS (50, 101, 152, 200, and 59, 77, 110, 128).
    se_ratio: squeeze-excitation ratio in every block (SE-ResNet); 0 disables.
    activation: activation name.
    base_width: stem width and c2 bottleneck width (64); the tiny harness models
      narrow it.
    include_top, num_classes, input_shape, pooling, classifier_activation,
      dropout_rate: the common classification arguments.
    drop_path_rate: stochastic depth, rising linearly to this over the blocks.
    norm, norm_momentum, norm_epsilon: normalisation (the BoTNet gist: BN decay 0.9,
      epsilon 1e-5).
    weight_decay: L2 weight decay on the kernels.
    name: model name (default f"resnet{depth}").
  Output: [B, num_classes] logits, or endpoints "2".."5" at strides 4..32.
  """

  def __init__(self, depth=50, se_ratio=0.0, activation="relu", base_width=64,
               include_top=True, num_classes=1000, input_shape=None, pooling="avg",
               classifier_activation=None, drop_path_rate=0.0, dropout_rate=0.0,
               norm="batch", norm_momentum=0.9, norm_epsilon=1e-5, weight_decay=0.0,
               name=None, **kwargs):
    config = dict(
        depth=depth, se_ratio=se_ratio, activation=activation, base_width=base_width,
        include_top=include_top, num_classes=num_classes,
        input_shape=None if input_shape is None else list(input_shape), pooling=pooling,
        classifier_activation=classifier_activation, drop_path_rate=drop_path_rate,
        dropout_rate=dropout_rate, norm=norm, norm_momentum=norm_momentum,
        norm_epsilon=norm_epsilon, weight_decay=weight_decay,
        name=name or f"resnet{depth}")
    config.update(kwargs)
    self._check_family_args(config)
    self._build_network(config)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class BoTNet(_ResNetFamily):
  """BoTNet: a ResNet whose c5 blocks are Bottleneck Transformer blocks (botnet.md).

  Args:
    depth: one of BLOCK_LAYOUTS (the paper: 50, 101, 152, 200; S1: 50, 59, 77, 110,
      128).
    output_stride: 32 (BoTNet: the first c5 block pools 2x2 after attention) or 16
      (BoTNet-S1, Sec. 4.7.1: c5 at stride 1, endpoint "5" at stride 16).
    num_heads: heads of each MHSA layer (Fig. 4: 4); must divide 8 * base_width.
    position_encoding: "relative" (the paper), "absolute" or None (content only);
      Table 4 ablations.
    content_logits: False keeps only the q r^T term (Table 4's position-only row).
    max_input_size: with `input_shape=None`, the largest input side the position
      tables cover (each MHSA layer covers ceil(max_input_size / its stride)); with a
      static input_shape the tables fit that size exactly.
    se_ratio: squeeze-excitation ratio (the scaled T3..T7 family: 0.0625); 0 disables.
    se_in_attention_blocks: also apply SE in the BoT blocks (the authors' script).
    Other arguments as ResNet. name defaults to f"botnet{depth}" (S1:
    f"botnet_s1_{depth}").
  Output: [B, num_classes] logits, or endpoints "2".."5" (stride 4, 8, 16, 32; "5" at
  16 when output_stride=16).
  """

  def __init__(self, depth=50, output_stride=32, num_heads=4,
               position_encoding="relative", content_logits=True, max_input_size=1024,
               se_ratio=0.0, se_in_attention_blocks=True, activation="relu",
               base_width=64, include_top=True, num_classes=1000, input_shape=None,
               pooling="avg", classifier_activation=None, drop_path_rate=0.0,
               dropout_rate=0.0, norm="batch", norm_momentum=0.9, norm_epsilon=1e-5,
               weight_decay=0.0, name=None, **kwargs):
    default_name = f"botnet{depth}" if output_stride == 32 else f"botnet_s1_{depth}"
    config = dict(
        depth=depth, output_stride=output_stride, num_heads=num_heads,
        position_encoding=position_encoding, content_logits=content_logits,
        max_input_size=max_input_size, se_ratio=se_ratio,
        se_in_attention_blocks=se_in_attention_blocks, activation=activation,
        base_width=base_width, include_top=include_top, num_classes=num_classes,
        input_shape=None if input_shape is None else list(input_shape), pooling=pooling,
        classifier_activation=classifier_activation, drop_path_rate=drop_path_rate,
        dropout_rate=dropout_rate, norm=norm, norm_momentum=norm_momentum,
        norm_epsilon=norm_epsilon, weight_decay=weight_decay,
        name=name or default_name)
    config.update(kwargs)
    self._check_family_args(config)
    validation.check_in("output_stride", output_stride, OUTPUT_STRIDES)
    validation.check_positive("num_heads", num_heads, integer=True)
    attention_width = 8 * config["base_width"]
    if attention_width % num_heads:
      raise ValueError(f"num_heads must divide the c5 bottleneck width {attention_width} "
                       f"(8 * base_width), received num_heads={num_heads!r}")
    validation.check_in("position_encoding", position_encoding, POSITION_ENCODINGS)
    if not content_logits and position_encoding is None:
      raise ValueError("attention needs content or position logits, received "
                       "content_logits=False with position_encoding=None")
    validation.check_positive("max_input_size", max_input_size, integer=True)
    self._build_network(config, output_stride)

  def _attention_max_size(self, config, input_stride):
    """Position-table extent (rows, cols) for a block whose input has `input_stride`."""
    shape = config["input_shape"] or (None, None, 3)
    return tuple(math.ceil((side or config["max_input_size"]) / input_stride)
                 for side in shape[:2])

  def _make_block(self, stage_index, spec, config, common, name):
    if stage_index < 3:
      return super()._make_block(stage_index, spec, config, common, name)
    se_ratio = config["se_ratio"] if config["se_in_attention_blocks"] else 0.0
    return BottleneckTransformerBlock(
        config["base_width"] * spec["filters_multiplier"], strides=spec["strides"],
        num_heads=config["num_heads"],
        max_size=self._attention_max_size(config, spec["input_stride"]),
        position_encoding=config["position_encoding"],
        content_logits=config["content_logits"], se_ratio=se_ratio,
        drop_path_rate=spec["drop_path_rate"], activation=config["activation"],
        name=name, **common)


def ResNet50(**kwargs):
  """ResNet-50 (botnet.md Table 1 baseline: 25.5M parameters)."""
  return ResNet(depth=50, **kwargs)


def ResNet101(**kwargs):
  """ResNet-101 (botnet.md Table 5 baseline)."""
  return ResNet(depth=101, **kwargs)


def ResNet152(**kwargs):
  """ResNet-152 (botnet.md Table 5 baseline)."""
  return ResNet(depth=152, **kwargs)


def ResNet200(**kwargs):
  """ResNet-200 (blocks 3, 24, 36, 3; the BoT200 baseline of Table 8)."""
  return ResNet(depth=200, **kwargs)


def BoTNet50(**kwargs):
  """BoTNet-50 (botnet.md Table 1: 20.8M parameters)."""
  return BoTNet(depth=50, **kwargs)


def BoTNet101(**kwargs):
  """BoTNet-101 (botnet.md Table 5)."""
  return BoTNet(depth=101, **kwargs)


def BoTNet152(**kwargs):
  """BoTNet-152 (botnet.md Tables 5, 8)."""
  return BoTNet(depth=152, **kwargs)


def BoTNet200(**kwargs):
  """BoTNet-200 (botnet.md Table 8: 49.7 AP^bb at 1280)."""
  return BoTNet(depth=200, **kwargs)


def BoTNetS1(depth=50, **kwargs):
  """BoTNet-S1-`depth` (botnet.md Sec. 4.7.1): c5 at stride 1, no SE unless given."""
  if depth not in BLOCK_LAYOUTS:
    raise ValueError(f"depth must be one of {sorted(BLOCK_LAYOUTS)}, received "
                     f"depth={depth!r}")
  return BoTNet(depth=depth, output_stride=16, **kwargs)


# The scaled family (botnet.md Sec. 4.7.4, Fig. 5): (depth, training image side).
SCALED_FAMILY = {
    "t3": (59, 224),
    "t4": (110, 224),
    "t5": (128, 256),
    "t6": (77, 320),
    "t7": (128, 384),
}


def _scaled(variant, **kwargs):
  depth, _ = SCALED_FAMILY[variant]
  params = dict(se_ratio=SE_RATIO_SCALED, name=f"botnet_{variant}")
  params.update(kwargs)
  return BoTNetS1(depth, **params)


def BoTNetT3(**kwargs):
  """T3 = BoTNet-S1-59 with SE 0.0625, trained at 224 (33.5M / 7.3G in the paper)."""
  return _scaled("t3", **kwargs)


def BoTNetT4(**kwargs):
  """T4 = BoTNet-S1-110 with SE 0.0625, trained at 224."""
  return _scaled("t4", **kwargs)


def BoTNetT5(**kwargs):
  """T5 = BoTNet-S1-128 with SE 0.0625, trained at 256."""
  return _scaled("t5", **kwargs)


def BoTNetT6(**kwargs):
  """T6 = BoTNet-S1-77 with SE 0.0625, trained at 320."""
  return _scaled("t6", **kwargs)


def BoTNetT7(**kwargs):
  """T7 = BoTNet-S1-128 with SE 0.0625, trained at 384 (84.7% top-1)."""
  return _scaled("t7", **kwargs)


# Tiny configurations: same depth and layout, an 8-wide stem (c5 attention width 64,
# 16 per head).
_TINY = dict(base_width=8, num_classes=7)

for _depth, _builder in ((50, ResNet50), (101, ResNet101), (152, ResNet152),
                         (200, ResNet200)):
  register_model(f"resnet{_depth}", _builder, family="botnet", tiny=_TINY,
                 paper="botnet.md Tables 1, 5 (ResNet baseline)")
for _depth, _builder in ((50, BoTNet50), (101, BoTNet101), (152, BoTNet152),
                         (200, BoTNet200)):
  register_model(f"botnet{_depth}", _builder, family="botnet", tiny=_TINY,
                 paper="botnet.md Table 1, Table 5, Table 8")
register_model("botnet_s1_50", BoTNetS1, defaults=dict(depth=50), family="botnet",
               tiny=_TINY, paper="botnet.md Sec. 4.7.1, Table 9")
for _variant, (_depth, _size) in SCALED_FAMILY.items():
  register_model(f"botnet_{_variant}", _scaled, defaults=dict(variant=_variant),
                 family="botnet", default_size=_size, tiny=_TINY,
                 paper=f"botnet.md Sec. 4.7.4 / authors' script: S1-{_depth} at {_size}")
