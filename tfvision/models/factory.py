"""Builders from `tfvision.configs.backbones` configs, for Model Garden and our tasks.

Two entry points share one table (`FAMILIES`: config type -> constructor and argument
mapping):

- `build_model_from_config(backbone_config, ...)` returns the tfvision model itself,
  taking raw [0, 255] pixels and normalising them as its paper did. The tfvision tasks
  (`tfvision.tasks`) use it: their input pipelines feed raw pixels.
- The builders registered with Model Garden's backbone factory (one per `type`:
  "swidernet", "resnest", "botnet", "tfvision_resnet", "tfvision") serve Model Garden's
  own tasks (Mask R-CNN, RetinaNet, classification, segmentation). Those tasks' parsers
  normalise images with Model Garden's ImageNet mean / std
  (`official.vision.ops.preprocess_ops.MEAN_RGB`, `STDDEV_RGB`), so the registered
  builders return a `ModelGardenBackbone`: the tfvision backbone behind a layer that
  undoes that normalisation exactly (x * std + mean, one multiply-add per pixel). The
  backbone then normalises as its paper did (SWideRNet: x / 127.5 - 1; ResNeSt, BoTNet:
  ImageNet mean / std), the same whichever pipeline feeds it, so a checkpoint trained in
  one setting is valid in the other and exported models keep taking raw pixels
  (`model.backbone`).

The returned backbones follow Model Garden's contract: a dict of endpoints "2".."5"
and `output_specs`, what Model Garden's FPN and ASPP decoders expect.
"""
import dataclasses
import re
from typing import Any, Callable, Dict

import tf_keras
from official.vision.modeling.backbones import factory
from official.vision.ops import preprocess_ops

from tfvision.layers.preprocessing import Normalize
from tfvision.models.botnet import BoTNet, ResNet
from tfvision.models.registry import create_model, get_model_entry
from tfvision.models.resnest import ResNeSt
from tfvision.models.swidernet import SWideRNet


@dataclasses.dataclass(frozen=True)
class FamilyBuilder:
  """How one backbone config type becomes a tfvision model.

  Attributes:
    constructor: the family constructor (or a callable taking the config).
    arguments: maps the config dataclass to constructor keyword arguments.
    takes_activation: the constructor accepts `activation` (others are ReLU networks
      and refuse another activation).
  """
  constructor: Callable[..., Any]
  arguments: Callable[[Any], Dict[str, Any]]
  takes_activation: bool = False


def _swidernet_arguments(config):
  return dict(w1=config.w1, w2=config.w2, l=config.l, use_se=config.use_se,
              se_beyond_stride=config.se_beyond_stride,
              sac_beyond_stride=config.sac_beyond_stride,
              output_stride=config.output_stride,
              multi_grid=None if config.multi_grid is None else list(config.multi_grid),
              drop_path_rate=config.stochastic_depth_drop_rate,
              drop_path_schedule=config.drop_path_schedule,
              drop_path_beyond_stride=config.drop_path_beyond_stride)


def _resnest_arguments(config):
  return dict(depth=config.model_id, radix=config.radix, cardinality=config.cardinality,
              base_width=config.base_width, fast=config.fast, stem_width=config.stem_width,
              width_multiplier=config.width_multiplier, output_stride=config.output_stride,
              dropblock_rate=config.dropblock_rate,
              drop_path_rate=config.stochastic_depth_drop_rate,
              zero_init_last_bn=config.zero_init_last_bn)


def _botnet_arguments(config):
  return dict(depth=config.model_id, output_stride=config.output_stride,
              num_heads=config.num_heads, position_encoding=config.position_encoding,
              content_logits=config.content_logits, max_input_size=config.max_input_size,
              se_ratio=config.se_ratio, se_in_attention_blocks=config.se_in_attention_blocks,
              base_width=config.base_width,
              drop_path_rate=config.stochastic_depth_drop_rate)


def _resnet_arguments(config):
  return dict(depth=config.model_id, se_ratio=config.se_ratio, base_width=config.base_width,
              drop_path_rate=config.stochastic_depth_drop_rate)


def _registry_arguments(config):
  if not config.model_name:
    raise ValueError("the 'tfvision' backbone needs a registry name, received "
                     "backbone.tfvision.model_name=''")
  get_model_entry(config.model_name)  # a clear error for unknown names
  arguments = dict(config.kwargs.as_dict() if hasattr(config.kwargs, "as_dict")
                   else config.kwargs)
  if config.output_stride:
    arguments["output_stride"] = config.output_stride
  if config.stochastic_depth_drop_rate is not None:
    arguments["drop_path_rate"] = config.stochastic_depth_drop_rate
  return dict(arguments, _registry_name=config.model_name)


# Arguments the generic builder passes from the task's norm_activation / regulariser;
# families without them (Axial-ResNet has no `activation`) are built without.
_SHARED_ARGUMENTS = ("norm", "norm_momentum", "norm_epsilon", "activation", "weight_decay")
_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def _create_by_name(_registry_name, **kwargs):
  while True:
    try:
      return create_model(_registry_name, **kwargs)
    except TypeError as error:
      match = _UNEXPECTED.search(str(error))
      if not match or match.group(1) not in _SHARED_ARGUMENTS or match.group(1) not in kwargs:
        raise
      kwargs.pop(match.group(1))


FAMILIES = {
    "swidernet": FamilyBuilder(SWideRNet, _swidernet_arguments),
    "resnest": FamilyBuilder(ResNeSt, _resnest_arguments),
    "botnet": FamilyBuilder(BoTNet, _botnet_arguments, takes_activation=True),
    "tfvision_resnet": FamilyBuilder(ResNet, _resnet_arguments, takes_activation=True),
    # Any registered model by name (Axial-ResNet and Pale until their dataclasses exist).
    "tfvision": FamilyBuilder(_create_by_name, _registry_arguments, takes_activation=True),
}


def _weight_decay(l2_regularizer):
  """Model Garden passes an L2 regulariser; tfvision layers take its factor."""
  if l2_regularizer is None:
    return 0.0
  factor = getattr(l2_regularizer, "l2", None)
  if factor is None:
    raise ValueError(f"tfvision backbones take an L2 regulariser, received "
                     f"l2_regularizer={l2_regularizer!r}")
  return float(factor)


def _norm_activation(norm_activation_config, family_type, takes_activation):
  if norm_activation_config is None:
    return {}
  arguments = dict(
      norm="sync_batch" if norm_activation_config.use_sync_bn else "batch",
      norm_momentum=norm_activation_config.norm_momentum,
      norm_epsilon=norm_activation_config.norm_epsilon)
  activation = norm_activation_config.activation
  if takes_activation:
    arguments["activation"] = activation
  elif activation != "relu":
    raise ValueError(f"the {family_type!r} backbone is a ReLU network, received "
                     f"norm_activation.activation={activation!r}")
  return arguments


def family_builder(backbone_config):
  """The FamilyBuilder of a `Backbone` OneOf config, with a clear error if unknown."""
  family_type = getattr(backbone_config, "type", None)
  if family_type not in FAMILIES:
    raise ValueError(f"unknown tfvision backbone, received backbone.type={family_type!r}; "
                     f"the tfvision types are {sorted(FAMILIES)}")
  return FAMILIES[family_type]


def build_model_from_config(backbone_config, norm_activation_config=None, weight_decay=0.0,
                            include_top=False, input_shape=None, output_stride=None,
                            **overrides):
  """The tfvision model described by a `tfvision.configs.backbones.Backbone` config.

  Args:
    backbone_config: a `Backbone` OneOf whose `type` is a tfvision family.
    norm_activation_config: Model Garden's `NormActivation` (None keeps the family's
      defaults).
    weight_decay: L2 factor on the kernels.
    include_top: attach the classification head (then pass `num_classes`, ...).
    input_shape: (H, W, 3) or None.
    output_stride: overrides the config's output stride (dense-prediction tasks).
    **overrides: other constructor arguments (num_classes, dropout_rate, ...).

  Returns:
    The model; it takes raw [0, 255] pixels.
  """
  builder = family_builder(backbone_config)
  family_type = backbone_config.type
  arguments = builder.arguments(backbone_config.get())
  arguments.update(_norm_activation(norm_activation_config, family_type,
                                    builder.takes_activation))
  if output_stride is not None:
    arguments["output_stride"] = output_stride
  arguments.update(include_top=include_top, weight_decay=weight_decay,
                   input_shape=None if input_shape is None else list(input_shape))
  arguments.update(overrides)
  return builder.constructor(**arguments)


# Model Garden's parsers compute (x - MEAN_RGB) / STDDEV_RGB; this inverts it.
_MODEL_GARDEN_MEAN = tuple(float(m) for m in preprocess_ops.MEAN_RGB)
_MODEL_GARDEN_STD = tuple(float(s) for s in preprocess_ops.STDDEV_RGB)


def undo_model_garden_normalization(name="model_garden_to_pixels"):
  """A layer mapping Model Garden-normalised images back to [0, 255] pixels.

  `Normalize(mean, std)` computes (x - mean) / std; with mean = -m / s and std = 1 / s
  that is x * s + m, the inverse of Model Garden's (x - m) / s.
  """
  return Normalize(mean=[-m / s for m, s in zip(_MODEL_GARDEN_MEAN, _MODEL_GARDEN_STD)],
                   std=[1.0 / s for s in _MODEL_GARDEN_STD], name=name)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ModelGardenBackbone(tf_keras.Model):
  """A tfvision backbone fed by Model Garden's normalised images.

  Args:
    backbone: an `include_top=False` tfvision backbone (or its serialised config).
    name: model name.
  Input: [B, H, W, 3] images normalised with Model Garden's ImageNet mean / std;
  output: the backbone's endpoint dict. `output_specs` is the backbone's; `backbone`
  is the tfvision model (raw pixels in).
  """

  def __init__(self, backbone, name=None, **kwargs):
    del kwargs  # Keras passes "trainable" / "dtype" back through from_config
    if isinstance(backbone, dict):
      backbone = tf_keras.utils.deserialize_keras_object(backbone)
    shape = tuple(backbone.input_shape[1:]) if backbone.inputs else (None, None, 3)
    inputs = tf_keras.Input(shape=shape, name="image")
    outputs = backbone(undo_model_garden_normalization()(inputs))
    super().__init__(inputs=inputs, outputs=outputs, name=name or backbone.name)
    self.backbone = backbone
    self._output_specs = dict(backbone.output_specs)

  @property
  def output_specs(self):
    """Endpoint name -> tf.TensorShape (the Model Garden backbone contract)."""
    return self._output_specs

  def get_config(self):
    return {"backbone": tf_keras.utils.serialize_keras_object(self.backbone),
            "name": self.name}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    del custom_objects
    return cls(**config)


def build_model_garden_backbone(input_specs, backbone_config, norm_activation_config,
                                l2_regularizer=None, **kwargs):
  """Model Garden builder signature -> `ModelGardenBackbone` (see the module docstring)."""
  del kwargs
  backbone = build_model_from_config(
      backbone_config, norm_activation_config, _weight_decay(l2_regularizer),
      include_top=False, input_shape=list(input_specs.shape[1:]))
  return ModelGardenBackbone(backbone)


def _register_with_model_garden():
  for family_type in FAMILIES:
    factory.register_backbone_builder(family_type)(build_model_garden_backbone)


_register_with_model_garden()
