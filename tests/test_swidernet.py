"""SWideRNet / Wide-ResNet-41: structure, atrous scheme, parameter counts, bad input."""
import numpy as np
import pytest
import tensorflow as tf

from tests import harness
from tfvision.blocks import WideResidualBlock
from tfvision.models import SWideRNet, WideResNet41, create_model, list_models
from tfvision.models.swidernet import (FAST_VARIANTS, STRONG_VARIANTS, SWideRNetSpec,
                                       num_blocks_per_stage, variant_name, wide_resnet_plan)

TINY = dict(w1=1 / 16, w2=1 / 16)
WR41 = dict(use_se=False, sac_beyond_stride=0)


def _plan(w1, w2, l, **kwargs):
  return wide_resnet_plan(SWideRNetSpec.create(dict(w1=w1, w2=w2, l=l, **kwargs)))


def _blocks(model):
  return [layer for layer in model.layers if isinstance(layer, WideResidualBlock)]


def test_block_counts_truncate_like_deeplab2():
  assert num_blocks_per_stage(1) == [3, 3, 6, 3, 3]
  assert num_blocks_per_stage(0.75) == [3, 2, 4, 2, 2]
  assert num_blocks_per_stage(4.5) == [3, 13, 27, 13, 13]
  assert num_blocks_per_stage(0.35) == [3, 1, 2, 1, 1]


def test_table1_layout_channels_and_strides():
  plan = _plan(1, 1, 1)
  kinds = [[b["kind"] for b in stage] for stage in plan]
  assert kinds == [["basic"] * 3, ["basic"] * 3, ["basic"] * 6, ["basic"] * 3,
                   ["bottleneck"] * 3]
  assert [stage[0]["filters"] for stage in plan] == [
      [128, 128], [256, 256], [512, 512], [1024, 1024], [512, 1024, 2048]]
  # deeplab2: the stride sits in the first block of stages 2-5, none in stage 1.
  assert [[b["strides"] for b in stage] for stage in plan] == [
      [1, 1, 1], [2, 1, 1], [2] + [1] * 5, [2, 1, 1], [2, 1, 1]]
  # SAC only in conv6 (sac_beyond_stride=32), as Table 1.
  assert [stage[0]["switchable_atrous"] for stage in plan] == [False] * 4 + [True]


def test_width_rounding_for_fractional_multipliers():
  plan = _plan(0.25, 0.35, 1)
  assert plan[0][0]["filters"] == [32, 32]          # round(32 * 0.25) * 4
  assert plan[1][0]["filters"] == [88, 88]          # round(64 * 0.35) = 22
  assert plan[4][0]["filters"] == [179, 358, 716]   # round(512 * 0.35) = 179


def test_atrous_rates_for_output_stride_16_and_8():
  os16 = _plan(1, 1, 1, output_stride=16)
  assert [b["strides"] for b in os16[4]] == [1, 1, 1]
  assert [b["dilation_rate"] for b in os16[4]] == [1, 2, 2]
  os8 = _plan(1, 1, 1, output_stride=8)
  assert [b["strides"] for b in os8[3]] == [1, 1, 1]
  assert [(b["dilation_rate"], b["second_dilation_rate"]) for b in os8[3]] == [
      (1, 2), (2, 2), (2, 2)]
  assert [b["dilation_rate"] for b in os8[4]] == [2, 4, 4]
  grid = _plan(1, 1, 1, output_stride=16, multi_grid=(1, 2, 4))
  assert [b["dilation_rate"] for b in grid[4]] == [1, 4, 8]


def test_drop_path_placement_by_stride():
  plan = _plan(1, 1, 1, drop_path_rate=0.2, drop_path_schedule="linear")
  rates = [[round(b["drop_path_rate"], 4) for b in stage] for stage in plan]
  # Stage 1 lives at stride 2 (< 4): none. The first block of a strided stage still sees
  # its input stride, as deeplab2's BlockGroup.
  assert rates[0] == [0.0, 0.0, 0.0]
  assert rates[1] == [0.0, 0.05, 0.05]
  assert rates[2] == [0.05] + [0.1] * 5
  assert rates[4] == [0.15, 0.2, 0.2]


def test_atrous_consistency_between_output_strides():
  """Same weights: the OS16 features, subsampled by 2, equal the OS32 features."""
  size = 65  # 2 * 32 + 1 keeps every stride-2 sample aligned
  os32 = SWideRNet(include_top=False, output_stride=32, **TINY, **WR41)
  os16 = SWideRNet(include_top=False, output_stride=16, **TINY, **WR41)
  os8 = SWideRNet(include_top=False, output_stride=8, **TINY, **WR41)
  os16.set_weights(os32.get_weights())
  os8.set_weights(os32.get_weights())
  images = harness.sample_images(1, size)
  f32 = os32(images, training=False)["5"].numpy()
  f16 = os16(images, training=False)["5"].numpy()
  f8 = os8(images, training=False)["5"].numpy()
  assert f32.shape[1:3] == (3, 3) and f16.shape[1:3] == (5, 5) and f8.shape[1:3] == (9, 9)
  np.testing.assert_allclose(f16[:, ::2, ::2], f32, atol=1e-4)
  np.testing.assert_allclose(f8[:, ::4, ::4], f32, atol=1e-4)


def test_multi_grid_changes_rates_not_parameters():
  base = SWideRNet(include_top=False, output_stride=16, **TINY)
  grid = SWideRNet(include_top=False, output_stride=16, multi_grid=(1, 2, 4), **TINY)
  assert harness.count_params(base) == harness.count_params(grid)
  rates = [b.dilation_rate for b in _blocks(grid)[-3:]]
  assert rates == [1, 4, 8]


def test_se_and_sac_switches():
  plain = _blocks(SWideRNet(use_se=False, sac_beyond_stride=0, **TINY))
  full = _blocks(SWideRNet(**TINY))
  paper = _blocks(SWideRNet(se_beyond_stride=4, **TINY))
  assert not any(b.use_se or b.switchable_atrous for b in plain)
  assert all(b.use_se for b in full)
  assert [b.use_se for b in paper] == [False] * 3 + [True] * (len(paper) - 3)
  assert [b.switchable_atrous for b in full][-3:] == [True] * 3
  assert not any(b.switchable_atrous for b in full[:-3])


def test_runs_at_224_and_641_with_unknown_input_size():
  model = SWideRNet(0.25, 0.5, 1, include_top=False, input_shape=None)
  assert model.input_shape == (None, None, None, 3)
  for size in (224, 641):
    out = model(harness.sample_images(1, size), training=False)
    for level in (2, 3, 4, 5):
      expected = harness.expected_endpoint_size(size, level)
      assert out[str(level)].shape[1:3] == (expected, expected)
  assert out["5"].shape[-1] == 1024  # 2048 * w2
  dense = SWideRNet(0.25, 0.5, 1, include_top=False, output_stride=16)
  assert dense(harness.sample_images(1, 641), training=False)["5"].shape[1:3] == (41, 41)


def test_classifier_output_and_head_options():
  model = SWideRNet(num_classes=10, classifier_activation="softmax", pooling="max", **TINY)
  probs = model(harness.sample_images(2, 64), training=False).numpy()
  assert probs.shape == (2, 10)
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_registry_names_every_paper_variant():
  names = set(list_models(family="swidernet"))
  for w1, w2, l in FAST_VARIANTS + STRONG_VARIANTS:
    assert variant_name(w1, w2, l) in names
  assert "swidernet_0.25_0.5_1" in names and "wide_resnet41" in names
  model = create_model("swidernet_0.25_0.25_0.75.tiny", num_classes=3)
  assert model.get_config()["l"] == 0.75 and model.get_config()["w1"] == 1 / 16
  with pytest.raises(ValueError, match=r"w1 is fixed by the preset 'swidernet_0.25_0.25_0.75'"):
    create_model("swidernet_0.25_0.25_0.75", w1=1.0)
  with pytest.raises(ValueError, match="use_se is fixed by the preset 'wide_resnet41'"):
    WideResNet41(use_se=True)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(w1=0), "w1"), (dict(w2=-0.5), "w2"), (dict(l=0), "l"), (dict(l=0.2), "l"),
    (dict(output_stride=12), "output_stride"), (dict(input_shape=(224, 224)), "input_shape"),
    (dict(input_shape=(224, 224, 1)), "input_shape"), (dict(sac_beyond_stride=3),
                                                       "sac_beyond_stride"),
    (dict(multi_grid=(1, 2, 4, 8)), "multi_grid"), (dict(se_beyond_stride=0), "se_beyond_stride"), (dict(num_classes=0), "num_classes"),
    (dict(drop_path_rate=1.5), "drop_path_rate"), (dict(pooling="sum"), "pooling"),
])
def test_bad_input_names_the_argument(kwargs, arg):
  with pytest.raises(ValueError, match=arg):
    SWideRNet(**kwargs)


@pytest.mark.slow
def test_parameter_count_matches_deeplab2_without_se_and_sac():
  # deeplab2 axial_resnet_instances_test: swidernet (1, 1, 1) = 109,014,080.
  model = SWideRNet(1, 1, 1, use_se=False, sac_beyond_stride=0, include_top=False,
                    input_shape=(224, 224, 3))
  assert harness.count_params(model) == 109_014_080
  assert harness.count_params(WideResNet41(include_top=False)) == 109_014_080


@pytest.mark.slow
@pytest.mark.parametrize("l, expected", [(3, 333_245_504), (4.5, 487_453_760)])
def test_parameter_count_deeplab2_layer_multipliers(l, expected):
  # deeplab2 axial_resnet_instances_test: swidernet with backbone_layer_multiplier 3 and
  # 4.5 (the latter rounded down to [13, 27, 13, 13] blocks).
  model = SWideRNet(1, 1, l, use_se=False, sac_beyond_stride=0, include_top=False,
                    input_shape=(224, 224, 3))
  assert harness.count_params(model) == expected


@pytest.mark.slow
def test_parameter_count_with_se_and_sac_breakdown():
  """SAC + SE add exactly the SE FCs and the SAC switch / global-context convs."""
  model = SWideRNet(1, 1, 1, include_top=False, input_shape=(224, 224, 3))
  widths = [128] * 3 + [256] * 3 + [512] * 6 + [1024] * 3 + [2048] * 3
  se = sum(c * c + c for c in widths)
  # conv6: three 3x3 SAC convs 512 -> 1024; the first is strided at output stride 32,
  # so it has global context but no switch (deeplab2).
  context = 3 * ((512 * 512 + 512) + (1024 * 1024 + 1024))
  switch = 2 * (512 + 1)
  assert harness.count_params(model) == 109_014_080 + se + context + switch
  # The paper's SE placement (conv3-conv6) reproduces Table 3's SE increment exactly:
  # 168.77M - 151.26M = 17.51M.
  paper = SWideRNet(1, 1, 1, se_beyond_stride=4, include_top=False,
                    input_shape=(224, 224, 3))
  paper_se = sum(c * c + c for c in widths[3:])
  assert paper_se == 17_511_168
  assert harness.count_params(paper) == 109_014_080 + paper_se + context + switch
