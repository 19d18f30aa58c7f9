"""Recipe cards: every experiment's differing settings are sourced; bad cards are named."""
import dataclasses
import pathlib
import re
import types
from typing import Optional

import pytest
from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams
from official.modeling.hyperparams import oneof

import tfvision.tasks
from tfvision import train
from tfvision.configs import recipe_cards
from tfvision.configs import recipes

EXPERIMENTS = tfvision.tasks.list_experiments()
RECIPES_MD = pathlib.Path(__file__).resolve().parents[1] / "RECIPES.md"
# The settings no paper, reference code or tfvision reason accounts for: SWideRNet's
# ImageNet pre-training has no published recipe (tfvision/configs/image_classification.py).
EXPECTED_UNSOURCED = {"tfvision_swidernet_imagenet": 15}


@pytest.fixture(scope="module")
def all_rows():
  return {name: recipes.card_rows(name) for name in EXPERIMENTS}


def test_every_experiment_has_a_card_that_sources_every_setting(all_rows):
  assert set(recipe_cards.CARDS) == set(EXPERIMENTS)
  for name, rows in all_rows.items():
    changed = recipes.differences(exp_factory.get_exp_config(name))
    assert set(changed) <= {row[0] for row in rows}, name
    assert all(isinstance(row[3], recipes.Source) for row in rows)


def test_unsourced_settings_are_only_the_named_ones(all_rows):
  counts = {name: sum(row[3].kind == "unsourced" for row in rows)
            for name, rows in all_rows.items()}
  assert {name: n for name, n in counts.items() if n} == EXPECTED_UNSOURCED
  unsourced = [row for row in all_rows["tfvision_swidernet_imagenet"]
               if row[3].kind == "unsourced"]
  # Each says why no source exists.
  assert all("no SWideRNet ImageNet recipe" in row[3].text or "names" in row[3].text
             or "deeplab2" in row[3].text for row in unsourced)


def test_recipes_md_is_current():
  assert RECIPES_MD.read_text() == recipes.markdown(), (
      "RECIPES.md is stale: python -m tfvision.configs.recipes > RECIPES.md")


def test_issue_fixes_are_in_the_cards(all_rows):
  def value(name, key):
    return {row[0]: row[1] for row in all_rows[name]}[key]

  opt = "trainer.optimizer_config.optimizer."
  # Pale: no gradient clipping (DeiT / CSWin), timm's RandAugment + random erasing.
  assert value("tfvision_pale_tiny_imagenet", opt + "adamw.gradient_clip_norm") == 0.0
  assert value("tfvision_pale_tiny_imagenet", "task.train_data.aug_type.type") == "randaug"
  assert value("tfvision_pale_tiny_imagenet",
               "task.train_data.random_erasing.probability") == 0.25
  # ResNeSt-269: bicubic, ECenterCrop's 416 / 448, PCA lighting, Nesterov.
  assert value("tfvision_resnest269_imagenet",
               "task.validation_data.tf_resize_method") == "bicubic"
  assert value("tfvision_resnest269_imagenet",
               "task.validation_data.center_crop_fraction") == pytest.approx(416 / 448)
  assert value("tfvision_resnest50_imagenet", "task.train_data.pca_lighting") == 0.1
  assert value("tfvision_resnest50_imagenet", opt + "sgd.nesterov") is True
  # DeepLabV3: GluonCV's 0.01 with the head at 10x.
  assert value("tfvision_deeplabv3_resnest101_ade20k",
               "task.head_learning_rate_multiplier") == 10.0
  # Panoptic-DeepLab: evaluation batch divides 32 cores, padded.
  for name in ("tfvision_panoptic_deeplab_swidernet_cityscapes",
               "tfvision_panoptic_deeplab_swidernet_coco"):
    assert value(name, "task.validation_data.global_batch_size") % 32 == 0
    assert value(name, "task.validation_data.pad_to_global_batch") is True


def test_describe_prints_every_setting_with_its_source():
  text = recipes.describe("tfvision_botnet50_imagenet")
  assert text.splitlines()[0].startswith("tfvision_botnet50_imagenet")
  assert re.search(r"^task\.losses\.l2_weight_decay +8e-05  \[0\]  <- paper: botnet\.md "
                   r"Table 10: weight decay 8e-5$", text, re.M)
  assert re.search(r"^trainer\.optimizer_config\.optimizer\.type +sgd  \[None\]  <- paper: "
                   r"botnet\.md Sec\. 2: SGD with momentum$", text, re.M)
  assert re.search(r"^task\.train_data\.tfds_name +imagenet2012  \[\]  <- run: ", text, re.M)
  rows = recipes.card_rows("tfvision_botnet50_imagenet")
  assert text.splitlines()[-1] == f"{len(rows)} settings, 0 unsourced"


class _Flags(types.SimpleNamespace):

  def __contains__(self, name):
    return name in vars(self)


def test_train_describe_flag_applies_yaml_and_overrides(capsys):
  flags = _Flags(experiment=None, describe="tfvision_resnest50_imagenet", config_file=None,
                 params_override="task.train_data.global_batch_size=4096", tpu=None,
                 tf_data_service=None)
  assert re.search(r"^task\.train_data\.global_batch_size +4096  \[0\]  <- paper: ",
                   train.describe(flags), re.M)
  with pytest.raises(SystemExit) as exit_info:
    train.main(["tfvision-train", "--describe=tfvision_resnest51_imagenet"])
  assert exit_info.value.code == 2
  assert "--experiment='tfvision_resnest51_imagenet'" in capsys.readouterr().err


# --- bad cards ---------------------------------------------------------------------------

@dataclasses.dataclass
class _Branch(hyperparams.Config):
  rate: float = 0.1
  depth: int = 50


@dataclasses.dataclass
class _Choice(oneof.OneOfConfig):
  type: Optional[str] = "first"
  first: _Branch = dataclasses.field(default_factory=_Branch)
  second: _Branch = dataclasses.field(default_factory=_Branch)


@dataclasses.dataclass
class _Extra(hyperparams.Config):
  alpha: float = 0.2
  beta: float = 1.0


@dataclasses.dataclass
class _Task(cfg.TaskConfig):
  choice: _Choice = dataclasses.field(default_factory=_Choice)
  extra: Optional[_Extra] = None
  size: int = 3


def _toy_experiment():
  return cfg.ExperimentConfig(task=_Task(choice=_Choice(type="second",
                                                        second=_Branch(depth=101)),
                                         extra=_Extra(), size=3))


def test_differences_follow_oneofs_and_unset_subconfigs():
  changed = recipes.differences(_toy_experiment())
  assert changed["task.choice.type"] == ("second", "first")
  # The active branch against that branch's defaults; the other branch is not listed.
  assert changed["task.choice.second.depth"] == (101, 50)
  assert "task.choice.second.rate" not in changed
  assert not any(key.startswith("task.choice.first") for key in changed)
  # A sub-config the default leaves unset: every field, default (unset).
  assert changed["task.extra.alpha"] == (0.2, recipes.ABSENT)
  assert changed["task.extra.beta"] == (1.0, recipes.ABSENT)
  assert "task.size" not in changed


def _toy_cards(**entries):
  card = {"task.choice.type": recipes.paper("p. 1"),
          "task.choice.second.depth": recipes.paper("p. 2"),
          "task.extra.alpha": recipes.code("repo a.py"),
          "task.extra.beta": recipes.code("repo a.py"),
          "trainer.optimizer_config.optimizer.type": recipes.paper("p. 3")}
  card.update(entries)
  return {"toy": {k: v for k, v in card.items() if v is not None}}


def test_bad_cards_name_the_experiment_and_the_key():
  params = _toy_experiment()
  rows = recipes.card_rows("toy", params, _toy_cards())
  assert [row[0] for row in rows][:2] == ["task.choice.second.depth", "task.choice.type"]
  # An experiment without a card.
  with pytest.raises(ValueError, match=r"experiment 'toy' has no recipe card.*"
                                       r"experiment='toy'"):
    recipes.check_card("toy", params, {})
  # A setting without a source entry.
  with pytest.raises(ValueError, match=r"experiment 'toy' has a setting without a source"
                                       r".*key='task\.extra\.beta'"):
    recipes.check_card("toy", params, _toy_cards(**{"task.extra.beta": None}))
  # An entry naming a setting the experiment does not have (e.g. a renamed field).
  with pytest.raises(ValueError, match=r"experiment 'toy' names a setting the experiment "
                                       r"does not have.*key='task\.choice\.second\.model_id'"):
    recipes.check_card("toy", params,
                       _toy_cards(**{"task.choice.second.model_id": recipes.paper("x")}))
  # An entry for a setting at its default is allowed (the recipe depends on it).
  rows = recipes.card_rows("toy", params,
                           _toy_cards(**{"task.size": recipes.paper("p. 4")}))
  assert ("task.size", 3, 3, recipes.paper("p. 4")) in rows
  with pytest.raises(ValueError, match=r"kind=.*'rumour'"):
    recipes.Source("rumour", "x")
