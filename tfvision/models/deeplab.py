"""DeepLabV3 (Chen et al. 2017) and DeepLabV3+ (Chen et al. 2018) semantic segmentation.

For the semantic-segmentation uses of the families: ResNeSt Sec. 7.3 (DeepLabV3 on a
dilated stride-8 backbone, logits upsampled to the input), Pale / BoTNet semantic use.
Layouts follow deeplab2 (`model/decoder/deeplabv3.py`, `deeplabv3plus.py`):

- DeepLabV3: ASPP (256) on the deepest endpoint, a 3x3 conv -> BN -> ReLU (256), a 1x1
  classifier with bias;
- DeepLabV3+: ASPP on the deepest endpoint, upsampled (bilinear, corners aligned) to the
  stride-4 endpoint, concatenated with its 1x1 projection (48 channels), two 3x3
  depthwise-separable conv -> BN -> ReLU (256), a 1x1 classifier.

Logits are float32 and upsampled to the input size, bilinear with aligned corners
(deeplab2 `model/deeplab.py`). `atrous_rates=None` gives (6, 12, 18) at the backbone's
output stride 16, (12, 24, 36) at 8 and (3, 6, 9) at 32. `separable_aspp` switches the
ASPP's atrous convs to depthwise-separable ones (deeplab2's are standard).
"""
import dataclasses

import tf_keras

from tfvision.layers.aspp import AtrousSpatialPyramidPooling
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.resize import ResizeToMatch
from tfvision.layers.separable_conv import SeparableConvNormAct
from tfvision.models.dense_backbone import AsppSpec, DensePredictionModel
from tfvision.models.registry import Preset, register_presets
from tfvision.models.spec import arg


@dataclasses.dataclass
class DeepLabSpec(AsppSpec):
  """The arguments DeepLabV3 and DeepLabV3+ share."""
  feature: str = arg("5", "backbone endpoint feeding the ASPP")
  aspp_filters: int = arg(256, "ASPP channels", positive=True)
  separable_aspp: bool = arg(False, "depthwise-separable ASPP atrous convs (deeplab2's "
                             "are standard)")


@dataclasses.dataclass
class DeepLabV3Spec(DeepLabSpec):
  """DeepLabV3's head: ASPP, a 3x3 conv, a 1x1 classifier."""
  head_filters: int = arg(256, "channels of the 3x3 conv after the ASPP", positive=True)


@dataclasses.dataclass
class DeepLabV3PlusSpec(DeepLabSpec):
  """DeepLabV3+'s decoder: ASPP, a stride-4 fusion, a 1x1 classifier."""
  low_level_feature: str = arg("2", "the stride-4 endpoint fused by the decoder")
  low_level_filters: int = arg(48, "its 1x1 projection's channels", positive=True)
  decoder_filters: int = arg(256, "channels of the two 3x3 separable fusion convs",
                             positive=True)


def _classifier(num_classes, weight_decay):
  return tf_keras.layers.Conv2D(
      num_classes, 1, use_bias=True,
      kernel_regularizer=tf_keras.regularizers.l2(weight_decay) if weight_decay else None,
      dtype="float32", name="classifier")


class _DeepLab(DensePredictionModel):
  """The ASPP both heads start with."""

  def _aspp(self, arch, common, settings):
    return AtrousSpatialPyramidPooling(
        arch.aspp_filters, arch.rates(common.output_stride), separable=arch.separable_aspp,
        dropout_rate=arch.aspp_dropout_rate, name="aspp", **settings)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class DeepLabV3(_DeepLab):
  """DeepLabV3: ASPP + 3x3 conv + 1x1 classifier on any tfvision backbone.

  `DeepLabV3(backbone, num_classes, backbone_kwargs=None, **arguments)`; `backbone` as
  for PanopticDeepLab. Output: [B, H, W, num_classes] float32 logits at the input size.
  """
  ARCH = DeepLabV3Spec
  DEFAULT_NAME = "deeplabv3"

  def required_endpoints(self, arch):
    return [arch.feature]

  def build_head(self, arch, common, inputs, features):
    settings = dict(common.norm.layer_kwargs(), activation=common.activation,
                    weight_decay=common.weight_decay)
    x = self._aspp(arch, common, settings)(features[arch.feature])
    x = ConvNormAct(arch.head_filters, 3, name="head_conv", **settings)(x)
    logits = _classifier(common.num_classes, common.weight_decay)(x)
    return ResizeToMatch(name="upsample")([logits, inputs])


@tf_keras.utils.register_keras_serializable(package="tfvision")
class DeepLabV3Plus(_DeepLab):
  """DeepLabV3+: ASPP + stride-4 decoder + 1x1 classifier on any tfvision backbone.

  `DeepLabV3Plus(backbone, num_classes, backbone_kwargs=None, **arguments)`; `backbone`
  as for PanopticDeepLab. Output: [B, H, W, num_classes] float32 logits at the input
  size.
  """
  ARCH = DeepLabV3PlusSpec
  DEFAULT_NAME = "deeplabv3plus"

  def required_endpoints(self, arch):
    return [arch.feature, arch.low_level_feature]

  def build_head(self, arch, common, inputs, features):
    settings = dict(common.norm.layer_kwargs(), activation=common.activation,
                    weight_decay=common.weight_decay)
    high = self._aspp(arch, common, settings)(features[arch.feature])
    low = ConvNormAct(arch.low_level_filters, 1, name="low_level_projection",
                      **settings)(features[arch.low_level_feature])
    high = ResizeToMatch(name="aspp_upsample")([high, low])
    x = tf_keras.layers.Concatenate(name="concat")([high, low])
    x = SeparableConvNormAct(arch.decoder_filters, 3, name="fusion1", **settings)(x)
    x = SeparableConvNormAct(arch.decoder_filters, 3, name="fusion2", **settings)(x)
    logits = _classifier(common.num_classes, common.weight_decay)(x)
    return ResizeToMatch(name="upsample")([logits, inputs])


_BACKBONE = "swidernet_0.25_0.25_0.75"
PRESETS = register_presets(
    Preset("deeplabv3_" + _BACKBONE, DeepLabV3, fixed=dict(backbone=_BACKBONE),
           defaults=dict(num_classes=19), task="semantic", default_size=1025,
           tiny=dict(backbone=_BACKBONE + ".tiny", num_classes=5, aspp_filters=8,
                     head_filters=8),
           source="DeepLabV3 (deeplab2 deeplabv3.py), Cityscapes 19 classes"),
    Preset("deeplabv3plus_" + _BACKBONE, DeepLabV3Plus, fixed=dict(backbone=_BACKBONE),
           defaults=dict(num_classes=19), task="semantic", default_size=1025,
           tiny=dict(backbone=_BACKBONE + ".tiny", num_classes=5, aspp_filters=8,
                     low_level_filters=4, decoder_filters=8),
           source="DeepLabV3+ (deeplab2 deeplabv3plus.py), Cityscapes 19 classes"))
