"""Backbones and base class of the dense-prediction meta-architectures.

`DensePredictionModel` is the VisionModel base of Panoptic-DeepLab and DeepLabV3 / V3+:
a functional tf_keras model built in `__init__` around a backbone sub-model, whose
`get_config()` holds the constructor arguments only.

A meta-architecture takes its backbone in one of three forms, so that its `get_config()`
still holds constructor arguments only and round-trips through JSON:

- a registry name (`"swidernet_0.25_0.5_1"`) plus `backbone_kwargs`: the config stores
  the name and the kwargs; `include_top=False`, `output_stride` and `input_shape` are
  set by the meta-architecture;
- a backbone model built by the caller (`include_top=False`): the config stores it
  serialised with `tf_keras.utils.serialize_keras_object` (class name + constructor
  config, no weights, as every Keras config);
- that serialised dict, which `from_config` passes back.
"""
import collections.abc
import inspect
import math

import tf_keras

from tfvision.models.base import VisionModel
from tfvision.models.registry import get_model_entry
from tfvision.utils import validation

OUTPUT_STRIDES = (8, 16, 32)
_RESERVED_KWARGS = ("include_top", "output_stride", "input_shape")


def _accepts_output_stride(builder):
  try:
    parameters = inspect.signature(builder).parameters
  except (TypeError, ValueError):
    return True
  return "output_stride" in parameters or any(
      p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _model_output_stride(model):
  """The output stride a built backbone was configured with (32 when it has none)."""
  # tfvision backbones record it in their config; other models have no dilation scheme.
  config = model.get_config() if isinstance(model, VisionModel) else {}
  return config.get("output_stride", 32)


def resolve_backbone(backbone, backbone_kwargs, output_stride, input_shape,
                     required_endpoints):
  """Builds or checks the backbone of a dense-prediction model.

  Args:
    backbone: registry name, an `include_top=False` tf_keras model, or the
      serialised dict of one.
    backbone_kwargs: extra constructor arguments (registry names only).
    output_stride: the stride of the deepest endpoint (8, 16 or 32).
    input_shape: (H, W, 3) or None, passed to a backbone built by name.
    required_endpoints: endpoint keys the meta-architecture reads.

  Returns:
    (model, config_value): the backbone model and what `get_config` stores for it.

  Raises:
    ValueError: unknown name, a model with a classification head, kwargs together with
      a model, an output stride the backbone cannot produce, or missing endpoints.
  """
  validation.check_in("output_stride", output_stride, OUTPUT_STRIDES)
  if backbone_kwargs is not None and not isinstance(backbone_kwargs, dict):
    raise ValueError(f"backbone_kwargs must be a dict or None, received "
                     f"backbone_kwargs={backbone_kwargs!r}")
  if isinstance(backbone, str):
    model = _build_by_name(backbone, dict(backbone_kwargs or {}), output_stride,
                           input_shape)
    stored = backbone
  elif isinstance(backbone, (dict, tf_keras.Model)):
    if backbone_kwargs:
      raise ValueError(f"backbone_kwargs apply to a registry name only, received "
                       f"backbone_kwargs={backbone_kwargs!r} with a backbone model")
    if isinstance(backbone, dict):
      model = tf_keras.utils.deserialize_keras_object(backbone)
      stored = backbone
    else:
      model = backbone
      stored = tf_keras.utils.serialize_keras_object(backbone)
    actual = _model_output_stride(model)
    if actual != output_stride:
      raise ValueError(f"the backbone model was built with output_stride={actual!r}; "
                       f"it cannot produce output_stride={output_stride!r}")
  else:
    raise ValueError(f"backbone must be a registry name, a tf_keras backbone model or its "
                     f"serialised config, received backbone={backbone!r}")
  _check_endpoints(model, backbone, required_endpoints, output_stride)
  return model, stored


def _build_by_name(name, kwargs, output_stride, input_shape):
  entry = get_model_entry(name)
  for key in _RESERVED_KWARGS:
    if key in kwargs:
      raise ValueError(f"backbone_kwargs must not set {key!r} (the meta-architecture sets "
                       f"it), received backbone_kwargs={kwargs!r}")
  kwargs.update(include_top=False, input_shape=input_shape)
  if _accepts_output_stride(entry.builder):
    kwargs["output_stride"] = output_stride
  elif output_stride != 32:
    raise ValueError(f"backbone {name!r} has a fixed output stride of 32, received "
                     f"output_stride={output_stride!r}")
  return entry.build(**kwargs)


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


def _plain(value):
  """Plain dicts and lists (Keras wraps attributes in trackable DictWrapper / ListWrapper)."""
  if isinstance(value, collections.abc.Mapping):
    return {key: _plain(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(item) for item in value]
  return value


class DensePredictionModel(VisionModel):
  """Shared plumbing of the dense-prediction meta-architectures: backbone and checks."""

  def get_config(self):
    return _plain(self._tfvision_config)

  @staticmethod
  def _validate_dense_common(config):
    validation.check_input_shape(config.get("input_shape"))
    validation.check_positive("num_classes", config["num_classes"], integer=True)
    rate = config.get("drop_path_rate")
    if rate is not None:
      validation.check_probability("drop_path_rate", rate)

  @staticmethod
  def _backbone(config, required_endpoints):
    kwargs = config.get("backbone_kwargs")
    if config.get("drop_path_rate") is not None:
      if not isinstance(config["backbone"], str):
        raise ValueError(f"drop_path_rate applies to a backbone given by registry name, "
                         f"received drop_path_rate={config['drop_path_rate']!r} with a "
                         f"backbone model")
      kwargs = dict(kwargs or {}, drop_path_rate=config["drop_path_rate"])
    return resolve_backbone(config["backbone"], kwargs, config["output_stride"],
                            config.get("input_shape"), required_endpoints)

  @staticmethod
  def _image_input(input_shape):
    return tf_keras.Input(shape=validation.check_input_shape(input_shape), name="image")

  def _finish_dense(self, config, inputs, outputs, name):
    """Initialises the functional model with a tensor or a dict of outputs."""
    if isinstance(outputs, dict):
      self._output_specs = {key: value.shape for key, value in outputs.items()}
    else:
      self._output_specs = {"logits": outputs.shape}
    super(DensePredictionModel, self).__init__(inputs=inputs, outputs=outputs, name=name)
    self._tfvision_config = dict(config)
