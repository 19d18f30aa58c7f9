"""Backbone configs for Model Garden tasks and the tfvision tasks.

`Backbone` extends Model Garden's backbone OneOf (`official.vision.configs.backbones`)
with one field per tfvision family, and each field's type is the family's spec itself
(`tfvision.models.spec`): its keys are the constructor's argument names, and an unknown
key in a YAML file or `--params_override` fails naming the family and its keys. `type`
selects the family, exactly as for Model Garden's own backbones; a preset's values fill a
config with `preset_config`:

    from tfvision.configs import backbones
    config.task.model.backbone = backbones.preset_config("botnet50")
    config.task.model.backbone = backbones.Backbone(
        type="swidernet", swidernet=backbones.SWideRNetSpec(w1=0.25, w2=0.5, l=1.0))

Normalisation and activation come from the task's `norm_activation` config and weight
decay from its L2 regulariser, as for Model Garden's ResNet. Importing this module
registers every builder with Model Garden's backbone factory.
"""
import dataclasses

from official.vision.configs import backbones as model_garden_backbones

from tfvision.models import factory
from tfvision.models.axial_resnet import AxialResNetSpec, AxialSWideRNetSpec
from tfvision.models.botnet import BoTNetSpec, ResNetSpec
from tfvision.models.pale import PaleTransformerSpec
from tfvision.models.registry import get_preset
from tfvision.models.resnest import ResNeStSpec
from tfvision.models.swidernet import SWideRNetSpec

__all__ = ["AxialResNetSpec", "AxialSWideRNetSpec", "Backbone", "BoTNetSpec", "ResNeStSpec",
           "ResNetSpec", "PaleTransformerSpec", "SWideRNetSpec", "preset_config"]


@dataclasses.dataclass
class Backbone(model_garden_backbones.Backbone):
  """Model Garden's backbones plus the tfvision families (the field is the type)."""
  swidernet: SWideRNetSpec = dataclasses.field(default_factory=SWideRNetSpec)
  axial_resnet: AxialResNetSpec = dataclasses.field(default_factory=AxialResNetSpec)
  axial_swidernet: AxialSWideRNetSpec = dataclasses.field(default_factory=AxialSWideRNetSpec)
  resnest: ResNeStSpec = dataclasses.field(default_factory=ResNeStSpec)
  botnet: BoTNetSpec = dataclasses.field(default_factory=BoTNetSpec)
  tfvision_resnet: ResNetSpec = dataclasses.field(default_factory=ResNetSpec)
  pale: PaleTransformerSpec = dataclasses.field(default_factory=PaleTransformerSpec)


def preset_config(name, **overrides):
  """A `Backbone` config holding preset `name`'s architecture, with `overrides`.

  Args:
    name: a backbone preset (`tfvision.models.list_models()`, or a `<preset>.tiny`).
    **overrides: other values of the family's spec (`output_stride=16`, ...); the
      arguments the preset's name encodes cannot change.
  """
  preset = get_preset(name)
  family_type = next((key for key, model in factory.FAMILIES.items()
                      if model is preset.model), None)
  if family_type is None:
    raise ValueError(f"preset {name!r} is not a backbone family (it is a "
                     f"{preset.model.__name__}), received name={name!r}")
  preset.check_overrides(overrides)
  arguments = {**preset.arguments(), **overrides}
  spec_class = preset.model.ARCH
  values = {key: value for key, value in arguments.items()
            if key in spec_class.field_names()}
  return Backbone(type=family_type, **{family_type: spec_class.create(values)})
