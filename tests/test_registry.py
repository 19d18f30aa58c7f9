"""Presets: names, lookup, overrides, test sizes and errors."""
import re

import pytest

from tfvision.models import create_model, get_preset, list_models
from tfvision.models.registry import Preset, register_presets
from tfvision.models.swidernet import SWideRNet


def test_names_follow_the_convention_and_are_sorted():
  names = list_models()
  assert names == sorted(names)
  for name in names:
    assert re.match(r"^[a-z][a-z0-9_.]*$", name), name
    assert not name.endswith(".tiny"), name


def test_every_preset_has_a_family_a_source_and_a_test_size():
  for name in list_models():
    preset = get_preset(name)
    assert preset.family and preset.source, name
    assert preset.tiny_arguments(), name
    assert preset.tiny_input_size >= 32
    tiny = get_preset(name + ".tiny")
    assert tiny.name == name + ".tiny" and tiny.model is preset.model
    assert tiny.arguments()["name"] == name  # the same model, a few channels


def test_create_model_overrides_defaults_but_not_what_the_name_encodes():
  model = create_model("wide_resnet41.tiny", num_classes=5)
  assert model.output_shape == (None, 5) and model.name == "wide_resnet41"
  assert model.get_config()["use_se"] is False and model.get_config()["w1"] == 1 / 16
  with pytest.raises(ValueError, match=r"depth is fixed by the preset 'resnest50' \(50\), "
                                       r"received depth=101"):
    create_model("resnest50", depth=101)
  # Repeating a fixed value is allowed.
  assert get_preset("resnest50").check_overrides(dict(depth=50)) is None


def test_unknown_name_suggests_close_matches():
  with pytest.raises(ValueError, match=r"name='wide_resnet40'.*wide_resnet41"):
    create_model("wide_resnet40")
  with pytest.raises(ValueError, match=r"name='resnest5O'.*resnest50"):
    create_model("resnest5O")


def test_filters_by_family_and_task():
  assert "wide_resnet41" in list_models(family="swidernet")
  assert list_models(family="no_such_family") == []
  assert set(list_models(task="classification")) <= set(list_models())
  assert "panoptic_deeplab_swidernet_0.25_0.5_1" in list_models(task="panoptic")


def test_registration_rejects_bad_and_duplicate_names():
  with pytest.raises(ValueError, match="name"):
    Preset("Bad-Name", SWideRNet)
  with pytest.raises(ValueError, match="already registered"):
    register_presets(Preset("wide_resnet41", SWideRNet))
  with pytest.raises(ValueError, match="task"):
    Preset("some_new_model", SWideRNet, task="detection")
  with pytest.raises(ValueError, match="test sizes"):
    register_presets(Preset("x.tiny", SWideRNet))
