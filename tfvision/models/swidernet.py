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
import tf_keras

from tfvision.blocks.residual import WideResidualBlock
from tfvision.layers.activations import get_activation
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.preprocessing import DEEPLAB_MEAN_RGB, DEEPLAB_STD_RGB
from tfvision.layers.regularization import drop_path_rate_for_stride
from tfvision.models.base import VisionModel
from tfvision.models.registry import register_model
from tfvision.utils import validation

OUTPUT_STRIDES = (8, 16, 32)
_SAC_STRIDES = (0, 2, 4, 8, 16, 32)
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


def wide_resnet_plan(w1, w2, l, output_stride=32, sac_beyond_stride=32,
                     drop_path_rate=0.0, drop_path_schedule="constant",
                     drop_path_beyond_stride=4, multi_grid=None, use_se=False,
                     se_beyond_stride=2):
  """Per-block settings of SWideRNet-(w1, w2, l), following deeplab2's BlockGroup.

  Returns:
    A list of five stages; each stage a list of dicts with keys kind ("basic" or
    "bottleneck"), filters, base_filters, strides, dilation_rate, second_dilation_rate,
    switchable_atrous, use_se, drop_path_rate and input_stride (the undilated stride of
    the block's input, which subclasses use to place other block types by stride).
  """
  blocks = num_blocks_per_stage(l)
  plan = []
  for index, (stage_in, stride) in enumerate(zip(_STAGE_INPUT_STRIDES, _STAGE_STRIDES)):
    width = w1 if index == 0 else w2
    base = int(round(_STAGE_WIDTH_STRIDES[index] * 32 * width))
    stage_out = stage_in * stride
    bottleneck = stage_out >= 32
    filters = [base, 2 * base, 4 * base] if bottleneck else [4 * base, 4 * base]
    use_sac = stage_out >= sac_beyond_stride > 0
    stage_se = bool(use_se) and stage_out >= se_beyond_stride
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
              drop_path_rate, drop_path_schedule, current, drop_path_beyond_stride),
          input_stride=current))
      if block == 0 and stride > 1:
        current *= stride
    plan.append(stage)
  if multi_grid:
    last = plan[-1]
    offset = len(last) - len(multi_grid)
    for i, unit_rate in enumerate(multi_grid):
      spec = last[offset + i]
      spec["dilation_rate"] *= unit_rate
      spec["second_dilation_rate"] *= unit_rate
  return plan


def _check_multi_grid(multi_grid, last_stage_blocks):
  if multi_grid is None:
    return None
  try:
    rates = tuple(multi_grid)
  except TypeError:
    raise ValueError(f"multi_grid must be a sequence of positive integers, received "
                     f"multi_grid={multi_grid!r}")
  if not rates or any(not isinstance(r, int) or isinstance(r, bool) or r < 1 for r in rates):
    raise ValueError(f"multi_grid must be a sequence of positive integers, received "
                     f"multi_grid={multi_grid!r}")
  if len(rates) > last_stage_blocks:
    raise ValueError(f"multi_grid has more rates than the last stage has blocks "
                     f"({last_stage_blocks}), received multi_grid={multi_grid!r}")
  return rates


@tf_keras.utils.register_keras_serializable(package="tfvision")
class SWideRNet(VisionModel):
  """SWideRNet-(w1, w2, l) for classification or as a dense-prediction backbone.

  Args:
    w1: width multiplier of the stem and stage 1 (conv1, conv2).
    w2: width multiplier of stages 2-5 (conv3-conv6).
    l: depth multiplier of stages 2-5 (at least 1/3, so every stage has a block).
    use_se: simplified SE (swidernet.md Eq. 1) in the residual blocks.
    se_beyond_stride: SE in stages whose output stride is >= this: 2 = all five stages
      (deeplab2, default), 4 = conv3-conv6 (swidernet.md Table 1).
    sac_beyond_stride: SAC in stages whose output stride is >= this (32: conv6 only,
      as Table 1); 0 disables SAC.
    output_stride: 32 for classification; 16 or 8 for dense prediction (atrous rates
      past it, deeplab2's scheme).
    multi_grid: unit rates for the last blocks of the last stage, e.g. (1, 2, 4)
      (swidernet.md Table 3 "MG"); None disables.
    include_top: attach the classification head; False returns endpoints "2".."5".
    num_classes: classifier width.
    input_shape: (H, W, 3) or None for any size.
    pooling: "avg" or "max" pooling in the head.
    classifier_activation: None (logits) or an activation name.
    drop_path_rate: drop probability of the residual branches (paper: 0.2 constant).
    drop_path_schedule: "constant" (paper) or "linear" (deeplab2 configs).
    drop_path_beyond_stride: blocks whose input stride is below this get no drop path.
    dropout_rate: dropout before the classifier.
    norm, norm_momentum, norm_epsilon: normalisation settings.
    weight_decay: L2 weight decay on conv kernels.
    name: model name.
  """

  def __init__(self, w1=1.0, w2=1.0, l=1.0, use_se=True, se_beyond_stride=2,
               sac_beyond_stride=32,
               output_stride=32, multi_grid=None, include_top=True, num_classes=1000,
               input_shape=None, pooling="avg", classifier_activation=None,
               drop_path_rate=0.2, drop_path_schedule="constant",
               drop_path_beyond_stride=4, dropout_rate=0.0, norm="batch",
               norm_momentum=0.99, norm_epsilon=1e-3, weight_decay=0.0,
               name="swidernet", **kwargs):
    config = dict(
        w1=w1, w2=w2, l=l, use_se=use_se, se_beyond_stride=se_beyond_stride,
        sac_beyond_stride=sac_beyond_stride,
        output_stride=output_stride,
        multi_grid=None if multi_grid is None else list(multi_grid),
        include_top=include_top, num_classes=num_classes,
        input_shape=None if input_shape is None else list(input_shape), pooling=pooling,
        classifier_activation=classifier_activation, drop_path_rate=drop_path_rate,
        drop_path_schedule=drop_path_schedule,
        drop_path_beyond_stride=drop_path_beyond_stride, dropout_rate=dropout_rate,
        norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
        weight_decay=weight_decay, name=name)
    config.update(kwargs)
    plan = self._validate_and_plan(config)
    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  weight_decay=weight_decay)

    inputs, x = self._make_inputs(input_shape, DEEPLAB_MEAN_RGB, DEEPLAB_STD_RGB)
    # Stem: 3x3 stride-2 conv + BN, no activation (the first block applies it).
    x = ConvNormAct(int(round(64 * w1)), 3, strides=2, activation=None, name="stem",
                    **common)(x)
    act = get_activation("relu")
    endpoints = {}
    for stage_index, stage in enumerate(plan):
      for block_index, spec in enumerate(stage):
        x = self._make_block(spec, config, common,
                             name=f"stage{stage_index + 1}_block{block_index + 1}")(x)
      if stage_index >= 1:
        endpoints[str(stage_index + 1)] = tf_keras.layers.Activation(
            act, name=f"res{stage_index + 1}")(x)
    self._finish(config, inputs, endpoints, "5", include_top, num_classes, pooling,
                 classifier_activation, dropout_rate, name=name)

  def _validate_and_plan(self, config):
    """Checks the arguments and returns the block plan (subclasses may extend it)."""
    self._check_common_args(config)
    for key in ("w1", "w2", "l"):
      validation.check_positive(key, config[key])
    if int(3 * config["l"]) < 1:
      raise ValueError(f"l must be >= 1/3 so that every stage has a block, received "
                       f"l={config['l']!r}")
    validation.check_in("output_stride", config["output_stride"], OUTPUT_STRIDES)
    validation.check_in("sac_beyond_stride", config["sac_beyond_stride"], _SAC_STRIDES)
    validation.check_in("se_beyond_stride", config["se_beyond_stride"], _SAC_STRIDES[1:])
    validation.check_in("drop_path_schedule", config["drop_path_schedule"],
                        ("constant", "linear"))
    validation.check_positive("drop_path_beyond_stride", config["drop_path_beyond_stride"],
                              integer=True)
    multi_grid = _check_multi_grid(config["multi_grid"],
                                   num_blocks_per_stage(config["l"])[-1])
    return wide_resnet_plan(
        config["w1"], config["w2"], config["l"], config["output_stride"],
        config["sac_beyond_stride"], config["drop_path_rate"],
        config["drop_path_schedule"], config["drop_path_beyond_stride"], multi_grid,
        config["use_se"], config["se_beyond_stride"])

  def _make_block(self, spec, config, common, name):
    """Builds one residual block from its plan entry (subclasses add block kinds)."""
    return WideResidualBlock(
        spec["filters"], kind=spec["kind"], strides=spec["strides"],
        dilation_rate=spec["dilation_rate"],
        second_dilation_rate=spec["second_dilation_rate"], use_se=spec["use_se"],
        switchable_atrous=spec["switchable_atrous"],
        drop_path_rate=spec["drop_path_rate"], name=name, **common)


def WideResNet41(**kwargs):
  """Wide-ResNet-41 (Chen et al. 2020 [4]): SWideRNet-(1, 1, 1) without SE and SAC."""
  params = dict(w1=1.0, w2=1.0, l=1.0, use_se=False, sac_beyond_stride=0,
                name="wide_resnet41")
  params.update(kwargs)
  return SWideRNet(**params)


# Tiny configuration: same depth and layout, stage widths of a few channels.
_TINY = dict(w1=1 / 16, w2=1 / 16, num_classes=7)

register_model("wide_resnet41", WideResNet41, family="swidernet", tiny=_TINY,
               paper="swidernet.md Table 1 (WR-41)")

# Fast regime (swidernet.md Table 5) and strong regime (Table 4; 4.5 from Tables 8-10).
FAST_VARIANTS = ((0.25, 0.25, 0.75), (0.25, 0.35, 0.75), (0.25, 0.35, 1), (0.25, 0.5, 1),
                 (0.25, 0.75, 1))
STRONG_VARIANTS = ((1, 1, 1), (1, 1.5, 1), (1, 2, 1), (1, 1, 2), (1, 1, 3), (1, 1, 4),
                   (1, 1, 4.5), (1, 1, 5), (1, 1, 5.5), (1, 1, 6), (1, 1.5, 2), (1, 1.5, 3))


def variant_name(w1, w2, l):
  """Registry name of SWideRNet-(w1, w2, l), e.g. "swidernet_0.25_0.5_1"."""
  return "swidernet_" + "_".join(f"{v:g}" for v in (w1, w2, l))


for _w1, _w2, _l in FAST_VARIANTS + STRONG_VARIANTS:
  register_model(
      variant_name(_w1, _w2, _l), SWideRNet,
      defaults=dict(w1=_w1, w2=_w2, l=_l, name=variant_name(_w1, _w2, _l)),
      family="swidernet",
      tiny=_TINY,
      paper=("swidernet.md Table 5 (fast)" if (_w1, _w2, _l) in FAST_VARIANTS
             else "swidernet.md Table 4 (strong)"))
