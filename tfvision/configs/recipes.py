"""Recipe cards: each experiment's settings that differ from Model Garden's defaults,
each with its source.

The settings are computed, not listed by hand: `differences(params)` walks an
experiment config beside the default config of the same task class (`type(task)()`,
Model Garden's `RuntimeConfig()` and `TrainerConfig()`) and returns every leaf whose
value differs, keyed by its config path (`task.train_data.global_batch_size`). A OneOf
(backbone, optimizer, schedule, augmentation) contributes its `type` when the type
differs and the fields of its active branch that differ from that branch's defaults; a
sub-config the default leaves unset (`mixup_and_cutmix: None`) contributes all its
fields. So the comparison follows the config classes: when a backbone spec renames its
fields, the paths follow, and a card entry under an old name fails as "names a setting
the experiment does not have".

A card (`tfvision.configs.recipe_cards.CARDS`) maps each path to a `Source`:
"paper" (a section / table of a paper in /work/shared/papers or one it cites),
"code" (the reference code: repository and file), "tfvision" (a deliberate deviation
or platform choice, with the reason), or "unsourced" (no source exists; says why).
Settings that do not change what is trained (data location, logging and checkpoint
cadence) are sourced by `RUN_SETTINGS` for every experiment.

`check_card(name)` raises a ValueError naming the experiment and the key when a setting
has no entry or an entry names a setting the experiment does not have; `describe(name)`
is the table `tfvision-train --describe NAME` prints; `markdown()` is RECIPES.md.
"""
import dataclasses
import functools
import re

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams
from official.modeling.hyperparams import oneof

from tfvision.models.spec import plain

KINDS = ("paper", "code", "tfvision", "unsourced", "run")


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a setting comes from.

  Attributes:
    kind: one of `KINDS`.
    text: the citation (paper section / table, or repository and file), the reason
      for a deviation, or why no source exists.
  """
  kind: str
  text: str

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"kind must be one of {KINDS}, received kind={self.kind!r}")
    if not self.text:
      raise ValueError(f"a source needs its text, received text={self.text!r}")

  def __str__(self):
    return f"{self.kind}: {self.text}"


def paper(text):
  return Source("paper", text)


def code(text):
  return Source("code", text)


def tfvision(text):
  return Source("tfvision", text)


def unsourced(why):
  return Source("unsourced", why)


def run(text):
  return Source("run", text)


# Settings that locate data or pace logging / checkpoints / evaluation: they do not
# change the trained weights. (pattern over the config path, source)
RUN_SETTINGS = (
    (r"task\.(train|validation)_data\.(tfds_name|tfds_split|input_path|tfds_data_dir|"
     r"image_field_key|label_field_key|decode_jpeg_only|file_type|is_training)",
     run("where and how the dataset is read (README, 'Training')")),
    (r"task\.validation_data\.drop_remainder",
     run("evaluation keeps every example (the last batch is padded or short)")),
    (r"trainer\.(steps_per_loop|summary_interval|checkpoint_interval|validation_interval|"
     r"validation_steps|max_to_keep|best_checkpoint_eval_metric|"
     r"best_checkpoint_metric_comp)",
     run("logging, checkpoint and evaluation cadence")),
)


class _Absent:
  """The default of a setting inside a sub-config the default leaves unset."""

  def __repr__(self):
    return "(unset)"


ABSENT = _Absent()


def _fields(config):
  return [f.name for f in dataclasses.fields(config)]


def _walk(config, default, path, out, everything):
  """Adds (path -> (value, default)) for the leaves of `config` that differ."""
  if isinstance(config, oneof.OneOfConfig):
    default_type = default.type if isinstance(default, oneof.OneOfConfig) else ABSENT
    if everything or config.type != default_type:
      out[f"{path}.type"] = (config.type, default_type)
    if config.type is None:
      return
    branch = getattr(config, config.type)
    base = getattr(default, config.type, None) if isinstance(
        default, oneof.OneOfConfig) else None
    if not isinstance(base, type(branch)):
      base = type(branch)()
    if isinstance(branch, hyperparams.Config):
      _walk(branch, base, f"{path}.{config.type}", out, everything)
    elif everything or branch != base:
      out[f"{path}.{config.type}"] = (branch, base)
    return
  for name in _fields(config):
    if name.startswith("_"):
      continue
    value = getattr(config, name)
    key = f"{path}.{name}" if path else name
    if default is None or default is ABSENT:
      base = ABSENT
    else:
      base = getattr(default, name, ABSENT)
    if isinstance(value, hyperparams.Config):
      if isinstance(value, oneof.OneOfConfig):
        _walk(value, base if isinstance(base, hyperparams.Config) else None, key, out,
              everything)
      elif isinstance(base, hyperparams.Config) and type(base) is type(value):
        _walk(value, base, key, out, everything)
      else:
        # A sub-config the default leaves unset: every field is part of the recipe.
        _walk(value, ABSENT, key, out, True)
      continue
    if everything or base is ABSENT or plain(value) != plain(base):
      out[key] = (plain(value), base if base is ABSENT else plain(base))


@functools.lru_cache(maxsize=None)
def _default_config(task_class):
  return cfg.ExperimentConfig(task=task_class())


def default_config(params):
  """Model Garden's defaults for an experiment: its task class's default config.

  Shared between calls (building a config is slow): read it, do not change it.
  """
  return _default_config(type(params.task))


def differences(params):
  """{path: (value, Model Garden default)} of the settings that differ."""
  out = {}
  _walk(params, default_config(params), "", out, everything=False)
  return out


def settings(params):
  """{path: value} of every setting of the experiment (active OneOf branches only)."""
  out = {}
  _walk(params, default_config(params), "", out, everything=True)
  return {key: value for key, (value, _) in out.items()}


def run_source(path):
  """The `RUN_SETTINGS` source of a path, or None."""
  for pattern, source in RUN_SETTINGS:
    if re.fullmatch(pattern, path):
      return source
  return None


def _cards():
  from tfvision.configs import recipe_cards  # pylint: disable=import-outside-toplevel
  return recipe_cards.CARDS


def _experiment(name, params=None):
  if params is not None:
    return params
  import tfvision.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  return exp_factory.get_exp_config(name)


def card_rows(name, params=None, cards=None):
  """[(path, value, default, Source)] of an experiment, in path order.

  Raises:
    ValueError: naming the experiment and the key, when the experiment has no card,
      a differing setting has no source entry, or an entry names a setting the
      experiment does not have.
  """
  cards = _cards() if cards is None else cards
  if name not in cards:
    raise ValueError(f"experiment {name!r} has no recipe card: add it to "
                     f"tfvision/configs/recipe_cards.py, received experiment={name!r}")
  params = _experiment(name, params)
  card = cards[name]
  present = settings(params)
  for key in card:
    if key not in present:
      raise ValueError(f"the recipe card of experiment {name!r} names a setting the "
                       f"experiment does not have, received key={key!r}")
  rows = []
  changed = differences(params)
  for key in sorted(set(changed) | set(card)):
    value, default = changed.get(key, (present[key], present[key]))
    source = card.get(key) or run_source(key)
    if source is None:
      raise ValueError(f"experiment {name!r} has a setting without a source on its "
                       f"recipe card, received key={key!r} (value {value!r})")
    rows.append((key, value, default, source))
  return rows


def check_card(name, params=None, cards=None):
  """Raises ValueError unless the experiment's card sources every differing setting."""
  card_rows(name, params, cards)


def count_unsourced(names, cards=None):
  """{experiment: number of settings whose source is "unsourced"}."""
  return {name: sum(row[3].kind == "unsourced" for row in card_rows(name, cards=cards))
          for name in names}


def _format(value):
  if value is ABSENT:
    return "(unset)"
  if isinstance(value, float):
    return f"{value:.10g}"
  return str(value)


def describe(name, params=None):
  """The recipe card of an experiment as plain text (`tfvision-train --describe`)."""
  rows = card_rows(name, params)
  width = max(len(row[0]) for row in rows)
  lines = [f"{name}: the settings that differ from Model Garden's defaults",
           f"{'setting':<{width}}  value  [Model Garden default]  <- source"]
  for key, value, default, source in rows:
    same = " (= Model Garden's default)" if _format(value) == _format(default) else ""
    lines.append(f"{key:<{width}}  {_format(value)}  [{_format(default)}]{same}  <- "
                 f"{source}")
  unsourced_count = sum(row[3].kind == "unsourced" for row in rows)
  lines.append(f"{len(rows)} settings, {unsourced_count} unsourced")
  return "\n".join(lines)


def _cell(text):
  return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(names=None):
  """RECIPES.md: every experiment's card as a Markdown table."""
  cards = _cards()
  if names is None:
    import tfvision.tasks  # pylint: disable=import-outside-toplevel
    names = tfvision.tasks.list_experiments()
  counts = count_unsourced(names, cards)
  lines = [
      "# Recipe cards",
      "",
      "Generated by `python -m tfvision.configs.recipes > RECIPES.md` (a test checks it",
      "is current); `tfvision-train --describe EXPERIMENT` prints one card. Each card lists",
      "the settings of a registered experiment that differ from Model Garden's defaults",
      "(the default config of the same task class), the default, and the source: `paper`",
      "(section / table), `code` (reference repository and file), `tfvision` (a deliberate",
      "deviation or platform choice, with its reason), `unsourced` (no source exists, with",
      "why) or `run` (data location and logging cadence: no effect on the trained",
      "weights). The module docstrings of `tfvision/configs/*.py` summarise each recipe.",
      "",
      f"Unsourced settings: {sum(counts.values())} in {len(names)} experiments.",
      "",
      "## Not reproduced, pending, or exact only under a condition",
      "",
  ]
  from tfvision.configs import recipe_cards  # pylint: disable=import-outside-toplevel
  lines += [f"- {note}" for note in recipe_cards.NOTES] + [""]
  for name in names:
    rows = card_rows(name, cards=cards)
    lines += [f"## {name}", "", f"{len(rows)} settings, {counts[name]} unsourced.", "",
              "| setting | value | Model Garden default | source |",
              "|---|---|---|---|"]
    for key, value, default, source in rows:
      lines.append(f"| `{key}` | {_cell(_format(value))} | {_cell(_format(default))} | "
                   f"{source.kind}: {_cell(source.text)} |")
    lines.append("")
  return "\n".join(lines)


if __name__ == "__main__":
  print(markdown(), end="")
