"""Axial-ResNet / Axial-DeepLab backbones / Axial-SWideRNet: layout, sizes, counts, bad input."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests import harness
from tfvision.blocks import AxialBottleneckBlock, WideResidualBlock
from tfvision.models import (AxialDeepLabSBackbone, AxialResNet, AxialResNetS, AxialSWideRNet,
                             FullAxialResNetS, create_model, list_models)
from tfvision.models.axial_resnet import (AXIAL_SWIDERNET_VARIANTS, AxialResNetSpec,
                                          axial_resnet_plan,
                                          axial_swidernet_name)
from tfvision.utils.flops import count_macs

TINY = dict(width_multiplier=0.125, stem_width_multiplier=0.125, num_classes=5)
# One block per stage: enough for strides, stems and sizes, and quick to build.
SHALLOW = dict(TINY, num_blocks=(1, 1, 1, 1))
TINY_SWIDERNET = dict(w1=1 / 16, w2=1 / 16, num_classes=5)


def _plan(**kwargs):
  return axial_resnet_plan(AxialResNetSpec.create(kwargs))


def _tiny(name, **kwargs):
  """The preset's test size, one block per stage."""
  return create_model(name + ".tiny", num_blocks=(1, 1, 1, 1), **kwargs)


def _blocks(model, kind):
  return [layer for layer in model.layers if isinstance(layer, kind)]


def test_axial_resnet_s_layout_with_the_papers_max_pool():
  plan = _plan(width_multiplier=0.5)
  assert [len(stage) for stage in plan] == [3, 4, 6, 3]
  assert all(spec["kind"] == "axial" for stage in plan for spec in stage)
  assert [stage[0]["filters"] for stage in plan] == [
      [64, 32, 128], [128, 64, 256], [256, 128, 512], [512, 256, 1024]]
  # The max-pool takes conv2_x to stride 4; later stages stride in their first block.
  assert [[s["strides"] for s in stage] for stage in plan] == [
      [1, 1, 1], [2, 1, 1, 1], [2] + [1] * 5, [2, 1, 1]]
  assert [stage[0]["input_stride"] for stage in plan] == [4, 4, 8, 16]


def test_deeplab2_arrangement_strides_the_first_block_instead():
  plan = _plan(width_multiplier=0.5, stem_max_pool=False)
  assert [stage[0]["strides"] for stage in plan] == [2, 2, 2, 2]
  assert [stage[0]["input_stride"] for stage in plan] == [2, 4, 8, 16]
  assert [stage[1]["input_stride"] for stage in plan] == [4, 8, 16, 32]


def test_axial_placement_by_stride_and_fully_axial_stage():
  hybrid = _plan(use_axial_beyond_stride=16)
  # conv4_x's first block works at stride 8 and strides to 16: the rest are axial
  # (deeplab2's BlockGroup updates the current stride after the first block).
  assert [[s["kind"] for s in stage] for stage in hybrid] == [
      ["bottleneck"] * 3, ["bottleneck"] * 4, ["bottleneck"] + ["axial"] * 5,
      ["axial"] * 3]
  assert hybrid[0][0]["filters"] == [64, 64, 256]  # ResNet-50's bottleneck
  assert hybrid[3][0]["filters"] == [1024, 512, 2048]  # expansion 2
  full = _plan(width_multiplier=0.5, stem="axial", stem_max_pool=False,
                           use_axial_beyond_stride=1)
  assert len(full) == 5 and [s["filters"] for s in full[0]] == [[32, 16, 64]] * 3
  assert full[0][0]["strides"] == 2 and full[0][0]["input_stride"] == 1


def test_output_stride_drops_strides_past_it():
  plan = _plan(output_stride=8)
  assert [stage[0]["strides"] for stage in plan] == [1, 2, 1, 1]
  assert [stage[-1]["dilation_rate"] for stage in plan] == [1, 1, 2, 4]


def test_axial_swidernet_places_axial_blocks_from_stride_16():
  model = AxialSWideRNet(**TINY_SWIDERNET)
  axial = _blocks(model, AxialBottleneckBlock)
  conv = _blocks(model, WideResidualBlock)
  # conv5: its first block strides 8 -> 16 and stays a basic block; the other two and
  # all of conv6 are axial (deeplab2's original_resnet_current_stride rule).
  assert len(axial) == 2 + 3 and len(conv) == 3 + 3 + 6 + 1
  assert [b.name for b in axial] == [
      "stage4_block2", "stage4_block3", "stage5_block1", "stage5_block2", "stage5_block3"]
  assert axial[0].filters == [64, 16, 64] and axial[2].filters == [128, 32, 128]
  assert axial[2].strides == 2 and axial[0].attention.key_depth == 32  # key x2, value x4
  assert axial[0].attention.value_depth == 64
  assert not any(b.use_se or b.switchable_atrous for b in conv)
  # deeplab2's Cityscapes configs: keep 0.8, linear schedule by stride.
  rates = [round(b.drop_path_rate, 3) for b in axial]
  assert rates == [0.15, 0.15, 0.15, 0.2, 0.2]


def test_endpoints_at_output_strides_8_and_16_for_the_panoptic_backbone():
  # Output stride 32 goes through the harness with every registered model.
  for output_stride in (8, 16):
    harness.check_backbone_endpoints("axial_deeplab_s", size=65, output_stride=output_stride,
                                     num_blocks=(1, 1, 1, 1))


def test_same_model_runs_at_224_and_641():
  model = _tiny("axial_deeplab_s", include_top=False, output_stride=16)
  for size in (224, 641):
    out = model(harness.sample_images(1, size), training=False)
    for level in (2, 3, 4, 5):
      expected = harness.expected_endpoint_size(size, level, 16)
      assert out[str(level)].shape[1:3] == (expected, expected)
  assert out["5"].shape[1:3] == (41, 41) and out["5"].shape[-1] == 256
  swide = AxialSWideRNet(1 / 16, 1 / 16, 1 / 3, include_top=False, output_stride=16)
  assert swide(harness.sample_images(1, 641), training=False)["5"].shape[1:3] == (41, 41)


def test_641_without_max_pool_exceeds_the_span_with_a_clear_error():
  model = _tiny("axial_resnet_s", include_top=False, stem_max_pool=False)
  assert model(harness.sample_images(1, 224), training=False)["5"].shape[1:3] == (7, 7)
  with pytest.raises(ValueError, match="max_span=255"):
    model(harness.sample_images(1, 641), training=False)
  with pytest.raises(ValueError, match="max_span=255"):
    _tiny("axial_resnet_s", stem_max_pool=False, input_shape=(641, 641, 3))


def test_position_sensitive_switch_and_heads():
  plain = _tiny("axial_resnet_s", position_sensitive=False)
  sensitive = _tiny("axial_resnet_s")
  assert not [v for v in plain.trainable_variables if "rpe" in v.name]
  assert harness.count_params(sensitive) > harness.count_params(plain)
  assert {b.attention.height_attention.num_heads
          for b in _blocks(sensitive, AxialBottleneckBlock)} == {8}


def test_registry_names():
  names = set(list_models(family="axial_resnet"))
  assert {"axial_resnet_s", "axial_resnet_m", "axial_resnet_l", "axial_resnet_xl",
          "axial_deeplab_s", "axial_deeplab_l", "full_axial_resnet_s"} <= names
  for w1, w2, l in AXIAL_SWIDERNET_VARIANTS:
    assert axial_swidernet_name(w1, w2, l) in names
  assert "axial_swidernet_1_1_4.5" in names
  model = create_model("axial_resnet_m", num_blocks=(1, 1, 1, 1), num_classes=3)
  assert model.get_config()["width_multiplier"] == 0.75
  assert model.output_specs["logits"][-1] == 3
  assert harness.count_params(model.get_layer("head")) == 4 * 384 * 3 + 3


@pytest.mark.parametrize("kwargs, arg", [
    (dict(width_multiplier=0), "width_multiplier"), (dict(stem="patchify"), "stem"),
    (dict(num_blocks=(3, 4, 6)), "num_blocks"), (dict(layer_multiplier=0.2),
                                                 "layer_multiplier"),
    (dict(use_axial_beyond_stride=3), "use_axial_beyond_stride"),
    (dict(stem="axial"), "use_axial_beyond_stride"),
    (dict(stem="axial", use_axial_beyond_stride=1, stem_max_pool=True), "stem_max_pool"),
    (dict(stem_max_pool="yes"), "stem_max_pool"), (dict(output_stride=12), "output_stride"),
    (dict(num_heads=3), "num_heads"), (dict(max_span=0), "max_span"),
    (dict(key_expansion=-1), "key_expansion"), (dict(position_sensitive=None),
                                                "position_sensitive"),
    (dict(input_shape=(64, 64)), "input_shape"), (dict(drop_path_beyond_stride=3),
                                                  "drop_path_beyond_stride"),
    (dict(input_shape=(64, 64, 3), max_span=8), "max_span"),
])
def test_bad_input_names_the_argument(kwargs, arg):
  with pytest.raises(ValueError, match=arg):
    AxialResNet(**{**TINY, **kwargs})


@pytest.mark.parametrize("kwargs, arg", [
    (dict(use_axial_beyond_stride=1), "use_axial_beyond_stride"),
    (dict(num_heads=7), "num_heads"), (dict(l=0.2), "l"),
])
def test_axial_swidernet_bad_input(kwargs, arg):
  with pytest.raises(ValueError, match=arg):
    AxialSWideRNet(**{**TINY_SWIDERNET, **kwargs})


@pytest.mark.slow
@pytest.mark.parametrize("name, kwargs, expected", [
    # deeplab2 model/encoder/axial_resnet_instances_test.py, without the classifier.
    ("axial_resnet_s", {}, 11_466_912),
    ("axial_deeplab_s", {}, 11_565_856),
    ("axial_resnet_l", {}, 43_714_048),
    ("axial_deeplab_l", {}, 43_841_920),
    # use_axial_beyond_stride=0 is deeplab2's ResNet-50: checks the plan without attention.
    ("axial_resnet_l", dict(use_axial_beyond_stride=0), 23_508_032),
    ("axial_swidernet_1_1_1", {}, 136_399_392),
])
def test_parameter_counts_match_deeplab2(name, kwargs, expected):
  model = create_model(name, include_top=False, input_shape=(224, 224, 3), **kwargs)
  assert harness.count_params(model) == expected


@pytest.mark.slow
def test_classifier_counts_against_table_1():
  # Table 1: Conv-Stem + Axial-Attention 12.4M, Full Axial-Attention 12.5M (with head).
  conv_stem = harness.count_params(AxialResNetS())
  full = harness.count_params(FullAxialResNetS())
  assert conv_stem == 11_466_912 + 1024 * 1000 + 1000
  assert abs(conv_stem / 12.4e6 - 1) < 0.01
  assert abs(full / 12.5e6 - 1) < 0.01


@pytest.mark.slow
def test_macs_at_224_against_table_1():
  """Table 1: 2.8B M-Adds. The max-pool (paper) is within 5%; deeplab2's stride-2 first
  block costs 0.5 G more, because its attention runs on 112 x 112. Both count every
  query of the strided passes (the training graph); inference computes only the kept
  ones, 2.9% fewer MACs for the paper's layout."""
  model = AxialResNetS(input_shape=(224, 224, 3))
  paper = count_macs(model, (224, 224, 3), training=True)
  deeplab2 = count_macs(AxialResNetS(input_shape=(224, 224, 3), stem_max_pool=False),
                        (224, 224, 3), training=True)
  assert abs(paper / 2.8e9 - 1) < 0.05
  assert deeplab2 - paper > 0.4e9
  inference = count_macs(model, (224, 224, 3))
  assert 0.02 < 1 - inference / paper < 0.04


@pytest.mark.parametrize("stem", ["conv7x7", "inception", "axial"])
def test_stems_compile_convert_to_tflite_and_run_in_bfloat16(stem):
  """The registry representative (Axial-SWideRNet) has a SWideRNet stem; these are the
  Axial-ResNet stems (max-pool, Inception, fully axial) through XLA, LiteRT and bf16."""
  kwargs = dict(SHALLOW, stem=stem, num_classes=3)
  if stem == "axial":
    kwargs.update(width_multiplier=0.25, use_axial_beyond_stride=1)
  model = AxialResNet(**kwargs)
  images = harness.sample_images(2, 32)
  outputs = model(images, training=False)
  compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)
  harness.assert_outputs_close(compiled(images), outputs, atol=1e-4, what="XLA")
  harness.check_tflite(model, images, outputs)
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    half = AxialResNet(**kwargs)
    with tf.GradientTape() as tape:
      logits = half(images, training=True)
      loss = tf.reduce_mean(logits ** 2)
    grads = tape.gradient(loss, half.trainable_variables)
    assert logits.dtype == tf.float32 and np.all(np.isfinite(logits.numpy()))
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
