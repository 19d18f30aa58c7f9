"""One-to-one mapping of a released checkpoint's tensors onto a tfvision model.

A source (deeplab2, timm's ResNeSt) is described by one table: an ordered list of
`Rule`s, each a regular expression over tfvision's variable paths, the source key it
names (a template over the expression's groups, or a function of the match) and the
layout transform the tensor needs. `plan()` applies the table to every variable of a
model and checks that the mapping is complete and one-to-one before anything is
written: a model variable no rule names, a key the checkpoint lacks, a shape that does
not fit, or a checkpoint tensor nothing reads (optimizer slots and step counters
excepted) is an error that lists them all. `assign()` then writes every variable, so a
model is either fully loaded or untouched.

Variable paths are the model's attribute paths, not `tf.Variable.name`s (which repeat:
a split-attention layer's two batch norms both make `.../gamma`): the top-level layer's
name, then the attribute names down to the variable, joined by "/", e.g.
`stage1_block1/split_attention/bn0/gamma` or, in a dense model whose backbone is a
nested model, `backbone/stage1_block1/conv1/conv/kernel`.
"""
import dataclasses
import re
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
import tf_keras


class WeightsMismatchError(ValueError):
  """The checkpoint does not fit the model; the message lists what does not fit."""


# Layout transforms: source layout -> tfvision layout. Each is named in the tables.
def _identity(x):
  return x


def _oihw_to_hwio(x):
  """PyTorch Conv2d weight [out, in / groups, kh, kw] -> Keras [kh, kw, in / groups, out]."""
  return np.transpose(x, (2, 3, 1, 0))


def _depthwise_oihw_to_hwcm(x):
  """PyTorch depthwise weight [in * m, 1, kh, kw] -> Keras DepthwiseConv2D [kh, kw, in, m]."""
  return np.transpose(x, (2, 3, 0, 1))


def _linear_transpose(x):
  """PyTorch Linear weight [out, in] -> Keras Dense kernel [in, out]."""
  return np.transpose(x, (1, 0))


def _reshape_like(x, shape):
  return np.reshape(x, shape)


def _retrieved_content(x):
  """deeplab2's stacked [content, value-rpe] output norm [2, 1, heads, 1, depth]: part 0."""
  return np.reshape(x[0], (-1,))


def _retrieved_value_rpe(x):
  """deeplab2's stacked [content, value-rpe] output norm [2, 1, heads, 1, depth]: part 1."""
  return np.reshape(x[1], (-1,))


TRANSFORMS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": _identity,
    "retrieved_content": _retrieved_content,
    "retrieved_value_rpe": _retrieved_value_rpe,
    "oihw_to_hwio": _oihw_to_hwio,
    "depthwise_oihw_to_hwcm": _depthwise_oihw_to_hwcm,
    "linear_transpose": _linear_transpose,
    # Same values in the same order, another rank: deeplab2's multi-axis batch norms
    # keep rank-5 gamma / beta, and 1x1 convs stored as Dense kernels.
    "reshape": None,
}


@dataclasses.dataclass(frozen=True)
class Rule:
  """tfvision variable paths matching `pattern` read `source` (a template over the
  match's groups, `{1}`, `{stage}`, or a function of the match) through `transform`."""
  pattern: str
  source: Union[str, Callable[[re.Match], str]]
  transform: str = "identity"

  def __post_init__(self):
    if self.transform not in TRANSFORMS:
      raise ValueError(f"transform must be one of {sorted(TRANSFORMS)}, received "
                       f"transform={self.transform!r}")

  def key(self, match: re.Match) -> str:
    if callable(self.source):
      return self.source(match)
    return self.source.format(match.group(0), *match.groups(), **match.groupdict())


def _is_variable(x):
  return isinstance(x, tf.Variable)


def _layer_variable_paths(layer) -> Dict[str, tf.Variable]:
  """Shortest public attribute path of each of `layer`'s variables."""
  best: Dict[int, Tuple[Tuple, tf.Variable]] = {}
  for path, variable in layer._flatten(predicate=_is_variable, with_path=True):  # pylint: disable=protected-access
    if any(isinstance(part, str) and part.startswith("_") for part in path):
      continue
    known = best.get(id(variable))
    if known is None or (len(path), [str(p) for p in path]) < (len(known[0]),
                                                              [str(p) for p in known[0]]):
      best[id(variable)] = (path, variable)
  own = {id(v) for v in layer.weights}
  missing = own - set(best)
  if missing:
    names = [v.name for v in layer.weights if id(v) in missing]
    raise ValueError(f"variables of layer {layer.name!r} have no public attribute path: "
                     f"{names[:5]}")
  return {"/".join(str(p) for p in path): variable for path, variable in best.values()}


def named_variables(model, prefix: str = "") -> Dict[str, tf.Variable]:
  """Every variable of a functional tf_keras model by its attribute path (see module doc)."""
  named: Dict[str, tf.Variable] = {}
  for layer in model.layers:
    if not layer.weights:
      continue
    if isinstance(layer, tf_keras.Model) and hasattr(layer, "_layers_by_depth") or (
        isinstance(layer, tf_keras.Model) and getattr(layer, "_is_graph_network", False)):
      named.update(named_variables(layer, f"{prefix}{layer.name}/"))
      continue
    for path, variable in _layer_variable_paths(layer).items():
      named[f"{prefix}{layer.name}/{path}"] = variable
  if len({id(v) for v in named.values()}) != len(named):
    raise ValueError(f"{model.name}: a variable is reachable from two layers")
  if not prefix and len(named) != len({id(v) for v in model.weights}):
    raise ValueError(f"{model.name}: {len(model.weights) - len(named)} variables are not "
                     f"reachable through the model's layers")
  return named


@dataclasses.dataclass
class Plan:
  """What `plan()` decided: the value of every model variable, and what was left."""
  values: Dict[str, np.ndarray]
  sources: Dict[str, str]          # tfvision path -> source key
  variables: Dict[str, tf.Variable]  # tfvision path -> the model's variable
  ignored: List[str]               # checkpoint keys skipped as optimizer state / counters
  dropped: List[str]               # checkpoint keys the caller chose not to load (heads)

  @property
  def coverage(self) -> Tuple[int, int]:
    """(checkpoint tensors used, checkpoint tensors present, optimizer state excluded)."""
    return len(set(self.sources.values())), len(set(self.sources.values())) + len(
        self.dropped)


def _fmt(items: Sequence[str], shapes: Optional[Mapping[str, Tuple]] = None, limit=12):
  lines = [f"  {k} {tuple(shapes[k]) if shapes and k in shapes else ''}".rstrip()
           for k in list(items)[:limit]]
  if len(items) > limit:
    lines.append(f"  ... and {len(items) - limit} more")
  return "\n".join(lines)


def _shape_of(tensors, key):
  # Lazy sources (a checkpoint reader) know shapes without reading the tensor.
  if hasattr(tensors, "shape_of"):
    return tensors.shape_of(key)
  return np.shape(tensors[key])


def plan(model, tensors: Mapping[str, np.ndarray], rules: Iterable[Rule], *,
         source_name: str, ignore: Callable[[str], bool] = lambda key: False,
         drop: Callable[[str], bool] = lambda key: False,
         variables: Optional[Mapping[str, tf.Variable]] = None) -> Plan:
  """Maps every variable of `model` to a tensor of `tensors`, or raises listing misfits.

  Args:
    model: the tfvision model to fill.
    tensors: checkpoint key -> array (numpy; read lazily is fine: indexed once per key).
    rules: the source's table (first matching rule wins), or a function of the named
      variables that returns it (a table that needs to know, e.g., a block's last conv).
    source_name: names the source in errors ("deeplab2 checkpoint /path").
    ignore: keys that are not model weights (optimizer slots, step counters).
    drop: keys of parts the model does not have by the caller's choice (the classifier
      of an ImageNet checkpoint loaded with include_top=False).
    variables: the model's named variables (default `named_variables(model)`).
  """
  variables = dict(named_variables(model) if variables is None else variables)
  if callable(rules):
    rules = rules(variables)
  rules = [(re.compile(rule.pattern), rule) for rule in rules]
  keys = set(tensors.keys()) if not isinstance(tensors, dict) else set(tensors)
  shapes = {}
  unmapped, missing, misfit, misfit_keys = [], [], [], []
  values, sources, transforms = {}, {}, {}
  for path, variable in variables.items():
    for pattern, rule in rules:
      match = pattern.fullmatch(path)
      if match:
        break
    else:
      unmapped.append(path)
      continue
    key = rule.key(match)
    if key not in keys:
      missing.append(f"{path} <- {key}")
      continue
    array = np.asarray(tensors[key])
    shapes[key] = array.shape
    if rule.transform == "reshape":
      if array.size != int(np.prod(variable.shape)):
        misfit.append(f"{path} {tuple(variable.shape)} <- {key} {array.shape}")
        misfit_keys.append(key)
        continue
      value = array.reshape(tuple(variable.shape))
    else:
      value = TRANSFORMS[rule.transform](array)
    if tuple(value.shape) != tuple(variable.shape):
      misfit.append(f"{path} {tuple(variable.shape)} <- {key} {array.shape} "
                    f"({rule.transform} gives {tuple(value.shape)})")
      misfit_keys.append(key)
      continue
    values[path] = value.astype(variable.dtype.as_numpy_dtype, copy=False)
    sources[path] = key
    transforms[path] = rule.transform
  used = set(sources.values())
  # A tensor may fill two variables only through two different parts of it (deeplab2's
  # stacked output norms); the same tensor twice in the same way is a table bug.
  reads = [(sources[p], transforms[p]) for p in sources]
  twice = sorted({k for k, t in reads if reads.count((k, t)) > 1})
  ignored = sorted(k for k in keys - used if ignore(k))
  dropped = sorted(k for k in keys - used if not ignore(k) and drop(k))
  # A tensor listed as not fitting is not also listed as unused.
  unused = sorted(keys - used - set(ignored) - set(dropped) - set(misfit_keys))
  problems = []
  if misfit:
    problems.append(f"{len(misfit)} tensors do not fit (model variable shape <- checkpoint "
                    f"tensor shape):\n" + _fmt(misfit))
  if missing:
    problems.append(f"{len(missing)} model variables have no tensor in the checkpoint "
                    f"(model variable <- expected key):\n" + _fmt(missing))
  if unmapped:
    problems.append(f"{len(unmapped)} model variables are not in the {source_name} table:"
                    f"\n" + _fmt(unmapped))
  if twice:
    problems.append(f"{len(twice)} checkpoint tensors would fill two variables:\n"
                    + _fmt(twice))
  if unused:
    problems.append(f"{len(unused)} checkpoint tensors are not used by the model:\n"
                    + _fmt(unused, {k: _shape_of(tensors, k) for k in unused[:12]}))
  if problems:
    raise WeightsMismatchError(
        f"the {source_name} does not fit the model {model.name!r} ({len(variables)} "
        f"variables, {len(keys) - len(ignored)} checkpoint tensors); nothing was loaded.\n"
        + "\n".join(problems))
  return Plan(values=values, sources=sources, variables=variables, ignored=ignored,
              dropped=dropped)


def assign(model, plan_: Plan, rollback: bool = True):
  """Writes a complete plan into the model (all variables, or none when one fails).

  rollback: keep the previous values to restore them if an assignment fails. A model
    built just to be loaded (conversion, `create_model(weights=...)`) has nothing to
    restore: without the copy, and with each planned value released once written, the
    peak memory of loading is about the model plus its largest tensor, not three times
    the model.
  """
  variables = plan_.variables
  if {id(v) for v in variables.values()} != {id(v) for v in model.weights} or set(
      variables) != set(plan_.values):
    raise ValueError(f"the plan does not cover the variables of {model.name!r}; build it "
                     f"with plan() for this model")
  if not rollback:
    for path, variable in variables.items():
      variable.assign(plan_.values[path])
      plan_.values[path] = None
    return
  previous = {path: variable.numpy() for path, variable in variables.items()}
  try:
    for path, variable in variables.items():
      variable.assign(plan_.values[path])
  except Exception:
    for path, variable in variables.items():
      variable.assign(previous[path])
    raise
