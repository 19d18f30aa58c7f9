"""Model Garden backbone builders for the tfvision families.

Each builder is registered under the `type` of its config in `tfvision.configs.backbones`
and follows Model Garden's signature, so `official.vision.modeling.backbones.factory.
build_backbone` (used by the Mask R-CNN, RetinaNet and classification tasks) returns a
tfvision model with `include_top=False`: a dict of endpoints "2".."5" and
`output_specs`, what Model Garden's FPN expects.
"""
from official.vision.modeling.backbones import factory

from tfvision.models.botnet import BoTNet, ResNet


def _input_shape(input_specs):
  """(H, W, C) of a Model Garden InputSpec [B, H, W, C]."""
  return list(input_specs.shape[1:])


def _weight_decay(l2_regularizer):
  """Model Garden passes an L2 regulariser; tfvision layers take its factor."""
  if l2_regularizer is None:
    return 0.0
  factor = getattr(l2_regularizer, "l2", None)
  if factor is None:
    raise ValueError(f"tfvision backbones take an L2 regulariser, received "
                     f"l2_regularizer={l2_regularizer!r}")
  return float(factor)


def _norm_activation(norm_activation_config):
  return dict(
      norm="sync_batch" if norm_activation_config.use_sync_bn else "batch",
      norm_momentum=norm_activation_config.norm_momentum,
      norm_epsilon=norm_activation_config.norm_epsilon,
      activation=norm_activation_config.activation)


def _selected(backbone_config, expected):
  if backbone_config.type != expected:
    raise ValueError(f"the {expected!r} builder got another backbone, received "
                     f"backbone_config.type={backbone_config.type!r}")
  return backbone_config.get()


@factory.register_backbone_builder("botnet")
def build_botnet(input_specs, backbone_config, norm_activation_config,
                 l2_regularizer=None):
  """BoTNet backbone from a `tfvision.configs.backbones.BoTNet` config."""
  config = _selected(backbone_config, "botnet")
  return BoTNet(
      depth=config.model_id, output_stride=config.output_stride,
      num_heads=config.num_heads, position_encoding=config.position_encoding,
      content_logits=config.content_logits, max_input_size=config.max_input_size,
      se_ratio=config.se_ratio, se_in_attention_blocks=config.se_in_attention_blocks,
      base_width=config.base_width, drop_path_rate=config.stochastic_depth_drop_rate,
      include_top=False, input_shape=_input_shape(input_specs),
      weight_decay=_weight_decay(l2_regularizer),
      **_norm_activation(norm_activation_config))


@factory.register_backbone_builder("tfvision_resnet")
def build_tfvision_resnet(input_specs, backbone_config, norm_activation_config,
                          l2_regularizer=None):
  """BoTNet's ResNet baseline from a `tfvision.configs.backbones.TfvisionResNet`."""
  config = _selected(backbone_config, "tfvision_resnet")
  return ResNet(
      depth=config.model_id, se_ratio=config.se_ratio, base_width=config.base_width,
      drop_path_rate=config.stochastic_depth_drop_rate, include_top=False,
      input_shape=_input_shape(input_specs), weight_decay=_weight_decay(l2_regularizer),
      **_norm_activation(norm_activation_config))
