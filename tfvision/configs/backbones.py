"""Backbone configs for Model Garden tasks (Mask R-CNN, RetinaNet, classification).

`Backbone` extends Model Garden's backbone OneOf (`official.vision.configs.backbones`)
with one field per tfvision family; `type` selects it, exactly as for Model Garden's own
backbones:

    from tfvision.configs import backbones
    config.task.model.backbone = backbones.Backbone(
        type="botnet", botnet=backbones.BoTNet(model_id=50))

Normalisation and activation come from the task's `norm_activation` config and weight
decay from its L2 regulariser, as for Model Garden's ResNet. Each family adds its
dataclass here and a field to `Backbone`; its builder goes in `tfvision.models.factory`.
Importing this module registers the builders.
"""
import dataclasses
from typing import Optional

from official.modeling import hyperparams
from official.vision.configs import backbones as model_garden_backbones

import tfvision.models.factory  # noqa: F401  (registers the builders)


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
class Backbone(model_garden_backbones.Backbone):
  """Model Garden's backbones plus the tfvision families."""
  botnet: BoTNet = dataclasses.field(default_factory=BoTNet)
  tfvision_resnet: TfvisionResNet = dataclasses.field(default_factory=TfvisionResNet)
