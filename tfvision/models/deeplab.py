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
(deeplab2 `model/deeplab.py`). `atrous_rates=None` gives (6, 12, 18) at output stride
16, (12, 24, 36) at 8 and (3, 6, 9) at 32. `separable_aspp` switches the ASPP's atrous
convs to depthwise-separable ones (deeplab2's are standard).
"""
import tf_keras

from tfvision.layers.aspp import AtrousSpatialPyramidPooling, default_atrous_rates
from tfvision.layers.conv import ConvNormAct
from tfvision.layers.resize import ResizeToMatch
from tfvision.layers.separable_conv import SeparableConvNormAct
from tfvision.models.dense_backbone import DensePredictionModel
from tfvision.models.registry import register_model
from tfvision.utils import validation


def _common_config(backbone, num_classes, backbone_kwargs, output_stride, input_shape,
                   atrous_rates, drop_path_rate):
  return dict(
      backbone=backbone, num_classes=num_classes,
      backbone_kwargs=None if backbone_kwargs is None else dict(backbone_kwargs),
      output_stride=output_stride,
      input_shape=None if input_shape is None else list(input_shape),
      atrous_rates=None if atrous_rates is None else list(atrous_rates),
      drop_path_rate=drop_path_rate)


def _classifier(num_classes, weight_decay):
  return tf_keras.layers.Conv2D(
      num_classes, 1, use_bias=True,
      kernel_regularizer=tf_keras.regularizers.l2(weight_decay) if weight_decay else None,
      dtype="float32", name="classifier")


@tf_keras.utils.register_keras_serializable(package="tfvision")
class DeepLabV3(DensePredictionModel):
  """DeepLabV3: ASPP + 3x3 conv + 1x1 classifier on any tfvision backbone.

  Args:
    backbone: registry name, an `include_top=False` backbone model or its config.
    num_classes: semantic classes.
    backbone_kwargs: extra arguments of a backbone given by name.
    output_stride: 8 (ResNeSt Sec. 7.3), 16 or 32.
    input_shape: (H, W, 3) or None.
    feature: the endpoint feeding the ASPP.
    atrous_rates: ASPP rates or None (scaled with the output stride).
    aspp_filters, head_filters: 256, 256.
    separable_aspp: depthwise-separable ASPP atrous convs.
    aspp_dropout_rate: dropout after the ASPP projection (0.1).
    drop_path_rate: for a backbone given by name; None keeps its default.
    norm, norm_momentum, norm_epsilon, activation, weight_decay: head settings.
    name: model name.
  Output: [B, H, W, num_classes] float32 logits at the input resolution.
  """

  def __init__(self, backbone, num_classes, backbone_kwargs=None, output_stride=16,
               input_shape=None, feature="5", atrous_rates=None, aspp_filters=256,
               head_filters=256, separable_aspp=False, aspp_dropout_rate=0.1,
               drop_path_rate=None, norm="batch", norm_momentum=0.99, norm_epsilon=1e-3,
               activation="relu", weight_decay=0.0, name="deeplabv3"):
    config = _common_config(backbone, num_classes, backbone_kwargs, output_stride,
                            input_shape, atrous_rates, drop_path_rate)
    config.update(feature=feature, aspp_filters=aspp_filters, head_filters=head_filters,
                  separable_aspp=separable_aspp, aspp_dropout_rate=aspp_dropout_rate,
                  norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  activation=activation, weight_decay=weight_decay, name=name)
    self._validate_dense_common(config)
    for key in ("aspp_filters", "head_filters"):
      validation.check_positive(key, config[key], integer=True)
    backbone_model, config["backbone"] = self._backbone(config, [feature])
    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  activation=activation, weight_decay=weight_decay)
    rates = atrous_rates if atrous_rates is not None else default_atrous_rates(output_stride)

    inputs = self._image_input(input_shape)
    features = backbone_model(inputs)
    x = AtrousSpatialPyramidPooling(aspp_filters, rates, separable=separable_aspp,
                                    dropout_rate=aspp_dropout_rate, name="aspp",
                                    **common)(features[feature])
    x = ConvNormAct(head_filters, 3, name="head_conv", **common)(x)
    logits = _classifier(num_classes, weight_decay)(x)
    logits = ResizeToMatch(name="upsample")([logits, inputs])
    self._finish_dense(config, inputs, logits, name)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class DeepLabV3Plus(DensePredictionModel):
  """DeepLabV3+: ASPP + stride-4 decoder + 1x1 classifier on any tfvision backbone.

  Args:
    backbone, num_classes, backbone_kwargs, output_stride, input_shape, feature,
    atrous_rates, aspp_filters, separable_aspp, aspp_dropout_rate, drop_path_rate:
      as DeepLabV3.
    low_level_feature: the stride-4 endpoint ("2").
    low_level_filters: its projection channels (48).
    decoder_filters: channels of the two 3x3 separable fusion convs (256).
    norm, norm_momentum, norm_epsilon, activation, weight_decay: decoder settings.
    name: model name.
  Output: [B, H, W, num_classes] float32 logits at the input resolution.
  """

  def __init__(self, backbone, num_classes, backbone_kwargs=None, output_stride=16,
               input_shape=None, feature="5", low_level_feature="2", atrous_rates=None,
               aspp_filters=256, low_level_filters=48, decoder_filters=256,
               separable_aspp=False, aspp_dropout_rate=0.1, drop_path_rate=None,
               norm="batch", norm_momentum=0.99, norm_epsilon=1e-3, activation="relu",
               weight_decay=0.0, name="deeplabv3plus"):
    config = _common_config(backbone, num_classes, backbone_kwargs, output_stride,
                            input_shape, atrous_rates, drop_path_rate)
    config.update(feature=feature, low_level_feature=low_level_feature,
                  aspp_filters=aspp_filters, low_level_filters=low_level_filters,
                  decoder_filters=decoder_filters, separable_aspp=separable_aspp,
                  aspp_dropout_rate=aspp_dropout_rate, norm=norm,
                  norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  activation=activation, weight_decay=weight_decay, name=name)
    self._validate_dense_common(config)
    for key in ("aspp_filters", "low_level_filters", "decoder_filters"):
      validation.check_positive(key, config[key], integer=True)
    backbone_model, config["backbone"] = self._backbone(config, [feature,
                                                                 low_level_feature])
    common = dict(norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                  activation=activation, weight_decay=weight_decay)
    rates = atrous_rates if atrous_rates is not None else default_atrous_rates(output_stride)

    inputs = self._image_input(input_shape)
    features = backbone_model(inputs)
    high = AtrousSpatialPyramidPooling(aspp_filters, rates, separable=separable_aspp,
                                       dropout_rate=aspp_dropout_rate, name="aspp",
                                       **common)(features[feature])
    low = ConvNormAct(low_level_filters, 1, name="low_level_projection",
                      **common)(features[low_level_feature])
    high = ResizeToMatch(name="aspp_upsample")([high, low])
    x = tf_keras.layers.Concatenate(name="concat")([high, low])
    x = SeparableConvNormAct(decoder_filters, 3, name="fusion1", **common)(x)
    x = SeparableConvNormAct(decoder_filters, 3, name="fusion2", **common)(x)
    logits = _classifier(num_classes, weight_decay)(x)
    logits = ResizeToMatch(name="upsample")([logits, inputs])
    self._finish_dense(config, inputs, logits, name)


_TINY = dict(backbone_kwargs=dict(w1=1 / 16, w2=1 / 16), num_classes=5, aspp_filters=8)

register_model(
    "deeplabv3_swidernet_0.25_0.25_0.75", DeepLabV3,
    defaults=dict(backbone="swidernet_0.25_0.25_0.75", num_classes=19,
                  name="deeplabv3_swidernet_0.25_0.25_0.75"),
    family="deeplab", task="semantic", default_size=1025, tiny=dict(_TINY, head_filters=8),
    tiny_size=65, paper="DeepLabV3 (deeplab2 deeplabv3.py), Cityscapes 19 classes")
register_model(
    "deeplabv3plus_swidernet_0.25_0.25_0.75", DeepLabV3Plus,
    defaults=dict(backbone="swidernet_0.25_0.25_0.75", num_classes=19,
                  name="deeplabv3plus_swidernet_0.25_0.25_0.75"),
    family="deeplab", task="semantic", default_size=1025,
    tiny=dict(_TINY, low_level_filters=4, decoder_filters=8), tiny_size=65,
    paper="DeepLabV3+ (deeplab2 deeplabv3plus.py), Cityscapes 19 classes")
