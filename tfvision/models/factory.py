"""Models from `tfvision.configs.backbones` configs, for Model Garden and our tasks.

A `Backbone` config's field for a family *is* that family's spec (`SWideRNetSpec`, ...),
so this module only maps the config type to the family's model class and adds what the
task decides: normalisation and activation (Model Garden's `norm_activation`), weight
decay, the head and the input. Nothing here restates a family argument.

- `build_model_from_config(backbone_config, ...)` returns the tfvision model itself,
  taking raw [0, 255] pixels and normalising them as its paper did; the tfvision tasks
  use it (their input pipelines feed raw pixels).
- The builders registered with Model Garden's backbone factory (one per config type)
  serve Model Garden's own tasks (Mask R-CNN, RetinaNet, ...), whose parsers normalise
  images with Model Garden's ImageNet mean / std: the backbone is built with
  `input_normalization="model_garden"`, so its one Normalize layer maps those inputs to
  its paper's normalisation (the identity for the ImageNet-normalised families). The
  weights are those of the raw-pixel model, so a checkpoint serves either way.

The returned backbones follow Model Garden's contract: a dict of endpoints "2".."5"
and `output_specs`, what Model Garden's FPN and ASPP decoders expect.
"""
from official.vision.modeling.backbones import factory

from tfvision.models.axial_resnet import AxialResNet, AxialSWideRNet
from tfvision.models.botnet import BoTNet, ResNet
from tfvision.models.pale import PaleTransformer
from tfvision.models.resnest import ResNeSt
from tfvision.models.spec import NormSpec
from tfvision.models.swidernet import SWideRNet

# Backbone config type -> the family's model class (its ARCH is the config's type).
FAMILIES = {
    "swidernet": SWideRNet,
    "axial_resnet": AxialResNet,
    "axial_swidernet": AxialSWideRNet,
    "resnest": ResNeSt,
    "botnet": BoTNet,
    "tfvision_resnet": ResNet,
    "pale": PaleTransformer,
}


def family_model(backbone_config):
  """The model class of a `Backbone` OneOf config, with a clear error if unknown."""
  family_type = getattr(backbone_config, "type", None)
  if family_type not in FAMILIES:
    raise ValueError(f"unknown tfvision backbone, received backbone.type={family_type!r}; "
                     f"the tfvision types are {sorted(FAMILIES)}")
  return FAMILIES[family_type]


def norm_activation_arguments(norm_activation_config):
  """`norm` and `activation` arguments from Model Garden's `NormActivation` config."""
  if norm_activation_config is None:
    return {}
  return dict(norm=NormSpec.from_norm_activation(norm_activation_config).values(),
              activation=norm_activation_config.activation)


def build_model_from_config(backbone_config, norm_activation_config=None, weight_decay=0.0,
                            **arguments):
  """The tfvision model described by a `tfvision.configs.backbones.Backbone` config.

  Args:
    backbone_config: a `Backbone` OneOf whose `type` is a tfvision family.
    norm_activation_config: Model Garden's `NormActivation` (None keeps the family's
      defaults); every family honours its batch-norm kind, momentum, epsilon and
      activation (or raises, for ResNeSt's fixed ReLU).
    weight_decay: L2 factor on the kernels.
    **arguments: the shared arguments the task decides (include_top, num_classes,
      input_shape, dropout_rate, ...).

  Returns:
    The model; it takes raw [0, 255] pixels unless `input_normalization` says otherwise.
  """
  model_class = family_model(backbone_config)
  values = backbone_config.get().values()
  values.update(norm_activation_arguments(norm_activation_config))
  values.update(weight_decay=weight_decay, **arguments)
  return model_class(**values)


def _weight_decay(l2_regularizer):
  """Model Garden passes an L2 regulariser; tfvision layers take its factor."""
  if l2_regularizer is None:
    return 0.0
  factor = getattr(l2_regularizer, "l2", None)
  if factor is None:
    raise ValueError(f"tfvision backbones take an L2 regulariser, received "
                     f"l2_regularizer={l2_regularizer!r}")
  return float(factor)


def build_model_garden_backbone(input_specs, backbone_config, norm_activation_config,
                                l2_regularizer=None, **kwargs):
  """Model Garden's builder signature -> the backbone on Model Garden-normalised inputs."""
  del kwargs
  return build_model_from_config(
      backbone_config, norm_activation_config, _weight_decay(l2_regularizer),
      include_top=False, input_shape=list(input_specs.shape[1:]),
      input_normalization="model_garden")


def _register_with_model_garden():
  for family_type in FAMILIES:
    factory.register_backbone_builder(family_type)(build_model_garden_backbone)


_register_with_model_garden()
