"""ResNeSt: layout, PyTorch-parity pooling, dilation, regularisation, counts, bad input."""
import numpy as np
import pytest
import tf_keras

from tests import harness
from tfvision.blocks import AveragePoolDownsample, ResNeStBottleneck
from tfvision.layers import DropBlock, SplitAttention
from tfvision.models import ResNeSt, ResNeSt50, create_model, get_preset, list_models
from tfvision.models.resnest import (FAST_VARIANTS, ResNeStSpec, default_dropout_rate,
                                     default_stem_width, fast_variant_name, resnest_plan)
from tfvision.utils.flops import count_macs

TINY = dict(width_multiplier=1 / 16, num_classes=5)


def _plan(depth, **kwargs):
  return resnest_plan(ResNeStSpec.create(dict(depth=depth, **kwargs)))


def _blocks(model):
  return [layer for layer in model.layers if isinstance(layer, ResNeStBottleneck)]


def test_plan_strides_and_avd_placement():
  plan = _plan(50)
  assert [len(stage) for stage in plan] == [3, 4, 6, 3]
  assert [[b["strides"] for b in stage] for stage in plan] == [
      [1, 1, 1], [2, 1, 1, 1], [2] + [1] * 5, [2, 1, 1]]
  # The authors' `avd and (stride > 1 or is_first)`: first block of stages 2-4 only.
  assert [[b["avd"] for b in stage] for stage in plan] == [
      [False] * 3, [True] + [False] * 3, [True] + [False] * 5, [True, False, False]]
  assert [stage[0]["filters"] for stage in plan] == [64, 128, 256, 512]
  assert [len(stage) for stage in _plan(269)] == [3, 30, 48, 8]
  assert [len(stage) for stage in _plan(200)] == [3, 24, 36, 3]
  assert [len(stage) for stage in _plan(101)] == [3, 4, 23, 3]


def test_dilated_plans_follow_the_authors_rates():
  os16 = _plan(50, output_stride=16)
  assert [b["strides"] for b in os16[2]][:1] == [2]
  assert [b["strides"] for b in os16[3]] == [1, 1, 1]
  assert [b["dilation_rate"] for b in os16[3]] == [1, 2, 2]
  os8 = _plan(50, output_stride=8)
  assert [b["strides"] for b in os8[2] + os8[3]] == [1] * 9
  assert [b["dilation_rate"] for b in os8[2]] == [1] + [2] * 5
  assert [b["dilation_rate"] for b in os8[3]] == [2, 4, 4]
  # The 3x3 average pool stays in the first block of each dilated stage (stride 1).
  assert [os8[s][0]["avd"] for s in (1, 2, 3)] == [True, True, True]


def test_regularisation_placement():
  plan = _plan(50, dropblock_rate=0.1, drop_path_rate=0.2)
  assert [[b["dropblock_rate"] for b in stage] for stage in plan] == [
      [0.0] * 3, [0.0] * 4, [0.1] * 6, [0.1] * 3]
  rates = [b["drop_path_rate"] for stage in plan for b in stage]
  np.testing.assert_allclose(rates, np.linspace(0, 0.2, 16), atol=1e-12)
  model = ResNeSt50(**TINY)
  blocks = _blocks(model)
  assert [b.dropblock_rate for b in blocks] == [0.0] * 7 + [0.1] * 9
  assert all(b.conv3.bn.gamma.numpy().max() == 0 for b in blocks)   # zero-init last BN
  # Dropout before the classifier for depth >= 200 only (Sec. 5.2); None picks it.
  assert model.get_config()["dropout_rate"] is None
  assert model.get_layer("head").dropout_rate == default_dropout_rate(50) == 0.0
  assert [default_dropout_rate(d) for d in (101, 200, 269)] == [0.0, 0.2, 0.2]


def test_dropblock_acts_in_training_only():
  # With the last BN zero-initialised the branch starts at zero and nothing to drop.
  model = ResNeSt50(include_top=False, dropblock_rate=0.3, zero_init_last_bn=False, **TINY)
  assert all(b.conv3.bn.gamma.numpy().min() == 1 for b in _blocks(model))
  x = harness.sample_images(2, 64)
  a = model(x, training=False)["5"].numpy()
  np.testing.assert_array_equal(a, model(x, training=False)["5"].numpy())
  tf_keras.utils.set_random_seed(3)
  train = model(x, training=True)
  again = model(x, training=True)
  np.testing.assert_array_equal(train["3"].numpy(), again["3"].numpy())  # no DropBlock
  assert not np.allclose(train["4"].numpy(), again["4"].numpy())
  drops = [layer for b in _blocks(model) if b.dropblocks for layer in b.dropblocks]
  assert len(drops) == 3 * 9 and all(isinstance(d, DropBlock) for d in drops)
  assert {d.block_size for d in drops} == {3}


def test_stem_and_widths():
  model = ResNeSt50(include_top=False, **TINY)          # stem width 32 / 16
  assert [model.get_layer(f"stem_conv{i}").filters for i in (1, 2, 3)] == [2, 2, 4]
  assert [default_stem_width(d) for d in (50, 101, 200, 269)] == [32, 64, 64, 64]
  full = [ResNeStBottleneck(f, base_width=64) for f in (64, 128, 256, 512)]
  assert [b.width for b in full] == [64, 128, 256, 512]
  fast = [ResNeStBottleneck(f, radix=4, cardinality=2, base_width=40) for f in (64, 512)]
  assert [b.width for b in fast] == [80, 640]
  tiny_fast = get_preset("resnest50_fast_4s2x40d").build_tiny(include_top=False)
  fast_blocks = _blocks(tiny_fast)
  assert all(b.avd_first for b in fast_blocks) and not any(b.avd_first for b in _blocks(model))
  sa = fast_blocks[3].split_attention
  assert (sa.radix, sa.cardinality) == (4, 2)
  assert sa.attention_channels == 32     # max(16 * 4 // 4, 32) at the tiny width


def test_average_pools_match_pytorch_semantics():
  rng = np.random.RandomState(0)
  x = rng.uniform(0, 1, (1, 7, 9, 2)).astype("float32")
  # avd: AvgPool2d(3, 2, padding=1), count_include_pad=True -> divide by 9 everywhere.
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  expected = np.stack([np.stack([padded[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3].sum((0, 1)) / 9
                                 for j in range(5)]) for i in range(4)])[None]
  got = AveragePoolDownsample(2)(x).numpy()
  np.testing.assert_allclose(got, expected, atol=1e-6)
  # Shortcut: AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False): partial windows
  # at the bottom/right edge average the entries they cover.
  block = ResNeStBottleneck(4, strides=2, radix=1, base_width=64)
  block(x)
  expected = np.stack([np.stack([x[0, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean((0, 1))
                                 for j in range(5)]) for i in range(4)])[None]
  np.testing.assert_allclose(block.shortcut_pool(x).numpy(), expected, atol=1e-6)


def test_stem_max_pool_matches_pytorch_padding():
  model = ResNeSt50(include_top=False, **TINY)
  stem = tf_keras.Model(model.input, model.get_layer("stem_conv3").output)
  pooled = tf_keras.Model(model.input, model.get_layer("stem_pool").output)
  x = harness.sample_images(1, 30)
  features = stem(x, training=False).numpy()[0]
  padded = np.pad(features, ((1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
  size = (features.shape[0] + 1) // 2     # ceil, as PyTorch with padding 1
  expected = np.stack([np.stack([padded[2 * i:2 * i + 3, 2 * j:2 * j + 3].max((0, 1))
                                 for j in range(size)]) for i in range(size)])
  np.testing.assert_allclose(pooled(x, training=False).numpy()[0], expected, atol=1e-6)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_dilated_backbone_endpoints(output_stride):
  model, _ = harness.check_backbone_endpoints("resnest50", size=65,
                                              output_stride=output_stride)
  blocks = _blocks(model)
  assert blocks[-1].split_attention.dilation_rate == 32 // output_stride
  assert blocks[-3].shortcut_pool is None     # dilated stages: no pool in the shortcut


def test_any_input_size_and_fixed_input_shape():
  model = ResNeSt50(include_top=False, **TINY)
  out = model(harness.sample_images(1, (97, 131)), training=False)
  assert out["5"].shape[1:3] == (4, 5) and out["2"].shape[1:3] == (25, 33)
  fixed = ResNeSt50(input_shape=(96, 96, 3), classifier_activation="softmax", **TINY)
  assert fixed.input_shape == (None, 96, 96, 3)
  probs = fixed(harness.sample_images(2, 96)).numpy()
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_registry_names_and_default_sizes():
  names = set(list_models(family="resnest"))
  expected = {"resnest14", "resnest26", "resnest50", "resnest101", "resnest200",
              "resnest269"} | {
      fast_variant_name(*v) for v in FAST_VARIANTS}
  assert names == expected
  assert "resnest50_fast_1s4x24d" in names and "resnest50_fast_4s2x40d" in names
  sizes = {n: get_preset(n).default_size for n in ("resnest50", "resnest101",
                                                         "resnest200", "resnest269")}
  assert sizes == {"resnest50": 224, "resnest101": 256, "resnest200": 320,
                   "resnest269": 416}
  config = create_model("resnest50_fast_1s4x24d", **TINY).get_config()
  assert (config["radix"], config["cardinality"], config["base_width"], config["fast"]) == (
      1, 4, 24, True)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(radix=0), "radix"), (dict(radix=-1), "radix"), (dict(cardinality=0), "cardinality"),
    (dict(depth=34), "depth"), (dict(depth="50"), "depth"),
    (dict(radix=4, cardinality=2, base_width=41), "base_width"),
    (dict(radix=3), "radix"), (dict(output_stride=4), "output_stride"),
    (dict(fast=1), "fast"), (dict(dropblock_rate=1.0), "dropblock_rate"),
    (dict(dropout_rate=1.2), "dropout_rate"), (dict(width_multiplier=0), "width_multiplier"),
    (dict(stem_width=0), "stem_width"), (dict(input_shape=(64, 64, 1)), "input_shape"),
])
def test_bad_input_names_the_argument_and_value(kwargs, arg):
  with pytest.raises(ValueError, match=f"{arg}="):
    ResNeSt(**kwargs)


def test_bad_block_and_layer_arguments():
  with pytest.raises(ValueError, match="base_width=40"):
    ResNeStBottleneck(8, radix=4, cardinality=2, base_width=40)
  with pytest.raises(ValueError, match="radix=0"):
    ResNeStBottleneck(8, radix=0)
  with pytest.raises(ValueError, match="cardinality=0"):
    SplitAttention(8, cardinality=0)


# Parameter counts with the 1000-class head: the authors' models as timm builds them
# (resnest50d, resnest101e, resnest50d_4s2x40d, resnest50d_1s4x24d). ResNeSt-200 / 269
# (70,201,544 / 110,929,480, also equal to timm's) are in BENCHMARKS.md: same blocks,
# only more of them (test_plan_strides_and_avd_placement), and each costs minutes of CI.
REFERENCE_PARAMS = {
    "resnest50": 27_483_240,
    "resnest101": 48_275_016,
    "resnest50_fast_4s2x40d": 30_417_592,
    "resnest50_fast_1s4x24d": 25_677_000,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_count_matches_the_authors_models(name):
  model = create_model(name)
  assert harness.count_params(model) == REFERENCE_PARAMS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name, paper_gmacs", [("resnest50", 5.39),
                                               ("resnest50_fast_2s1x64d", 4.34)])
def test_macs_at_224_within_5_percent_of_the_paper(name, paper_gmacs):
  macs = count_macs(create_model(name, input_shape=(224, 224, 3)), (224, 224, 3))
  assert abs(macs / 1e9 - paper_gmacs) / paper_gmacs < 0.05, macs
