"""Model registry: every model is reachable by a lowercase name.

    create_model("swidernet_0.25_0.5_1", num_classes=10)
    list_models(family="swidernet")

Each entry binds default keyword arguments to a family constructor, so any argument can
still be overridden by name (`create_model("resnest50", drop_path_rate=0.1)`). An entry
also names `tiny`: the keyword arguments of the smallest configuration with the same
structure (narrow widths, same depth and layout), used by the test harness and smoke
runs, and `default_size`, the input side the paper trains at.
"""
import dataclasses
import difflib
import re
from typing import Any, Callable, Dict, Mapping, Optional

_NAME_RE = re.compile(r"^[a-z][a-z0-9_.]*$")
_TASKS = ("classification", "semantic", "panoptic")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  """A registered model.

  Attributes:
    name: registry name (lowercase, digits for depth, "_" between parts).
    builder: callable returning a tf_keras.Model.
    defaults: keyword arguments bound for this name.
    family: family module name ("swidernet", "resnest", ...).
    task: "classification" for backbones with a classification head, or a
      dense-prediction task.
    default_size: the paper's input side.
    tiny: keyword overrides giving a tiny model of the same structure.
    tiny_size: input side to run the tiny model at.
    paper: where the configuration comes from.
  """
  name: str
  builder: Callable[..., Any]
  defaults: Mapping[str, Any]
  family: str
  task: str = "classification"
  default_size: int = 224
  tiny: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  tiny_size: int = 64
  paper: str = ""

  def build(self, **kwargs):
    """Builds the model with the entry's defaults overridden by `kwargs`."""
    return self.builder(**{**self.defaults, **kwargs})

  def build_tiny(self, **kwargs):
    """Builds the tiny configuration (defaults, then `tiny`, then `kwargs`)."""
    return self.builder(**{**self.defaults, **self.tiny, **kwargs})


_REGISTRY: Dict[str, ModelEntry] = {}


def register_model(name: str, builder: Optional[Callable[..., Any]] = None, *,
                   family: str, defaults: Optional[Mapping[str, Any]] = None,
                   task: str = "classification", default_size: int = 224,
                   tiny: Optional[Mapping[str, Any]] = None, tiny_size: int = 64,
                   paper: str = ""):
  """Registers `builder` (or the decorated callable) under `name`.

  Usable as a decorator (`@register_model("wide_resnet41", family="swidernet")`) or
  directly (`register_model("resnest50", ResNeSt, defaults={...}, family="resnest")`).
  """
  if not _NAME_RE.match(name):
    raise ValueError(f"model names are lowercase with digits, '_' and '.', received name={name!r}")
  if task not in _TASKS:
    raise ValueError(f"task must be one of {_TASKS}, received task={task!r}")

  def _register(fn):
    if name in _REGISTRY:
      raise ValueError(f"a model is already registered as name={name!r}")
    _REGISTRY[name] = ModelEntry(
        name=name, builder=fn, defaults=dict(defaults or {}), family=family, task=task,
        default_size=default_size, tiny=dict(tiny or {}), tiny_size=tiny_size, paper=paper)
    return fn

  if builder is not None:
    return _register(builder)
  return _register


def get_model_entry(name: str) -> ModelEntry:
  """Returns the registry entry of `name`, with a suggestion when it is unknown."""
  _ensure_families_imported()
  if not isinstance(name, str) or name not in _REGISTRY:
    close = difflib.get_close_matches(str(name).lower(), _REGISTRY, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see list_models()"
    raise ValueError(f"unknown model, received name={name!r}{hint}")
  return _REGISTRY[name]


def create_model(name: str, **kwargs):
  """Builds the registered model `name`; keyword arguments override its defaults."""
  return get_model_entry(name).build(**kwargs)


def list_models(family: Optional[str] = None, task: Optional[str] = None):
  """Sorted names of the registered models, optionally filtered."""
  _ensure_families_imported()
  return sorted(name for name, entry in _REGISTRY.items()
                if (family is None or entry.family == family) and
                (task is None or entry.task == task))


def _ensure_families_imported():
  # Importing the package registers every family; done lazily so that the registry
  # module itself has no import cycle with the families.
  import tfvision.models  # pylint: disable=import-outside-toplevel,unused-import
