"""Family specs: one declaration per argument, strict keys everywhere, one NormSpec.

Every family's constructor, `get_config`, Model Garden backbone config and factory read its
spec (tfvision/models/spec.py); these tests try the ways a wrong key or value can come in
and require a ValueError naming it before anything is built.
"""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.vision.configs import common

from tfvision.configs import backbones
from tfvision.models import (AxialResNet, AxialSWideRNet, BoTNet, DeepLabV3, DeepLabV3Plus,
                             NormSpec, PaleTransformer, PanopticDeepLab, ResNeSt, ResNet,
                             SWideRNet, create_model, get_preset)
from tfvision.models.factory import FAMILIES, build_model_from_config
from tfvision.models.spec import UnknownArgumentError

BACKBONE_CLASSES = (SWideRNet, AxialResNet, AxialSWideRNet, ResNeSt, ResNet, BoTNet,
                    PaleTransformer)
DENSE_CLASSES = (PanopticDeepLab, DeepLabV3, DeepLabV3Plus)
# One test-size preset per backbone config type.
TINY_PRESETS = {"swidernet": "swidernet_0.25_0.25_0.75.tiny",
                "axial_resnet": "axial_resnet_s.tiny",
                "axial_swidernet": "axial_swidernet_1_1_1.tiny", "resnest": "resnest50.tiny",
                "botnet": "botnet50.tiny", "tfvision_resnet": "resnet50.tiny",
                "pale": "pale_tiny.tiny"}


@pytest.mark.parametrize("model_class", BACKBONE_CLASSES, ids=lambda c: c.__name__)
def test_a_misspelled_keyword_raises_naming_key_family_and_accepted_keys(model_class):
  field = model_class.ARCH.field_names()[-1]
  typo = field[:-1] + field[-1].upper() if field[-1].isalpha() else field + "x"
  with pytest.raises(UnknownArgumentError) as error:
    model_class(**{typo: 1})
  message = str(error.value)
  assert f"received {typo}=1" in message
  assert f"the {model_class.FAMILY} family ({model_class.__name__})" in message
  assert f"did you mean {field}" in message
  assert "accepted: " in message and "num_classes" in message
  assert isinstance(error.value, ValueError) and isinstance(error.value, KeyError)


@pytest.mark.parametrize("model_class", DENSE_CLASSES, ids=lambda c: c.__name__)
def test_dense_meta_architectures_reject_unknown_keywords(model_class):
  with pytest.raises(UnknownArgumentError, match=r"received aspp_filter=8.*did you mean"):
    model_class("swidernet_0.25_0.25_0.75.tiny", 3, aspp_filter=8)


def test_the_issues_examples_now_fail_before_building():
  with pytest.raises(ValueError, match=r"received depht=101 \(did you mean depth\?\)"):
    create_model("resnest50", depht=101)
  with pytest.raises(ValueError, match="received foo=1"):
    SWideRNet(0.25, 0.5, 1, foo=1)
  with pytest.raises(ValueError, match=r"depth is fixed by the preset 'resnest50'"):
    get_preset("resnest50").build(depth=101)
  with pytest.raises(ValueError, match=r"output_stride must be one of \[32\], received "
                                       r"output_stride=16"):
    create_model("pale_tiny", include_top=False, output_stride=16)
  with pytest.raises(ValueError, match="'pale_tiny' .pale family. cannot produce "
                                       r"output_stride=16; it gives \[32\]"):
    DeepLabV3("pale_tiny", 150)
  with pytest.raises(ValueError, match=r"received norm_momentum=0.9 \(it is now "
                                       r"norm=\{'momentum': \.\.\.\}"):
    SWideRNet(norm_momentum=0.9)
  with pytest.raises(ValueError, match="too many|at most 3 positional"):
    SWideRNet(1, 1, 1, 1)
  with pytest.raises(ValueError, match="both by position and by name"):
    SWideRNet(1, w1=1)


@pytest.mark.parametrize("norm, match", [
    ("layer_batch", r"norm must be a kind in \['batch', 'sync_batch'\], a dict .* "
                    r"received norm='layer_batch'"),
    (dict(kind="layer"), r"norm: kind must be one of \['batch', 'sync_batch'\], received "
                         r"kind='layer'"),
    (dict(kind="batch", mommentum=0.9), r"norm spec, received mommentum=0.9 \(did you "
                                        r"mean momentum\?\)"),
    (dict(momentum=1.5), r"norm: momentum must be in \[0, 1\), received momentum=1.5"),
    (3, "norm must be a NormSpec"),
])
def test_bad_norm_settings_raise(norm, match):
  with pytest.raises(ValueError, match=match):
    ResNeSt(norm=norm)


@pytest.mark.parametrize("kwargs, match", [
    (dict(w1="wide"), r"w1 must be float, received w1='wide'"),
    (dict(use_se=1), r"use_se must be bool, received use_se=1"),
    (dict(multi_grid=[1, 0]), r"multi_grid must be positive, received multi_grid=\[1, 0\]"),
    (dict(activation="no_such"), r"received activation='no_such'"),
    (dict(input_normalization="imagenet"), "input_normalization must be one of"),
])
def test_types_and_ranges_are_checked_from_the_declarations(kwargs, match):
  with pytest.raises(ValueError, match=match):
    SWideRNet(**kwargs)


def test_partial_norm_merges_over_the_family_default():
  resnest = ResNeSt(include_top=False, norm={"kind": "sync_batch"},
                    **get_preset("resnest50.tiny").tiny_arguments())
  assert resnest.get_config()["norm"] == {"kind": "sync_batch", "momentum": 0.9,
                                          "epsilon": 1e-5}
  swide = create_model("swidernet_0.25_0.25_0.75.tiny", norm="sync_batch")
  assert swide.get_config()["norm"] == {"kind": "sync_batch", "momentum": 0.99,
                                        "epsilon": 1e-3}
  assert NormSpec.merge(NormSpec(), NormSpec(epsilon=0.5)).epsilon == 0.5


def test_config_round_trips_through_json_and_the_docstring_lists_every_argument():
  model = create_model("resnest50_fast_4s2x40d.tiny", norm={"momentum": 0.95})
  config = json.loads(json.dumps(model.get_config()))
  assert config["norm"]["momentum"] == 0.95 and config["radix"] == 4
  assert ResNeSt.from_config(config).get_config() == model.get_config()
  for model_class in BACKBONE_CLASSES + DENSE_CLASSES:
    for field in dataclasses.fields(model_class.ARCH):
      assert f"  {field.name} (" in model_class.__doc__, (model_class, field.name)


def _layer_types(model):
  return {type(layer).__name__ for layer in model._flatten_layers()}  # pylint: disable=protected-access


@pytest.mark.parametrize("family_type", sorted(FAMILIES))
def test_model_garden_norm_activation_reaches_every_family(family_type):
  """use_sync_bn: true builds synchronized batch norm in every family (Pale included)."""
  config = backbones.preset_config(TINY_PRESETS[family_type])
  activation = "relu" if family_type == "resnest" else "swish"
  norm = common.NormActivation(use_sync_bn=True, norm_momentum=0.9, norm_epsilon=2e-5,
                               activation=activation)
  model = build_model_from_config(config, norm, include_top=False)
  types = _layer_types(model)
  assert "SyncBatchNormalization" in types and "BatchNormalization" not in types, types
  assert model.get_config()["norm"] == {"kind": "sync_batch", "momentum": 0.9,
                                        "epsilon": 2e-5}
  assert model.get_config()["activation"] == activation


def test_resnest_refuses_another_activation_rather_than_ignoring_it():
  config = backbones.preset_config("resnest50.tiny")
  with pytest.raises(ValueError, match=r"ReLU network.*received activation='swish'"):
    build_model_from_config(config, common.NormActivation(activation="swish"))


def test_yaml_and_override_keys_are_the_spec_and_unknown_ones_name_the_family():
  config = backbones.preset_config("botnet_s1_50")
  assert config.botnet.depth == 50 and config.botnet.output_stride == 16
  config.override({"botnet": {"num_heads": 8}})
  assert config.botnet.num_heads == 8
  with pytest.raises(UnknownArgumentError, match=r"the botnet family, received "
                                                 r"num_head=4 \(did you mean num_heads"):
    config.override({"botnet": {"num_head": 4}})
  with pytest.raises(ValueError, match="num_heads is fixed|depth is fixed"):
    backbones.preset_config("botnet50", depth=101)


def test_keras3_objects_get_an_error_that_says_what_to_import():
  model = create_model("swidernet_0.25_0.25_0.75.tiny", num_classes=3)
  with pytest.raises(ValueError, match=r"tf_keras models.*Keras 3 optimizer.*"
                                       r"tf_keras.optimizers.Adam"):
    model.compile(tf.keras.optimizers.Adam())
  with pytest.raises(ValueError, match=r"Keras 3 loss"):
    model.compile(tf_keras.optimizers.Adam(), loss=tf.keras.losses.MeanSquaredError())
  with pytest.raises(ValueError, match=r"Keras 3 tensor.*tf_keras.Input"):
    model(tf.keras.Input((64, 64, 3)))
  model.compile(tf_keras.optimizers.Adam(), loss="mse")  # tf_keras objects work
  assert model(np.zeros((1, 64, 64, 3), np.float32)).shape == (1, 3)


def test_model_garden_input_normalization_is_one_affine_map():
  pixels = np.random.RandomState(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
  from official.vision.ops import preprocess_ops  # pylint: disable=import-outside-toplevel
  normalised = (pixels - np.array(preprocess_ops.MEAN_RGB, np.float32)) / np.array(
      preprocess_ops.STDDEV_RGB, np.float32)
  for name in ("swidernet_0.25_0.25_0.75.tiny", "resnest50.tiny"):
    raw = create_model(name, include_top=False)
    fed = create_model(name, include_top=False, input_normalization="model_garden")
    fed.set_weights(raw.get_weights())
    np.testing.assert_allclose(fed(normalised, training=False)["2"].numpy(),
                               raw(pixels, training=False)["2"].numpy(), atol=2e-4)
