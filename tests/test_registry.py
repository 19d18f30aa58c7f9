"""Registry: names, lookup, overrides and errors."""
import re

import pytest

from tfvision.models import create_model, get_model_entry, list_models, register_model


def test_names_follow_the_convention_and_are_sorted():
  names = list_models()
  assert names == sorted(names)
  for name in names:
    assert re.match(r"^[a-z][a-z0-9_.]*$", name), name


def test_every_entry_has_a_family_and_a_tiny_configuration():
  for name in list_models():
    entry = get_model_entry(name)
    assert entry.family and entry.tiny, name
    assert entry.tiny_size >= 32


def test_create_model_overrides_defaults():
  model = create_model("wide_resnet41", w1=1 / 16, w2=1 / 16, num_classes=5)
  assert model.output_shape == (None, 5)
  assert model.get_config()["use_se"] is False


def test_unknown_name_suggests_close_matches():
  with pytest.raises(ValueError, match=r"name='wide_resnet40'.*wide_resnet41"):
    create_model("wide_resnet40")


def test_filters_by_family_and_task():
  assert "wide_resnet41" in list_models(family="swidernet")
  assert list_models(family="no_such_family") == []
  assert set(list_models(task="classification")) <= set(list_models())


def test_registration_rejects_bad_and_duplicate_names():
  with pytest.raises(ValueError, match="name"):
    register_model("Bad-Name", lambda: None, family="x")
  with pytest.raises(ValueError, match="already registered"):
    register_model("wide_resnet41", lambda: None, family="x")
  with pytest.raises(ValueError, match="task"):
    register_model("some_new_model", lambda: None, family="x", task="detection")
