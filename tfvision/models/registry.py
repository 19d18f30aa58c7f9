"""Presets: every named model is a frozen override of its family's spec.

    create_model("swidernet_0.25_0.5_1", num_classes=10)
    list_models(family="swidernet")

A `Preset` is the one idiom for a variant (compare deeplab2's `_get_config()` + override
and timm's `model_cfgs` / `default_cfgs`): the model class of its family, the arguments
its name encodes (`fixed`: overriding them with another value raises, so
`ResNeSt50(depth=101)` is an error rather than a ResNeSt-101 named resnest50), other
defaults (`defaults`: the classifier width, the paper's drop-path rate, ...), where the
configuration comes from (`source`), the paper's input side, the tiny test configuration
and, kept apart from the architecture, the released weights. Each family module declares
its presets in one tuple and registers it; the registry is the union of those tuples.
"""
import dataclasses
import difflib
import re
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from tfvision.models.spec import plain

_NAME_RE = re.compile(r"^[a-z][a-z0-9_.]*$")
_ALIAS_RE = re.compile(r"^[a-z][a-z0-9_]*$")
TINY_SUFFIX = ".tiny"
TASKS = ("classification", "semantic", "panoptic")


@dataclasses.dataclass(frozen=True)
class Release:
  """A released checkpoint of a preset, as its authors published it.

  Attributes:
    url: where the authors' file is (a `.tar.gz` of a deeplab2 checkpoint, a
      `.safetensors` / `.pth` of the ResNeSt weights).
    converter: the `tfvision.weights` source that reads it ("deeplab2", "timm_resnest").
    dataset: what it was trained on ("imagenet2012", "cityscapes").
    labels: the label set of its head ("imagenet1k", "cityscapes19"; "" for a backbone).
    input_size: (height, width) the authors evaluate at.
    crop: how evaluation inputs are made ("resize 256, center crop 224", "full image").
    metrics: the accuracy the authors report for it ({"top1": 81.1}, {"pq": 66.4}).
    reference: where those numbers and the file come from (model zoo page, paper table).
    sha256: the file's digest when known (checked after download).
    filename: the name to cache it under (default: the URL's last part).
    arguments: constructor arguments the checkpoint needs beyond the preset's own
      (deeplab2's graph: no SE, no stem max-pool, ...).
    notes: what differs from the preset's defaults and why.
  """
  url: str
  converter: str
  dataset: str
  labels: str = ""
  input_size: Tuple[int, int] = (224, 224)
  crop: str = ""
  metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
  reference: str = ""
  sha256: Optional[str] = None
  filename: Optional[str] = None
  arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  notes: str = ""

  def __post_init__(self):
    if not isinstance(self.url, str) or "://" not in self.url:
      raise ValueError(f"url must be a URL, received url={self.url!r}")


@dataclasses.dataclass(frozen=True)
class Preset:
  """A named configuration of a family's model class.

  Attributes:
    name: registry name (lowercase, digits for depth, "_" between parts).
    model: the family's model class (a `VisionModel` subclass).
    fixed: the arguments the name encodes; overriding one with another value raises.
    defaults: other arguments this preset sets; callers may override them.
    task: "classification", "semantic" or "panoptic".
    default_size: the input side the paper trains at.
    tiny: overrides of the model class's `TINY` arguments for this preset's tiny model
      (same layout, a few channels: the test harness and smoke runs build it).
    tiny_size: input side of the tiny model (None: the model class's `TINY_SIZE`).
    source: where the configuration comes from (paper table, reference code).
    weights: released checkpoints by alias ("imagenet", "cityscapes"): `Release`s.
  """
  name: str
  model: Any
  fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  task: str = "classification"
  default_size: int = 224
  tiny: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  tiny_size: Optional[int] = None
  source: str = ""
  weights: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
      raise ValueError(f"preset names are lowercase with digits, '_' and '.', received "
                       f"name={self.name!r}")
    if self.task not in TASKS:
      raise ValueError(f"task must be one of {list(TASKS)}, received task={self.task!r}")
    for alias, release in self.weights.items():
      if not _ALIAS_RE.match(alias) or not isinstance(release, Release):
        raise ValueError(f"weights maps lowercase aliases to Release, received "
                         f"weights[{alias!r}]={release!r}")

  @property
  def family(self) -> str:
    return self.model.FAMILY

  def arguments(self) -> Dict[str, Any]:
    """The constructor arguments of this preset (its name, fixed, defaults)."""
    return {"name": self.name, **self.fixed, **self.defaults}

  def tiny_arguments(self) -> Dict[str, Any]:
    """The arguments of the tiny model: the class's `TINY`, then this preset's `tiny`."""
    return {**getattr(self.model, "TINY", {}), **self.tiny}

  @property
  def tiny_input_size(self) -> int:
    return self.tiny_size or getattr(self.model, "TINY_SIZE", 64)

  def tiny_preset(self) -> "Preset":
    """The test-size preset `<name>.tiny`: the same layout with a few channels.

    The tiny arguments replace the fixed ones they name; the rest become defaults.
    """
    tiny = self.tiny_arguments()
    fixed = {key: tiny.get(key, value) for key, value in self.fixed.items()}
    # The model keeps the preset's name: it is the same model, with a few channels.
    defaults = {"name": self.name, **self.defaults,
                **{k: v for k, v in tiny.items() if k not in fixed}}
    return dataclasses.replace(
        self, name=self.name + TINY_SUFFIX, fixed=fixed, defaults=defaults,
        default_size=self.tiny_input_size, tiny={}, tiny_size=self.tiny_input_size,
        source=f"test size of {self.name}", weights={})

  def no_drop_path_arguments(self) -> Dict[str, Any]:
    """Arguments that switch stochastic depth off (in the backbone of a dense model)."""
    if self.task == "classification":
      return {"drop_path_rate": 0.0}
    return {"backbone_kwargs": {"drop_path_rate": 0.0}}

  def check_overrides(self, kwargs):
    """Raises ValueError when `kwargs` change an argument the preset's name encodes."""
    for key, value in kwargs.items():
      if key in self.fixed and plain(value) != plain(self.fixed[key]):
        raise ValueError(
            f"{key} is fixed by the preset {self.name!r} ({self.fixed[key]!r}), received "
            f"{key}={value!r}; build {self.model.__name__}({key}={value!r}, ...) or use a "
            f"preset with that {key} (list_models(family={self.family!r}))")

  def build(self, weights=None, **kwargs):
    """The model with this preset's arguments overridden by `kwargs`.

    weights: None (random initialisation), an alias of `self.weights` ("imagenet",
      "cityscapes": downloaded and converted once, then cached), or a path to
      converted tfvision weights or to the authors' file (see `tfvision.weights`).
    """
    if weights is not None:
      from tfvision.weights.api import pretrained  # pylint: disable=import-outside-toplevel
      return pretrained(self.name, weights, **kwargs)
    self.check_overrides(kwargs)
    return self.model(**{**self.arguments(), **kwargs})

  def build_tiny(self, **kwargs):
    """The tiny model of the same layout (the `<name>.tiny` preset with `kwargs`)."""
    return self.tiny_preset().build(**kwargs)


_PRESETS: Dict[str, Preset] = {}


def register_presets(*presets: Preset):
  """Adds presets to the registry (each name once)."""
  for preset in presets:
    if preset.name.endswith(TINY_SUFFIX):
      raise ValueError(f"names ending in {TINY_SUFFIX!r} are the test sizes of presets, "
                       f"received name={preset.name!r}")
    if preset.name in _PRESETS:
      raise ValueError(f"a preset is already registered as name={preset.name!r}")
    _PRESETS[preset.name] = preset
  return presets


def get_preset(name: str) -> Preset:
  """The preset called `name` (or `<preset>.tiny`); an unknown name lists the closest."""
  _ensure_families_imported()
  if isinstance(name, str) and name.endswith(TINY_SUFFIX):
    base = name[:-len(TINY_SUFFIX)]
    if base in _PRESETS:
      return _PRESETS[base].tiny_preset()
  if not isinstance(name, str) or name not in _PRESETS:
    close = difflib.get_close_matches(str(name).lower(), _PRESETS, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see list_models()"
    raise ValueError(f"unknown model, received name={name!r}{hint}")
  return _PRESETS[name]


def create_model(name: str, weights=None, **kwargs):
  """Builds the preset `name`; keyword arguments override its defaults (not its name's).

  weights: None, a release alias of the preset ("imagenet", "cityscapes"), or a path
    to converted tfvision weights or an authors' file (`Preset.build`).
  """
  return get_preset(name).build(weights=weights, **kwargs)


def list_models(family: Optional[str] = None, task: Optional[str] = None):
  """Sorted names of the presets, optionally filtered by family and task."""
  _ensure_families_imported()
  return sorted(name for name, preset in _PRESETS.items()
                if (family is None or preset.family == family) and
                (task is None or preset.task == task))


def preset_constructor(preset_name: str, function_name: str, summary: str,
                       positional=()) -> Callable[..., Any]:
  """A Keras-Applications constructor (`ResNeSt50(**kwargs)`) for one preset.

  `positional` names the arguments it takes by position (`AxialDeepLabS(19)`).
  """

  def constructor(*args, **kwargs):
    if len(args) > len(positional):
      raise ValueError(f"{function_name} takes at most {len(positional)} positional "
                       f"arguments ({', '.join(positional)}), received {args!r}")
    for key, value in zip(positional, args):
      if key in kwargs:
        raise ValueError(f"{function_name} received {key} both by position and by name, "
                         f"received {key}={value!r}")
      kwargs[key] = value
    return get_preset(preset_name).build(**kwargs)

  constructor.__name__ = constructor.__qualname__ = function_name
  constructor.__doc__ = (f"{summary}\n\nThe preset {preset_name!r}: keyword arguments "
                         f"override its defaults (see the family class for all of them); "
                         f"the arguments its name encodes cannot change.")
  return constructor


def _ensure_families_imported():
  # Importing the package registers every family; done lazily so that the registry
  # module itself has no import cycle with the families.
  import tfvision.models  # pylint: disable=import-outside-toplevel,unused-import

