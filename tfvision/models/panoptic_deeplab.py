"""Panoptic-DeepLab (Cheng et al., CVPR 2020) on any tfvision backbone.

Architecture (swidernet.md Sec. 4 builds on it; deeplab2 `model/decoder/panoptic_deeplab.py`
and `configs/{coco,cityscapes}/panoptic_deeplab/*.textproto` fix the details):

- backbone endpoints "5" (ASPP input, output stride 16 by default), "3" and "2" (strides
  8 and 4; deeplab2's res5, res3, res2);
- two decoders, each an ASPP on "5" followed by two fusion stages: project the stride-8
  (then stride-4) endpoint with a 1x1 conv, upsample the running features to its size
  (bilinear, corners aligned), concatenate, fuse with one 5x5 conv. Semantic decoder:
  ASPP 256, projections 64 / 32, fusion 256 channels. Instance decoder: ASPP 256,
  projections 32 / 16, fusion 128 channels;
- three heads, each a 5x5 conv (256 channels semantic, 32 center and offset) and a 1x1
  conv with bias (truncated-normal 0.01 init): semantic logits, the class-agnostic
  instance center heatmap (1 channel, no activation: trained with MSE against a
  Gaussian) and the (dy, dx) offset to the instance center;
- outputs upsampled from stride 4 to the input size, bilinear with aligned corners; the
  offsets are multiplied by the upsampling ratio (deeplab2 `model/deeplab.py`,
  `_resize_predictions`), so they are in input pixels.

`separable_conv` chooses where depthwise-separable convs replace standard ones:
"all" (ASPP atrous convs, fusion convs and head convs: the original Panoptic-DeepLab
design and swidernet.md Table 3's "Sep-Conv", the fast regime of Table 5), "none"
(Table 3's other rows and the strong regime) or "decoder" (fusion and head convs only:
deeplab2's default `depthwise_separable_conv` for the decoder with its always-standard
ASPP). Separable convs follow deeplab2's `SeparableConv2DSame`: BN + ReLU after both the
depthwise and the pointwise conv.

Where the description and deeplab2 differ, or deeplab2 decides:
1. The ASPP image-pooling branch averages the whole feature map. deeplab2 sets its pool
   size to (training crop / output stride), which is the whole map at the crop size and
   a tiled average pool on larger inputs.
2. COCO uses deeplab2's label layout: 134 semantic channels with channel 0 the void
   class (133 thing and stuff classes + void), label divisor 256.
3. `atrous_rates=None` gives (6, 12, 18) at output stride 16, scaled with the stride
   ((12, 24, 36) at 8, (3, 6, 9) at 32), as deeplab2's configs.

Inputs are [0, 255] pixels; the backbone normalises them. Outputs are a dict of float32
maps at the input resolution: "semantic_logits" [B, H, W, num_classes], "center_heatmap"
[B, H, W, 1], "offsets" [B, H, W, 2] ((dy, dx) in pixels).
"""
import dataclasses
from typing import List

import tensorflow as tf
import tf_keras

from tfvision.layers import recompute
from tfvision.layers.aspp import AtrousSpatialPyramidPooling
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.resize import ResizeToMatch, resize_align_corners
from tfvision.layers.separable_conv import SeparableConvNormAct
from tfvision.losses.panoptic import PanopticDeepLabLoss
from tfvision.models.dense_backbone import AsppSpec, DensePredictionModel
from tfvision.models.registry import Preset, preset_constructor, register_presets
from tfvision.models.releases import deeplab2_cityscapes
from tfvision.models.spec import arg
from tfvision.models.swidernet import FAST_VARIANTS, SWideRNet, variant_name
from tfvision.utils import validation

SEPARABLE_CONV = ("all", "decoder", "none")
OUTPUT_KEYS = ("semantic_logits", "center_heatmap", "offsets")


def _check_filters_list(name, values, length=None):
  """A list of positive integers (of `length` entries when given)."""
  try:
    values = [v for v in values]
  except TypeError:
    raise ValueError(f"{name} must be a list of positive integers, received "
                     f"{name}={values!r}")
  if length is not None and len(values) != length:
    raise ValueError(f"{name} must have one entry per low-level feature ({length}), "
                     f"received {name}={values!r}")
  for value in values:
    validation.check_positive(name, value, integer=True)
  return values


def _conv_block(filters, kernel_size, separable, common, name):
  """A kernel_size conv -> BN -> ReLU, depthwise-separable or standard."""
  if separable:
    return SeparableConvNormAct(filters, kernel_size, name=name, **common)
  return ConvNormAct(filters, kernel_size, name=name, **common)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class PanopticDeepLabDecoder(tf_keras.layers.Layer):
  """One Panoptic-DeepLab decoder: ASPP on the deepest feature, then fusion stages.

  deeplab2 `PanopticDeepLabSingleDecoder`: for each low-level feature (deepest first),
  a 1x1 conv projection, bilinear upsampling (corners aligned) of the running features
  to its size, concatenation [running, projected] and one fusion conv.

  Args:
    aspp_filters: ASPP channels.
    atrous_rates: three ASPP atrous rates.
    decoder_filters: channels of the fusion convs (the output).
    low_level_filters: projection channels, one per low-level feature.
    aspp_projection_only: ASPP reduced to its 1x1 projection (Axial-DeepLab configs).
    aspp_separable: depthwise-separable ASPP atrous convs.
    aspp_dropout_rate: dropout after the ASPP projection.
    fusion_separable: depthwise-separable fusion convs.
    fusion_kernel_size: fusion conv kernel (5 in deeplab2).
    norm, norm_momentum, norm_epsilon, activation, weight_decay: conv settings.
    recompute_grad: in training, recompute the decoder in the backward pass instead of
      keeping its activations (`tfvision.layers.recompute`).
  Input: [high [B, h, w, C5], low_1 [B, h1, w1, C], ...] (deepest first);
  output: [B, h_n, w_n, decoder_filters] at the last low-level feature's size.
  """

  def __init__(self, aspp_filters=256, atrous_rates=(6, 12, 18), decoder_filters=256,
               low_level_filters=(64, 32), aspp_projection_only=False, aspp_separable=False,
               aspp_dropout_rate=0.1, fusion_separable=True, fusion_kernel_size=5,
               norm="batch", norm_momentum=0.99, norm_epsilon=1e-3, activation="relu",
               weight_decay=0.0, recompute_grad=False, **kwargs):
    super().__init__(**kwargs)
    self.recompute_grad = recompute.check_flag(recompute_grad)
    self.aspp_filters = validation.check_positive("aspp_filters", aspp_filters, integer=True)
    self.decoder_filters = validation.check_positive("decoder_filters", decoder_filters,
                                                     integer=True)
    self.low_level_filters = _check_filters_list("low_level_filters", low_level_filters)
    self.aspp_projection_only = bool(aspp_projection_only)
    self.aspp_separable = bool(aspp_separable)
    self.fusion_separable = bool(fusion_separable)
    self.fusion_kernel_size = validation.check_positive("fusion_kernel_size",
                                                        fusion_kernel_size, integer=True)
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.activation = activation
    self.weight_decay = weight_decay
    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  activation=activation, weight_decay=weight_decay)
    self.aspp = AtrousSpatialPyramidPooling(
        aspp_filters, atrous_rates, separable=aspp_separable,
        projection_only=aspp_projection_only, dropout_rate=aspp_dropout_rate, name="aspp",
        **common)
    self.atrous_rates = self.aspp.atrous_rates
    self.aspp_dropout_rate = self.aspp.dropout_rate
    self.projections = [ConvNormAct(f, 1, name=f"projection{i + 1}", **common)
                        for i, f in enumerate(self.low_level_filters)]
    self.fusions = [_conv_block(decoder_filters, fusion_kernel_size, fusion_separable,
                                common, name=f"fusion{i + 1}")
                    for i in range(len(self.low_level_filters))]

  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    return recompute.call(self, self._forward, list(inputs), training)

  @tf.autograph.experimental.do_not_convert
  def _forward(self, inputs, training):
    high, lows = inputs[0], list(inputs[1:])
    if len(lows) != len(self.projections):
      raise ValueError(f"expected {len(self.projections)} low-level features, received "
                       f"{len(lows)}")
    x = self.aspp(high, training=training)
    for low, projection, fusion in zip(lows, self.projections, self.fusions):
      low = projection(low, training=training)
      x = resize_align_corners(x, tf.shape(low)[1:3])
      x = tf.concat([x, low], axis=-1)
      x = fusion(x, training=training)
    return x

  def compute_output_shape(self, input_shape):
    last = tf.TensorShape(input_shape[-1])
    return last[:-1].concatenate([self.decoder_filters])

  def get_config(self):
    config = super().get_config()
    config.update(
        aspp_filters=self.aspp_filters, atrous_rates=self.atrous_rates,
        decoder_filters=self.decoder_filters, low_level_filters=self.low_level_filters,
        aspp_projection_only=self.aspp_projection_only, aspp_separable=self.aspp_separable,
        aspp_dropout_rate=self.aspp_dropout_rate, fusion_separable=self.fusion_separable,
        fusion_kernel_size=self.fusion_kernel_size, norm=self.norm,
        norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon,
        activation=self.activation, weight_decay=self.weight_decay,
        recompute_grad=self.recompute_grad)
    return config


@tf_keras.utils.register_keras_serializable(package="tfvision")
class PanopticDeepLabHead(tf_keras.layers.Layer):
  """A prediction head: kernel_size conv -> BN -> ReLU, then a 1x1 conv with bias.

  deeplab2 `PanopticDeepLabSingleHead`; the final conv is initialised from a truncated
  normal with stddev 0.01 and computes in float32 under mixed precision.

  Args:
    head_filters: channels of the first conv.
    output_filters: predicted channels.
    kernel_size: first conv kernel (5 in deeplab2).
    separable: depthwise-separable first conv.
    norm, norm_momentum, norm_epsilon, activation, weight_decay: conv settings.
    recompute_grad: recompute the head in the backward pass when training.
  Input: [B, h, w, C]; output: [B, h, w, output_filters] float32.
  """

  def __init__(self, head_filters, output_filters, kernel_size=5, separable=True,
               norm="batch", norm_momentum=0.99, norm_epsilon=1e-3, activation="relu",
               weight_decay=0.0, recompute_grad=False, **kwargs):
    super().__init__(**kwargs)
    self.recompute_grad = recompute.check_flag(recompute_grad)
    self.head_filters = validation.check_positive("head_filters", head_filters, integer=True)
    self.output_filters = validation.check_positive("output_filters", output_filters,
                                                    integer=True)
    self.kernel_size = validation.check_positive("kernel_size", kernel_size, integer=True)
    self.separable = bool(separable)
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.activation = activation
    self.weight_decay = weight_decay
    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  activation=activation, weight_decay=weight_decay)
    self.conv = _conv_block(head_filters, kernel_size, separable, common, name="conv")
    self.final_conv = tf_keras.layers.Conv2D(
        output_filters, 1, use_bias=True,
        kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=0.01),
        kernel_regularizer=tf_keras.regularizers.l2(weight_decay) if weight_decay else None,
        dtype="float32", name="final_conv")

  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    return recompute.call(self, self._forward, inputs, training)

  @tf.autograph.experimental.do_not_convert
  def _forward(self, inputs, training):
    return self.final_conv(self.conv(inputs, training=training))

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)[:-1].concatenate([self.output_filters])

  def get_config(self):
    config = super().get_config()
    config.update(head_filters=self.head_filters, output_filters=self.output_filters,
                  kernel_size=self.kernel_size, separable=self.separable, norm=self.norm,
                  norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon,
                  activation=self.activation, weight_decay=self.weight_decay,
                  recompute_grad=self.recompute_grad)
    return config


@dataclasses.dataclass
class PanopticDeepLabSpec(AsppSpec):
  """The decoders and heads of Panoptic-DeepLab (deeplab2's defaults)."""
  high_level_feature: str = arg("5", "backbone endpoint feeding the ASPPs")
  low_level_features: List[str] = arg(["3", "2"], "endpoints fused by the decoders, "
                                      "deepest first")
  aspp_projection_only: bool = arg(False, "ASPP reduced to its 1x1 projection "
                                   "(Axial-DeepLab configs)")
  separable_conv: str = arg("all", "where depthwise-separable convs replace standard "
                            "ones: 'all', 'decoder' or 'none' (module docstring)",
                            choices=SEPARABLE_CONV)
  semantic_aspp_filters: int = arg(256, "semantic ASPP channels", positive=True)
  semantic_decoder_filters: int = arg(256, "semantic fusion channels", positive=True)
  semantic_low_level_filters: List[int] = arg([64, 32], "semantic projections, one per "
                                              "low-level feature", positive=True)
  semantic_head_filters: int = arg(256, "semantic head conv channels", positive=True)
  instance_aspp_filters: int = arg(256, "instance ASPP channels", positive=True)
  instance_decoder_filters: int = arg(128, "instance fusion channels", positive=True)
  instance_low_level_filters: List[int] = arg([32, 16], "instance projections, one per "
                                              "low-level feature", positive=True)
  center_head_filters: int = arg(32, "center head conv channels", positive=True)
  offset_head_filters: int = arg(32, "offset head conv channels", positive=True)
  fusion_kernel_size: int = arg(5, "fusion conv kernel (deeplab2: 5)", positive=True)
  head_kernel_size: int = arg(5, "head conv kernel (deeplab2: 5)", positive=True)
  decoder_recompute_grad: bool = arg(
      False, "recompute both decoders and the three heads in the backward pass when "
      "training (tfvision.layers.recompute; the backbone has its own recompute_grad). "
      "deeplab2 recomputes backbone blocks only; at 1025 x 2049 the stride-4 decoder "
      "activations are most of what a training step keeps")

  def check(self):
    super().check()
    if not self.low_level_features:
      raise ValueError(f"low_level_features must name at least one endpoint, received "
                       f"low_level_features={self.low_level_features!r}")
    for key in ("semantic", "instance"):
      _check_filters_list(f"{key}_low_level_filters", getattr(self, f"{key}_low_level_filters"),
                          len(self.low_level_features))


@tf_keras.utils.register_keras_serializable(package="tfvision")
class PanopticDeepLab(DensePredictionModel):
  """Panoptic-DeepLab: dual ASPP / dual decoder, semantic + center + offset heads.

  `PanopticDeepLab(backbone, num_classes, backbone_kwargs=None, **arguments)`:
  `backbone` is a preset name ("swidernet_0.25_0.5_1", ...), an `include_top=False`
  tfvision backbone model, or its serialised config; `backbone_kwargs` are other
  arguments of a backbone given by name (e.g. `use_se`, `drop_path_rate`).
  """
  ARCH = PanopticDeepLabSpec

  def required_endpoints(self, arch):
    return [arch.high_level_feature] + list(arch.low_level_features)

  def build_head(self, arch, common, inputs, features):
    aspp_separable = arch.separable_conv == "all"
    fusion_separable = arch.separable_conv in ("all", "decoder")
    settings = dict(common.norm.layer_kwargs(), activation=common.activation,
                    weight_decay=common.weight_decay,
                    recompute_grad=arch.decoder_recompute_grad)
    decoder_inputs = [features[arch.high_level_feature]] + [
        features[key] for key in arch.low_level_features]
    decoder_args = dict(atrous_rates=arch.rates(common.output_stride),
                        aspp_projection_only=arch.aspp_projection_only,
                        aspp_separable=aspp_separable,
                        aspp_dropout_rate=arch.aspp_dropout_rate,
                        fusion_separable=fusion_separable,
                        fusion_kernel_size=arch.fusion_kernel_size, **settings)
    semantic = PanopticDeepLabDecoder(
        arch.semantic_aspp_filters, decoder_filters=arch.semantic_decoder_filters,
        low_level_filters=arch.semantic_low_level_filters, name="semantic_decoder",
        **decoder_args)(decoder_inputs)
    instance = PanopticDeepLabDecoder(
        arch.instance_aspp_filters, decoder_filters=arch.instance_decoder_filters,
        low_level_filters=arch.instance_low_level_filters, name="instance_decoder",
        **decoder_args)(decoder_inputs)
    head_args = dict(kernel_size=arch.head_kernel_size, separable=fusion_separable,
                     **settings)
    semantic_logits = PanopticDeepLabHead(arch.semantic_head_filters, common.num_classes,
                                          name="semantic_head", **head_args)(semantic)
    center = PanopticDeepLabHead(arch.center_head_filters, 1, name="center_head",
                                 **head_args)(instance)
    offsets = PanopticDeepLabHead(arch.offset_head_filters, 2, name="offset_head",
                                  **head_args)(instance)
    self._loss_means = None
    return {
        "semantic_logits": ResizeToMatch(name="semantic_upsample")(
            [semantic_logits, inputs]),
        "center_heatmap": ResizeToMatch(name="center_upsample")([center, inputs]),
        "offsets": ResizeToMatch(rescale_offsets=True, name="offset_upsample")(
            [offsets, inputs]),
    }

  # model.fit support: `compile(loss=PanopticDeepLabLoss(...))` with targets dicts.
  def compile(self, *args, **kwargs):
    super().compile(*args, **kwargs)
    self._loss_means = None
    if isinstance(self.loss, PanopticDeepLabLoss):
      with self.distribute_strategy.scope():
        self._loss_means = _LossMeans(self.loss.component_names)

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
    if not isinstance(self.loss, PanopticDeepLabLoss) or self._loss_means is None:
      return super().compute_loss(x, y, y_pred, sample_weight)
    components = self.loss.components(y, y_pred)
    self._loss_means.update(components, sample_weight)
    per_example = components["total"]
    if sample_weight is not None:
      per_example = per_example * tf.cast(tf.reshape(sample_weight, [-1]), per_example.dtype)
    loss = tf.reduce_mean(per_example)
    if self.losses:
      loss += tf.add_n(self.losses)
    # Gradients are summed over replicas, so each replica contributes mean / replicas
    # (what Keras' compiled loss does with `scale_loss_for_distribution`).
    return loss / tf.distribute.get_strategy().num_replicas_in_sync

  def compute_metrics(self, x, y, y_pred, sample_weight):
    if getattr(self, "_loss_means", None) is None:
      return super().compute_metrics(x, y, y_pred, sample_weight)
    # Targets are a dict of six maps and outputs a dict of three, which Keras' compiled
    # metrics cannot pair; panoptic quality comes from tfvision.evaluation instead.
    return self.get_metrics_result()

  @property
  def metrics(self):
    means = getattr(self, "_loss_means", None)
    return super().metrics + (means.metrics() if means is not None else [])


class _LossMeans:
  """Running means of the loss components shown by `fit` ("loss", "semantic_loss", ...).

  A plain Python object, so that Keras does not track the metrics as model weights
  (as it does not track its own compiled-loss container).
  """

  def __init__(self, names):
    self._means = {key: tf_keras.metrics.Mean(name="loss" if key == "total" else key)
                   for key in names}

  def update(self, components, sample_weight=None):
    for key, value in components.items():
      self._means[key].update_state(value, sample_weight=sample_weight)

  def metrics(self):
    return list(self._means.values())


def PanopticDeepLabSWideRNet(w1, w2, l, num_classes=19, separable_conv="all",
                             backbone_kwargs=None, **kwargs):
  """Panoptic-DeepLab with a SWideRNet-(w1, w2, l) backbone (SE + SAC, output stride 16).

  swidernet.md Sec. 4: the fast regime (Table 5) uses separable convs in ASPP and
  decoder ("all"); the strong regime (Table 4) standard convs ("none").
  Args:
    w1, w2, l: SWideRNet scaling factors (any values, not only the presets').
    num_classes: 19 (Cityscapes) or 134 (COCO, deeplab2 layout).
    separable_conv: "all", "decoder" or "none".
    backbone_kwargs: other SWideRNet arguments.
    **kwargs: other PanopticDeepLab arguments.
  """
  kwargs.setdefault("name", "panoptic_deeplab_" + variant_name(w1, w2, l))
  output_stride = kwargs.pop("output_stride", None) or 16
  backbone = SWideRNet(w1, w2, l, include_top=False, output_stride=output_stride,
                       input_shape=kwargs.get("input_shape"),
                       **{"name": variant_name(w1, w2, l), **(backbone_kwargs or {})})
  return PanopticDeepLab(backbone, num_classes, separable_conv=separable_conv, **kwargs)


# Tiny configuration: same layout (both decoders, both fusion stages, all heads), a few
# channels everywhere, the backbone preset's tiny widths.
_TINY_HEADS = dict(
    num_classes=5, semantic_aspp_filters=8, semantic_decoder_filters=8,
    semantic_low_level_filters=[8, 4], semantic_head_filters=8, instance_aspp_filters=8,
    instance_decoder_filters=8, instance_low_level_filters=[4, 4], center_head_filters=4,
    offset_head_filters=4)


def panoptic_variant_name(w1, w2, l):
  """Registry name of Panoptic-DeepLab on SWideRNet-(w1, w2, l)."""
  return "panoptic_deeplab_" + variant_name(w1, w2, l)


CITYSCAPES_SPAN = 65
_AXIAL_DEEPLAB_SOURCE = ("axial-deeplab Sec. 4.2, Table 6 (Cityscapes); deeplab2 "
                         "Axial-DeepLab configs")
PRESETS = register_presets(
    *(Preset(panoptic_variant_name(w1, w2, l), PanopticDeepLab,
             fixed=dict(backbone=variant_name(w1, w2, l), separable_conv="all"),
             defaults=dict(num_classes=19), task="panoptic", default_size=1025,
             tiny=dict(_TINY_HEADS, backbone=variant_name(w1, w2, l) + ".tiny"),
             source="swidernet.md Table 5 (fast regime, Cityscapes 19 classes)")
      for w1, w2, l in FAST_VARIANTS),
    # deeplab2's Axial-DeepLab configs
    # (`configs/cityscapes/axial_deeplab/max_deeplab_{s,l}_backbone_os16.textproto`): the
    # ASPP is reduced to its 1x1 projection because the axial-attention backbone already
    # has a global receptive field; with it the default separable_conv="all" leaves
    # standard convs nowhere but in that projection, which is deeplab2's layout
    # (depthwise-separable 5x5 fusion and heads).
    *(Preset(f"axial_deeplab_{size}_panoptic", PanopticDeepLab,
             fixed=dict(backbone=f"axial_deeplab_{size}", aspp_projection_only=True),
             defaults=dict(num_classes=19, output_stride=16), task="panoptic",
             default_size=1025,
             tiny=dict(_TINY_HEADS, backbone=f"axial_deeplab_{size}.tiny"),
             source=_AXIAL_DEEPLAB_SOURCE)
      for size in ("s", "l")),
    # The paper's Cityscapes setting: every axial layer attends over a local span of 65
    # (Eq. 4; the authors in csrhddlam/axial-deeplab #22 and #28: span 65 for the main
    # panoptic results, which also allows multi-scale inference). The tables keep
    # max_span 255, so deeplab2's global checkpoints load unchanged. The test size uses
    # span 5, so that its 65 x 65 input (17 x 17 at stride 4) is attended locally.
    *(Preset(f"axial_deeplab_{size}_panoptic_span{CITYSCAPES_SPAN}", PanopticDeepLab,
             fixed=dict(backbone=f"axial_deeplab_{size}", aspp_projection_only=True,
                        backbone_kwargs=dict(span=CITYSCAPES_SPAN)),
             defaults=dict(num_classes=19, output_stride=16), task="panoptic",
             default_size=1025,
             tiny=dict(_TINY_HEADS, backbone=f"axial_deeplab_{size}.tiny",
                       backbone_kwargs=dict(span=5)),
             source="axial-deeplab Sec. 4 (Cityscapes, span 65); csrhddlam/axial-deeplab "
                    "#22, #28")
      for size in ("s", "l")),
    # deeplab2's released Cityscapes models, exactly as its configs build them
    # (configs/cityscapes/{panoptic_deeplab,axial_deeplab}/<backbone>_os16.textproto):
    # output stride 16, ASPP rates (6, 12, 18) with standard convs, separable 5 x 5
    # fusion and head convs (deeplab2's `depthwise_separable_conv` decoder), heads
    # 256 / 32 / 32, projections 64 / 32 and 32 / 16; Axial-DeepLab reduces the ASPP
    # to its projection. Columns: backbone, meta-architecture, PQ, mIoU (official
    # script), PQ, mIoU, AP mask (deeplab2's pipeline).
    *(Preset(f"{meta}_{backbone}_os16", PanopticDeepLab,
             fixed=dict(backbone=backbone, separable_conv="decoder", output_stride=16,
                        aspp_projection_only=meta == "axial_deeplab"),
             defaults=dict(num_classes=19), task="panoptic", default_size=1025,
             tiny=dict(_TINY_HEADS, backbone=backbone + ".tiny"),
             source=f"deeplab2 configs/cityscapes/{meta}/{backbone}_os16.textproto",
             weights={"cityscapes": deeplab2_cityscapes(backbone, meta, *numbers)})
      for backbone, meta, numbers in (
          ("wide_resnet41", "panoptic_deeplab", (64.4, 81.5, 64.83, 81.92, 36.07)),
          ("swidernet_sac_1_1_1", "panoptic_deeplab", (64.3, 81.8, 64.81, 82.24, 36.80)),
          ("swidernet_sac_1_1_3", "panoptic_deeplab", (66.6, 82.1, 67.05, 82.67, 38.59)),
          ("swidernet_sac_1_1_4.5", "panoptic_deeplab", (66.8, 82.2, 67.29, 82.74, 39.51)),
          ("axial_swidernet_1_1_1", "axial_deeplab", (66.1, 82.8, 66.63, 83.43, 37.18)),
          ("axial_swidernet_1_1_3", "axial_deeplab", (67.1, 83.5, 67.63, 83.97, 40.00)),
          ("axial_swidernet_1_1_4.5", "axial_deeplab", (68.0, 83.0, 68.53, 83.49, 39.51)),
          ("max_deeplab_s_backbone", "axial_deeplab", (64.5, 82.2, 64.97, 82.63, 35.55)),
          ("max_deeplab_l_backbone", "axial_deeplab", (66.3, 83.1, 66.77, 83.67, 38.09)))))

AxialDeepLabS = preset_constructor(
    "axial_deeplab_s_panoptic", "AxialDeepLabS",
    "Axial-DeepLab-S (axial-deeplab Sec. 4.2): Panoptic-DeepLab on `axial_deeplab_s`, "
    "the ASPP reduced to its projection (deeplab2).", positional=("num_classes",))
AxialDeepLabL = preset_constructor(
    "axial_deeplab_l_panoptic", "AxialDeepLabL",
    "Axial-DeepLab-L (axial-deeplab Sec. 4.2): Panoptic-DeepLab on `axial_deeplab_l`, "
    "the ASPP reduced to its projection (deeplab2).", positional=("num_classes",))
