"""Base class and backbone handling of the dense-prediction meta-architectures.

`DensePredictionModel` is the VisionModel base of Panoptic-DeepLab and DeepLabV3 / V3+.
Its arguments are the meta-architecture's spec (`ARCH`: decoder and head widths, ...)
and `DenseSpec` (classes, output stride, input shape, normalisation, ...), plus the
backbone, given in one of three forms so that `get_config()` still holds constructor
arguments only and round-trips through JSON:

- a preset name (`"swidernet_0.25_0.5_1"`, or a test size `"....tiny"`) plus
  `backbone_kwargs`: the meta-architecture builds it with `include_top=False`, its
  `input_shape` and `output_stride`; `backbone_kwargs` may set any other argument of
  the preset's family, except those the preset's name encodes;
- a backbone model built by the caller (`include_top=False`): stored serialised with
  `tf_keras.utils.serialize_keras_object` (class name + constructor config, no weights);
- that serialised dict, which `from_config` passes back.

The output stride is stated once: for a preset name, `output_stride` (default 16) is
passed to the backbone, whose family raises if it cannot produce it; for a model,
`output_stride` may be left None and the model's own stride is used. Either way the
ASPP rates and the checks read the stride the backbone actually has.
"""
import dataclasses
import math
import typing
from typing import List, Optional

import tf_keras

from tfvision.models.base import VisionModel
from tfvision.models.registry import get_preset
from tfvision.models.spec import NormSpec, Spec, arg, plain
from tfvision.utils import validation

OUTPUT_STRIDES = (8, 16, 32)
DEFAULT_OUTPUT_STRIDE = 16
_RESERVED_KWARGS = ("include_top", "output_stride", "input_shape")


@dataclasses.dataclass
class DenseSpec(Spec):
  """Arguments every dense-prediction meta-architecture takes besides its backbone."""
  FAMILY: typing.ClassVar[str] = "deeplab"
  num_classes: int = arg(19, "semantic classes (19 Cityscapes; 134 COCO with channel 0 "
                         "void)", positive=True)
  output_stride: Optional[int] = arg(
      None, "stride of the deepest backbone endpoint: passed to a backbone given by name "
      "(None: 16); None with a backbone model uses the model's", choices=OUTPUT_STRIDES,
      nullable=True)
  input_shape: Optional[List[Optional[int]]] = arg(
      None, "(height, width, 3), or None for any spatial size", nullable=True)
  norm: NormSpec = arg(NormSpec(), "normalisation of the decoder and heads")
  activation: str = arg("relu", "activation of the decoder and heads")
  weight_decay: float = arg(0.0, "L2 factor on the decoder and head kernels",
                            minimum=0.0)
  name: str = arg("", "model name; '' gives the preset's or the family's name")

  def check(self):
    from tfvision.layers.activations import get_activation  # pylint: disable=import-outside-toplevel
    validation.check_input_shape(self.input_shape)
    get_activation(self.activation, "activation")


@dataclasses.dataclass
class AsppSpec(Spec):
  """The ASPP arguments shared by the dense meta-architectures."""
  FAMILY: typing.ClassVar[str] = "deeplab"
  atrous_rates: Optional[List[int]] = arg(
      None, "three ASPP rates; None scales (6, 12, 18) with the backbone's output stride "
      "((12, 24, 36) at 8, (3, 6, 9) at 32, deeplab2's configs)", positive=True,
      nullable=True)
  aspp_dropout_rate: float = arg(0.1, "dropout after the ASPP projection",
                                 probability=True)

  def check(self):
    if self.atrous_rates is not None and len(self.atrous_rates) != 3:
      raise ValueError(f"atrous_rates must be three positive integers, received "
                       f"atrous_rates={self.atrous_rates!r}")

  def rates(self, output_stride):
    """The ASPP rates at the backbone's real `output_stride`."""
    from tfvision.layers.aspp import default_atrous_rates  # pylint: disable=import-outside-toplevel
    if self.atrous_rates is not None:
      return list(self.atrous_rates)
    return default_atrous_rates(output_stride)


def _family_strides(model_class):
  """The output strides a backbone family can produce (its spec's declared choices)."""
  for field in dataclasses.fields(model_class.ARCH):
    if field.name == "output_stride":
      return tuple(field.metadata.get("choices") or OUTPUT_STRIDES)
  return (32,)


def _built_output_stride(model):
  """The output stride a built backbone has (32 for models without a dilation scheme)."""
  return getattr(model, "output_stride", 32)


def resolve_backbone(backbone, backbone_kwargs, output_stride, input_shape,
                     required_endpoints):
  """Builds or checks the backbone of a dense-prediction model.

  Args:
    backbone: preset name, an `include_top=False` tf_keras model, or the serialised
      dict of one.
    backbone_kwargs: extra constructor arguments (preset names only).
    output_stride: the requested stride of the deepest endpoint, or None.
    input_shape: (H, W, 3) or None, passed to a backbone built by name.
    required_endpoints: endpoint keys the meta-architecture reads.

  Returns:
    (model, config_value, output_stride): the backbone model, what `get_config` stores
    for it, and the stride it has.

  Raises:
    ValueError: unknown name, kwargs that the meta-architecture sets, a model with a
      classification head, kwargs together with a model, an output stride the
      backbone cannot produce, or missing endpoints.
  """
  if backbone_kwargs is not None and not isinstance(backbone_kwargs, dict):
    raise ValueError(f"backbone_kwargs must be a dict or None, received "
                     f"backbone_kwargs={backbone_kwargs!r}")
  if isinstance(backbone, str):
    model = _build_by_name(backbone, dict(backbone_kwargs or {}),
                           output_stride or DEFAULT_OUTPUT_STRIDE, input_shape)
    stored = backbone
  elif isinstance(backbone, (dict, tf_keras.Model)):
    if backbone_kwargs:
      raise ValueError(f"backbone_kwargs apply to a preset name only, received "
                       f"backbone_kwargs={backbone_kwargs!r} with a backbone model")
    if isinstance(backbone, dict):
      model = tf_keras.utils.deserialize_keras_object(backbone)
      stored = backbone
    else:
      model = backbone
      stored = tf_keras.utils.serialize_keras_object(backbone)
    actual = _built_output_stride(model)
    if output_stride is not None and actual != output_stride:
      raise ValueError(f"the backbone model was built with output_stride={actual!r}; "
                       f"it cannot produce output_stride={output_stride!r} (build it "
                       f"with that stride, or leave output_stride=None)")
  else:
    raise ValueError(f"backbone must be a preset name, a tf_keras backbone model or its "
                     f"serialised config, received backbone={backbone!r}")
  stride = _built_output_stride(model)
  _check_endpoints(model, backbone, required_endpoints, stride)
  return model, stored, stride


def _build_by_name(name, kwargs, output_stride, input_shape):
  preset = get_preset(name)
  for key in _RESERVED_KWARGS:
    if key in kwargs:
      raise ValueError(f"backbone_kwargs must not set {key!r} (the meta-architecture sets "
                       f"it), received backbone_kwargs={kwargs!r}")
  strides = _family_strides(preset.model)
  if output_stride not in strides:
    raise ValueError(f"the backbone {name!r} ({preset.family} family) cannot produce "
                     f"output_stride={output_stride!r}; it gives {list(strides)}")
  return preset.build(include_top=False, input_shape=input_shape,
                      output_stride=output_stride, **kwargs)


def _check_endpoints(model, backbone, required, output_stride):
  specs = getattr(model, "output_specs", None)
  if specs is None:
    outputs = model.output
    specs = ({key: value.shape for key, value in outputs.items()}
             if isinstance(outputs, dict) else {})
  missing = [key for key in required if key not in specs]
  if missing:
    name = backbone if isinstance(backbone, str) else getattr(model, "name", "?")
    raise ValueError(f"the backbone must return a dict of endpoints containing "
                     f"{sorted(required)} (include_top=False); {missing} missing from "
                     f"{sorted(specs)} for backbone={name!r}")
  # With a static input size the deepest endpoint shows the stride actually produced.
  if not all(str(key).isdigit() for key in required):
    return
  input_shape = model.input_shape if hasattr(model, "input_shape") else None
  deepest = max(required, key=int)
  height = input_shape[1] if input_shape else None
  got = specs[deepest][1]
  if height is not None and got is not None:
    expected = math.ceil(height / min(output_stride, 2 ** int(deepest)))
    if got != expected:
      raise ValueError(f"the backbone's endpoint {deepest!r} has height {got} for input "
                       f"height {height}; it does not produce "
                       f"output_stride={output_stride!r}")


class DensePredictionModel(VisionModel):
  """Shared plumbing of the dense-prediction meta-architectures.

  Subclasses declare `ARCH` (their spec) and implement `required_endpoints(arch)` and
  `build_head(arch, common, inputs, features)`, returning the outputs.
  """
  COMMON = DenseSpec
  # deeplab2's batch-norm settings (momentum 0.99, epsilon 1e-3).
  COMMON_DEFAULTS = dict(norm=dict(momentum=0.99, epsilon=1e-3))
  POSITIONAL = ("num_classes",)
  TINY_SIZE = 65

  def __init__(self, backbone, *args, backbone_kwargs=None, **kwargs):
    arch, common = self.resolve_arguments(args, kwargs)
    backbone_model, stored, stride = resolve_backbone(
        backbone, backbone_kwargs, common.output_stride, common.input_shape,
        self.required_endpoints(arch))
    common.output_stride = stride
    inputs = tf_keras.Input(shape=validation.check_input_shape(common.input_shape),
                            name="image")
    outputs = self.build_head(arch, common, inputs, backbone_model(inputs))
    self._output_specs = ({key: value.shape for key, value in outputs.items()}
                          if isinstance(outputs, dict) else {"logits": outputs.shape})
    # tf_keras.Model's functional constructor (VisionModel's would resolve the arguments
    # again).
    super(VisionModel, self).__init__(inputs=inputs, outputs=outputs,
                                      name=common.name or self.default_name(arch))
    self.arch_spec = arch
    self.model_spec = common
    self._backbone_config = dict(
        backbone=stored, backbone_kwargs=None if backbone_kwargs is None
        else dict(backbone_kwargs))

  @property
  def output_stride(self):
    return self.model_spec.output_stride

  def get_config(self):
    return plain({**self._backbone_config, **self.arch_spec.values(),
                   **self.model_spec.values()})

  def required_endpoints(self, arch):
    raise TypeError(f"{type(self).__name__} must define required_endpoints")

  def build_head(self, arch, common, inputs, features):
    raise TypeError(f"{type(self).__name__} must define build_head")
