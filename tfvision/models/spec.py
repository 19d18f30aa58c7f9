"""Family specs: every argument of a model declared once, typed, documented and validated.

A family's architecture is one `Spec` dataclass (a Model Garden `hyperparams.Config`):
each field is declared with `arg(default, meaning, ...)`, and that declaration is read by

- the model constructor (`VisionModel.__init__` binds positional and keyword arguments to
  it and raises `ValueError` for anything else),
- `get_config()` (the spec's values, which `from_config` passes back),
- the Model Garden backbone config (`tfvision.configs.backbones.Backbone` has one field per
  family whose type *is* the family's spec, so YAML and `--params_override` keys are the
  constructor's argument names),
- the factory (`tfvision.models.factory`), which passes the spec through unchanged, and
- the constructor's docstring (`describe`), generated from the field meanings.

The arguments every model shares (the head, the input, normalisation, activation, weight
decay, the name) are `ModelSpec`; a family sets its own defaults for them (its paper's
batch-norm momentum, for example) in `COMMON_DEFAULTS` of its model class. Normalisation is
one `NormSpec` (kind, momentum, epsilon) for every family.

Unknown or misspelled keys fail with `UnknownArgumentError` (a `ValueError`, and a
`KeyError` for Model Garden's config code) naming the key, the family, the closest
accepted keys and all accepted keys, whether they come from Python, `create_model`, YAML
or `--params_override`.
"""
import collections.abc
import copy
import dataclasses
import difflib
import numbers
import typing
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from official.modeling import hyperparams

NORM_KINDS = ("batch", "sync_batch")
RECOMPUTE_GRAD = ("none", "axial", "all")
INPUT_NORMALIZATIONS = ("pixels", "model_garden")
# Arguments renamed by the specs redesign: the error for the old name says the new one.
RENAMED = {
    "model_id": "depth",
    "stochastic_depth_drop_rate": "drop_path_rate",
    "norm_momentum": "norm={'momentum': ...}",
    "norm_epsilon": "norm={'epsilon': ...}",
    "drop_path_rate": "backbone_kwargs={'drop_path_rate': ...}",
}


class UnknownArgumentError(ValueError, KeyError):
  """An argument or config key that the family does not have.

  A ValueError for tfvision's callers and a KeyError for Model Garden's config code,
  which reports unknown YAML / override keys as KeyError.
  """

  def __str__(self):
    return str(self.args[0]) if self.args else ""


def arg(default, meaning, *, choices=None, minimum=None, positive=False, probability=False,
        nullable=False):
  """A spec field: its default, its one-line meaning and declarative checks.

  Args:
    default: the default value (lists are copied per instance).
    meaning: one line, shown in the constructor's docstring.
    choices: allowed values.
    minimum: smallest allowed number (inclusive).
    positive: the number must be > 0.
    probability: the number must be in [0, 1).
    nullable: None is allowed besides the annotated type.
  """
  metadata = dict(meaning=meaning, choices=None if choices is None else tuple(choices),
                  minimum=minimum, positive=positive, probability=probability,
                  nullable=nullable)
  if isinstance(default, (list, dict)):
    return dataclasses.field(default_factory=lambda: type(default)(default),
                             metadata=metadata)
  if isinstance(default, hyperparams.Config):
    return dataclasses.field(default_factory=lambda: type(default)(default.as_dict()),
                             metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def plain(value):
  """JSON-like values: lists for tuples and list wrappers, dicts for mappings (Keras
  wraps attributes in trackable ListWrapper / DictWrapper), recursively."""
  if isinstance(value, collections.abc.Mapping):
    return {key: plain(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [plain(item) for item in value]
  return value


def _type_name(annotation):
  origin = typing.get_origin(annotation)
  if origin is typing.Union:
    names = [_type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
    return " or ".join(names) + " or None"
  if origin in (list, List):
    (inner,) = typing.get_args(annotation) or (Any,)
    inner_name = _type_name(inner)
    return f"a list of ({inner_name})" if " or " in inner_name else f"a list of {inner_name}"
  if annotation is Any:
    return "any value"
  return getattr(annotation, "__name__", str(annotation))


def _matches(value, annotation):
  """Whether `value` fits `annotation` (int, float, bool, str, Optional, List, Any)."""
  if annotation is Any:
    return True
  origin = typing.get_origin(annotation)
  if origin is typing.Union:
    return any(_matches(value, a) for a in typing.get_args(annotation))
  if annotation is type(None):
    return value is None
  if origin in (list, List):
    (inner,) = typing.get_args(annotation) or (Any,)
    return isinstance(value, (list, tuple)) and all(_matches(v, inner) for v in value)
  if annotation is bool:
    return isinstance(value, bool)
  if annotation is int:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
  if annotation is float:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
  if isinstance(annotation, type) and issubclass(annotation, hyperparams.Config):
    return isinstance(value, annotation)
  return isinstance(value, annotation)


class Spec(hyperparams.Config):
  """Base of every spec: strict keys, type and range checks from the field declarations.

  Subclasses are dataclasses whose fields are declared with `arg(...)`; `FAMILY` names
  the family in error messages and `check()` adds the checks that involve several fields.
  """
  FAMILY: typing.ClassVar[str] = "model"

  @classmethod
  def field_names(cls) -> Tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))

  @classmethod
  def unknown_key_error(cls, key, value=dataclasses.MISSING, accepted=None, where=None):
    """The error for a key the spec (or `accepted`) does not have."""
    accepted = sorted(accepted if accepted is not None else cls.field_names())
    close = difflib.get_close_matches(str(key), accepted, n=3, cutoff=0.6)
    hints = []
    if key in RENAMED:
      hints.append(f"it is now {RENAMED[key]}")
    if close:
      hints.append(f"did you mean {', '.join(close)}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    where = where or f"the {cls.FAMILY} family"
    received = f"{key}" if value is dataclasses.MISSING else f"{key}={value!r}"
    return UnknownArgumentError(
        f"unknown argument for {where}, received {received}{hint}; accepted: "
        f"{', '.join(accepted)}")

  def _override(self, override_dict, is_strict=True):
    # Model Garden's YAML / --params_override path: name the family and the keys.
    for key, value in override_dict.items():
      if key not in self.RESERVED_ATTR and key not in self.__dict__ and is_strict:
        raise self.unknown_key_error(key, value)
    super()._override(override_dict, is_strict)

  @classmethod
  def create(cls, values: Mapping[str, Any], base=None, where=None):
    """A validated spec: `base` (default: the defaults) overridden by `values`.

    Raises:
      UnknownArgumentError: a key the spec does not have.
      ValueError: a value of the wrong type or out of range, naming the field.
    """
    names = cls.field_names()
    for key, value in values.items():
      if key not in names:
        raise cls.unknown_key_error(key, value, where=where)
    spec = cls() if base is None else copy.deepcopy(base)
    for key, value in values.items():
      current = getattr(spec, key)
      if isinstance(current, hyperparams.Config) and not isinstance(value, hyperparams.Config):
        value = type(current).merge(current, value, name=key)
      setattr(spec, key, plain(value))
    spec.validate_fields()
    spec.check()
    return spec

  def validate_fields(self):
    """Type and declarative range checks of every field (ValueError naming it)."""
    hints = typing.get_type_hints(type(self))
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      meta = field.metadata
      annotation = hints[field.name]
      if value is None and meta.get("nullable"):
        continue
      if not _matches(value, annotation):
        raise ValueError(f"{field.name} must be {_type_name(annotation)}, received "
                         f"{field.name}={value!r}")
      if isinstance(value, hyperparams.Config):
        value.validate_fields()
        value.check()
        continue
      choices = meta.get("choices")
      if choices is not None and value not in choices:
        raise ValueError(f"{field.name} must be one of {list(choices)}, received "
                         f"{field.name}={value!r}")
      numbers_ = value if isinstance(value, list) else [value]
      for number in numbers_:
        if not isinstance(number, numbers.Real) or isinstance(number, bool):
          continue
        if meta.get("positive") and number <= 0:
          raise ValueError(f"{field.name} must be positive, received "
                           f"{field.name}={value!r}")
        if meta.get("minimum") is not None and number < meta["minimum"]:
          raise ValueError(f"{field.name} must be >= {meta['minimum']}, received "
                           f"{field.name}={value!r}")
        if meta.get("probability") and not 0.0 <= number < 1.0:
          raise ValueError(f"{field.name} must be in [0, 1), received "
                           f"{field.name}={value!r}")

  def check(self):
    """Checks that involve several fields (subclasses); raise ValueError."""

  @classmethod
  def field_with_default(cls, name, default):
    """The declaration of field `name` (type, meaning, checks) with another default."""
    declared = {field.name: field for field in dataclasses.fields(cls)}
    if name not in declared:
      raise cls.unknown_key_error(name, default, where=f"the {cls.__name__} fields")
    metadata = dict(declared[name].metadata)
    return arg(default, metadata.pop("meaning"), **metadata)

  @classmethod
  def variant(cls, name, *, bases=(), family=None, **defaults):
    """A spec class deriving from `cls` (and `bases`) with other defaults for some fields.

    Each field keeps its declaration (type, meaning, checks); only the default changes,
    so a family that shares another's arguments does not restate them.
    """
    all_bases = (cls,) + tuple(bases)
    declared = {}
    for base in reversed(all_bases):
      for field in dataclasses.fields(base):
        declared[field.name] = field
    fields = []
    for key, default in defaults.items():
      if key not in declared:
        raise cls.unknown_key_error(key, default, accepted=declared,
                                    where=f"the {name} spec")
      metadata = dict(declared[key].metadata)
      fields.append((key, declared[key].type, arg(default, metadata.pop("meaning"),
                                                  **metadata)))
    namespace = {"FAMILY": family or cls.FAMILY}
    return dataclasses.make_dataclass(name, fields, bases=all_bases, namespace=namespace)

  def values(self) -> Dict[str, Any]:
    """The fields as plain Python values (nested specs as dicts)."""
    return {name: plain(value) for name, value in self.as_dict().items()}


@dataclasses.dataclass
class RecomputeSpec(Spec):
  """The training-memory option of every family with residual blocks."""
  AXIAL_BLOCKS: typing.ClassVar[bool] = False
  recompute_grad: str = arg(
      "none", "which residual blocks recompute their activations in the backward pass "
      "when training (less memory for about one more forward pass, the same gradients; "
      "tfvision.layers.recompute): 'none', 'all', or 'axial' (the axial blocks of the "
      "axial families)", choices=RECOMPUTE_GRAD)

  def check(self):
    super().check()
    if self.recompute_grad == "axial" and not self.AXIAL_BLOCKS:
      raise ValueError(f"the {self.FAMILY} family has no axial blocks: recompute_grad must "
                       f"be 'none' or 'all', received recompute_grad='axial'")

  def recomputes(self, axial=False):
    """Whether a block (an axial one when `axial`) recomputes in training."""
    return self.recompute_grad == "all" or (axial and self.recompute_grad == "axial")


@dataclasses.dataclass
class NormSpec(Spec):
  """Normalisation of every conv / projection: kind, momentum and epsilon (all families)."""
  FAMILY: typing.ClassVar[str] = "norm"
  kind: str = arg("batch", "'batch' or 'sync_batch' (synchronized across replicas)",
                  choices=NORM_KINDS)
  momentum: float = arg(0.99, "moving-statistics momentum (Keras convention: 1 - PyTorch's)",
                        probability=True)
  epsilon: float = arg(1e-3, "variance epsilon", positive=True)

  @classmethod
  def merge(cls, base, value, name="norm"):
    """`base` overridden by a NormSpec, a dict of some of its fields, or a kind string."""
    if isinstance(value, NormSpec):
      return value
    if isinstance(value, str):
      if value not in NORM_KINDS:
        raise ValueError(f"{name} must be a kind in {list(NORM_KINDS)}, a dict of kind / "
                         f"momentum / epsilon or a NormSpec, received {name}={value!r}")
      value = {"kind": value}
    if not isinstance(value, Mapping):
      raise ValueError(f"{name} must be a NormSpec, a dict of kind / momentum / epsilon or "
                       f"a kind in {list(NORM_KINDS)}, received {name}={value!r}")
    merged = dict(base.as_dict())
    for key, item in value.items():
      if key not in cls.field_names():
        raise cls.unknown_key_error(key, item, where=f"the {name} spec")
    merged.update(value)
    try:
      return cls.create(merged)
    except UnknownArgumentError:
      raise
    except ValueError as error:
      raise ValueError(f"{name}: {error}") from None

  def layer_kwargs(self):
    """The normalisation keyword arguments of tfvision's layers and blocks."""
    return dict(norm=self.kind, norm_momentum=self.momentum, norm_epsilon=self.epsilon)

  @classmethod
  def from_norm_activation(cls, config):
    """A NormSpec from Model Garden's `NormActivation` config."""
    return cls.create(dict(kind="sync_batch" if config.use_sync_bn else "batch",
                           momentum=config.norm_momentum, epsilon=config.norm_epsilon))


@dataclasses.dataclass
class ModelSpec(Spec):
  """Arguments every backbone family takes: the head, the input and the shared settings.

  A family's model class sets its own defaults for these (`COMMON_DEFAULTS`: its paper's
  normalisation, activation and name).
  """
  FAMILY: typing.ClassVar[str] = "model"
  include_top: bool = arg(True, "attach the classification head; False returns the "
                          "endpoints '2'..'5' (a dict keyed by log2 of the stride)")
  num_classes: int = arg(1000, "classifier width", positive=True)
  input_shape: Optional[List[Optional[int]]] = arg(
      None, "(height, width, 3), or None for any spatial size", nullable=True)
  pooling: str = arg("avg", "global pooling of the head", choices=("avg", "max"))
  classifier_activation: Optional[str] = arg(
      None, "None (logits) or an activation name applied to the logits", nullable=True)
  dropout_rate: Optional[float] = arg(
      None, "dropout before the classifier; None: the family's default (0 unless stated)",
      probability=True, nullable=True)
  norm: NormSpec = arg(NormSpec(), "normalisation: a NormSpec, a dict of some of kind / "
                       "momentum / epsilon (over the family's default), or a kind")
  activation: str = arg("relu", "activation of the blocks")
  weight_decay: float = arg(0.0, "L2 factor on the kernels (Keras convention)", minimum=0.0)
  input_normalization: str = arg(
      "pixels", "what the input is: 'pixels' in [0, 255], normalised inside as the "
      "paper's code did, or 'model_garden': already normalised with Model Garden's "
      "ImageNet mean / std (its own tasks' parsers)", choices=INPUT_NORMALIZATIONS)
  name: str = arg("", "model name; '' gives the preset's or the family's name")

  def check(self):
    from tfvision.layers.activations import get_activation  # pylint: disable=import-outside-toplevel
    from tfvision.utils import validation  # pylint: disable=import-outside-toplevel
    validation.check_input_shape(self.input_shape)
    get_activation(self.classifier_activation, "classifier_activation")
    get_activation(self.activation, "activation")


def describe(spec_cls, title="Args") -> str:
  """A docstring section listing every field of `spec_cls`: type, default, meaning."""
  hints = typing.get_type_hints(spec_cls)
  lines = [f"{title}:"]
  for field in dataclasses.fields(spec_cls):
    if field.default is not dataclasses.MISSING:
      default = field.default
    else:
      default = field.default_factory()
      if isinstance(default, hyperparams.Config):
        default = default.as_dict()
    lines.append(f"  {field.name} ({_type_name(hints[field.name])}, default {default!r}): "
                 f"{field.metadata.get('meaning', '')}")
  return "\n".join(lines)


def split_arguments(args: Sequence[Any], kwargs: Mapping[str, Any], positional,
                    specs: Sequence[type], where: str):
  """Binds positional arguments to names; returns one dict of values per spec class.

  Raises:
    UnknownArgumentError: a key no spec has (naming it and every accepted key).
    ValueError: too many positional arguments, or one given twice.
  """
  if len(args) > len(positional):
    raise ValueError(f"{where} takes at most {len(positional)} positional arguments "
                     f"({', '.join(positional)}), received {len(args)}: {tuple(args)!r}")
  values = dict(zip(positional, args))
  for key, value in kwargs.items():
    if key in values:
      raise ValueError(f"{where} received {key} both by position and by name, "
                       f"received {key}={value!r}")
    values[key] = value
  accepted = [name for spec in specs for name in spec.field_names()]
  parts = [{} for _ in specs]
  for key, value in values.items():
    for index, spec in enumerate(specs):
      if key in spec.field_names():
        parts[index][key] = value
        break
    else:
      raise specs[0].unknown_key_error(key, value, accepted=accepted, where=where)
  return parts
