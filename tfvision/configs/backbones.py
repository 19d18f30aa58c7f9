"""Backbone configs for Model Garden tasks and the tfvision tasks.

`Backbone` extends Model Garden's backbone OneOf (`official.vision.configs.backbones`)
with one field per tfvision family; `type` selects it, exactly as for Model Garden's own
backbones:

    from tfvision.configs import backbones
    config.task.model.backbone = backbones.Backbone(
        type="botnet", botnet=backbones.BoTNet(model_id=50))

Normalisation and activation come from the task's `norm_activation` config and weight
decay from its L2 regulariser, as for Model Garden's ResNet. Each family has a dataclass
here, a field in `Backbone` and one row in `tfvision.models.factory.FAMILIES` (its
constructor and how the dataclass maps to the constructor's arguments). Importing this
module registers every builder with Model Garden's backbone factory.

Families without a dataclass yet (Axial-ResNet, Pale Transformer until their modules
land) are reachable by registry name through the generic `tfvision` type:

    backbones.Backbone(type="tfvision", tfvision=backbones.TfvisionModel(
        model_name="axial_resnet_s", stochastic_depth_drop_rate=0.1))

Adding a family's own dataclass later takes the same three steps as SWideRNet below.
"""
import dataclasses
from typing import Any, Dict, List, Optional

from official.modeling import hyperparams
from official.vision.configs import backbones as model_garden_backbones

import tfvision.models.factory  # noqa: F401  (registers the builders)


@dataclasses.dataclass
class SWideRNet(hyperparams.Config):
  """tfvision.models.SWideRNet (type "swidernet"); fields as its arguments.

  stochastic_depth_drop_rate is the constant drop-path rate of swidernet.md Sec. 4.1
  (survival 0.8); output_stride 16 / 8 gives the atrous dense-prediction backbone.
  """
  w1: float = 1.0
  w2: float = 1.0
  l: float = 1.0
  use_se: bool = True
  se_beyond_stride: int = 2
  sac_beyond_stride: int = 32
  output_stride: int = 32
  multi_grid: Optional[List[int]] = None
  stochastic_depth_drop_rate: float = 0.2
  drop_path_schedule: str = "constant"
  drop_path_beyond_stride: int = 4


@dataclasses.dataclass
class ResNeSt(hyperparams.Config):
  """tfvision.models.ResNeSt (type "resnest"); model_id is the depth (50 ... 269).

  output_stride 8 is the dilated backbone of resnest.md Sec. 7.3 (DeepLabV3).
  """
  model_id: int = 50
  radix: int = 2
  cardinality: int = 1
  base_width: int = 64
  fast: bool = False
  stem_width: Optional[int] = None
  width_multiplier: float = 1.0
  output_stride: int = 32
  dropblock_rate: float = 0.1
  stochastic_depth_drop_rate: float = 0.0
  zero_init_last_bn: bool = True


@dataclasses.dataclass
class BoTNet(hyperparams.Config):
  """tfvision.models.BoTNet as a backbone (type "botnet"); fields as its arguments.

  model_id is the depth (50, 101, 152, 200; S1: 50, 59, 77, 110, 128) and
  output_stride=16 gives BoTNet-S1. The scaled T3..T7 models are S1 with
  se_ratio=0.0625.
  """
  model_id: int = 50
  output_stride: int = 32
  num_heads: int = 4
  position_encoding: Optional[str] = "relative"
  content_logits: bool = True
  max_input_size: int = 1024
  se_ratio: float = 0.0
  se_in_attention_blocks: bool = True
  base_width: int = 64
  stochastic_depth_drop_rate: float = 0.0


@dataclasses.dataclass
class TfvisionResNet(hyperparams.Config):
  """tfvision.models.ResNet, BoTNet's baseline (type "tfvision_resnet")."""
  model_id: int = 50
  se_ratio: float = 0.0
  base_width: int = 64
  stochastic_depth_drop_rate: float = 0.0


@dataclasses.dataclass
class TfvisionModel(hyperparams.Config):
  """Any registered tfvision model by name (type "tfvision").

  Attributes:
    model_name: a `tfvision.models.list_models()` name.
    output_stride: passed to the constructor when non-zero.
    stochastic_depth_drop_rate: passed as `drop_path_rate` when not None.
    kwargs: other constructor arguments. A YAML file may override the keys an
      experiment sets here; new keys need `override(..., is_strict=False)`.
  """
  model_name: str = ""
  output_stride: int = 0
  stochastic_depth_drop_rate: Optional[float] = None
  kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Backbone(model_garden_backbones.Backbone):
  """Model Garden's backbones plus the tfvision families."""
  swidernet: SWideRNet = dataclasses.field(default_factory=SWideRNet)
  resnest: ResNeSt = dataclasses.field(default_factory=ResNeSt)
  botnet: BoTNet = dataclasses.field(default_factory=BoTNet)
  tfvision_resnet: TfvisionResNet = dataclasses.field(default_factory=TfvisionResNet)
  tfvision: TfvisionModel = dataclasses.field(default_factory=TfvisionModel)
