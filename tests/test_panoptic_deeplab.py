"""Panoptic-DeepLab: deeplab2 layout, any backbone, config round trips, fit, counts, errors."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests import harness
from tfvision.data.panoptic import synthetic_dataset_info, synthetic_panoptic_batch
from tfvision.layers import ConvNormAct, SeparableConvNormAct
from tfvision.losses.panoptic import PanopticDeepLabLoss
from tfvision.models import PanopticDeepLab, PanopticDeepLabSWideRNet, SWideRNet
from tfvision.ops.panoptic_targets import panoptic_targets

# The meta-architecture tests need any backbone with endpoints "2".."5": the test size of
# SWideRNet-(0.25, 0.25, 0.75) without SE / SAC keeps their graphs small.
TINY_NAME = "swidernet_0.25_0.25_0.75.tiny"
PLAIN = dict(use_se=False, sac_beyond_stride=0)
TINY_BACKBONE = dict(w1=1 / 16, w2=1 / 16, l=1 / 3, **PLAIN)
TINY_DECODER = dict(
    semantic_aspp_filters=8, semantic_decoder_filters=8, semantic_low_level_filters=[8, 4],
    semantic_head_filters=8, instance_aspp_filters=8, instance_decoder_filters=8,
    instance_low_level_filters=[4, 4], center_head_filters=4, offset_head_filters=4)


def _tiny(**kwargs):
  args = dict(backbone=TINY_NAME, num_classes=5, backbone_kwargs=PLAIN, **TINY_DECODER)
  args.update(kwargs)
  return PanopticDeepLab(**args)


def test_default_widths_are_deeplab2s_panoptic_deeplab_configs():
  model = PanopticDeepLab(TINY_NAME, 19, backbone_kwargs=PLAIN)
  semantic, instance = model.get_layer("semantic_decoder"), model.get_layer("instance_decoder")
  assert (semantic.aspp_filters, semantic.decoder_filters, semantic.low_level_filters) == (
      256, 256, [64, 32])
  assert (instance.aspp_filters, instance.decoder_filters, instance.low_level_filters) == (
      256, 128, [32, 16])
  assert semantic.atrous_rates == instance.atrous_rates == [6, 12, 18]
  heads = [model.get_layer(n) for n in ("semantic_head", "center_head", "offset_head")]
  assert [(h.head_filters, h.output_filters, h.kernel_size) for h in heads] == [
      (256, 19, 5), (32, 1, 5), (32, 2, 5)]
  # separable_conv="all": separable atrous convs, fusion convs and head convs.
  assert all(isinstance(c, SeparableConvNormAct) for c in semantic.aspp.atrous_convs)
  assert all(isinstance(f, SeparableConvNormAct) and f.kernel_size == 5
             for f in semantic.fusions + instance.fusions)
  assert all(isinstance(h.conv, SeparableConvNormAct) for h in heads)
  # Any input size: outputs at the input resolution, float32.
  for shape in ((1, 65, 65, 3), (2, 64, 48, 3)):
    out = model(harness.sample_images(shape[0], shape[1:3]), training=False)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "semantic_logits": shape[:3] + (19,), "center_heatmap": shape[:3] + (1,),
        "offsets": shape[:3] + (2,)}
    assert all(v.dtype == tf.float32 for v in out.values())


def test_separable_conv_decoder_and_output_stride_8():
  model = _tiny(separable_conv="decoder", output_stride=8)
  decoder = model.get_layer("semantic_decoder")
  # deeplab2's default: standard ASPP, separable fusion and heads; rates doubled at 8.
  assert all(isinstance(c, ConvNormAct) for c in decoder.aspp.atrous_convs)
  assert all(isinstance(f, SeparableConvNormAct) for f in decoder.fusions)
  assert decoder.atrous_rates == [12, 24, 36]
  backbone = model.get_layer("swidernet_0.25_0.25_0.75")
  assert backbone.get_config()["output_stride"] == 8
  features = backbone(harness.sample_images(1, 65), training=False)
  assert features["5"].shape[1:3] == (9, 9)


def test_backbone_model_object_serialises_and_round_trips(tmp_path):
  backbone = SWideRNet(include_top=False, output_stride=16, **TINY_BACKBONE)
  model = PanopticDeepLab(backbone, 3, aspp_projection_only=True, **TINY_DECODER)
  assert model.output_stride == 16 and model.get_config()["output_stride"] == 16
  aspp = model.get_layer("semantic_decoder").aspp
  assert aspp.projection_only and not hasattr(aspp, "atrous_convs")
  config = json.loads(json.dumps(model.get_config()))
  assert config["backbone"]["class_name"].endswith("SWideRNet")
  images = harness.sample_images(2, 33)
  outputs = model(images, training=False)
  harness.check_config_roundtrip(model, images, outputs, keras_file=False)


def test_fit_trains_on_targets_and_logs_each_loss_term():
  model = _tiny()
  info = synthetic_dataset_info(5)
  images, labels = synthetic_panoptic_batch(2, 33, info, seed=3)
  targets = panoptic_targets(labels, **info.target_kwargs())
  # Eager steps: tracing the training graph costs ~30 s on CI for nothing this test checks
  # (the harness traces a distributed training step of the same architecture).
  model.compile(tf_keras.optimizers.Adam(1e-3), loss=PanopticDeepLabLoss(ignore_label=255),
                run_eagerly=True)
  history = model.fit(images, targets, batch_size=2, epochs=2, verbose=0)
  assert set(history.history) == {"loss", "semantic_loss", "center_loss", "offset_loss"}
  assert all(np.isfinite(v).all() for v in history.history.values())
  loss = PanopticDeepLabLoss(ignore_label=255)(targets, model(images, training=False))
  assert loss.shape == (2,)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(num_classes=0), "num_classes=0"), (dict(output_stride=12), "output_stride=12"),
    (dict(separable_conv="some"), "separable_conv"),
    (dict(backbone="no_such_backbone"), "backbone"),
    (dict(backbone_kwargs=dict(include_top=True)), "include_top"),
    (dict(semantic_low_level_filters=[8]), "semantic_low_level_filters"),
    (dict(low_level_features=["3", "1"]), "'1'"),
    (dict(atrous_rates=[6, 12]), "atrous_rates"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, arg):
  with pytest.raises(ValueError, match=arg):
    _tiny(**kwargs)


def test_backbone_objects_that_cannot_serve_raise_value_errors():
  os32 = SWideRNet(include_top=False, **TINY_BACKBONE)
  with pytest.raises(ValueError, match="output_stride=16"):
    PanopticDeepLab(os32, 3, output_stride=16)
  with pytest.raises(ValueError, match=r"drop_path_rate=0.1 \(it is now backbone_kwargs"):
    PanopticDeepLab(os32, 3, output_stride=32, drop_path_rate=0.1)
  # Without output_stride the meta-architecture reads the backbone's (32 here).
  assert PanopticDeepLab(os32, 3, **TINY_DECODER).get_layer(
      "semantic_decoder").atrous_rates == [3, 6, 9]
  classifier = SWideRNet(num_classes=3, **TINY_BACKBONE)
  with pytest.raises(ValueError, match="endpoints"):
    PanopticDeepLab(classifier, 3, output_stride=32)


# swidernet.md Table 3 (COCO, 134 semantic channels in deeplab2's layout). Our counts differ
# from the paper's by three known terms:
#   SE_CONV2: deeplab2 (which we follow) puts simplified SE in conv2 too; Table 1 does not:
#     3 blocks x (128 x 128 + 128) = 49,536.
#   DEPTHWISE_BN: deeplab2's separable conv has BN after the depthwise conv; the paper's
#     count matches separable convs without it: gamma and beta over 2 x 3 x 2048 [ASPP]
#     + 320 + 288 + 288 + 144 [fusion] + 256 + 128 + 128 [heads] channels = 27,680.
#   and a constant ~21K (0.013%) more in every paper row, standard or separable.
SE_CONV2 = 3 * (128 * 128 + 128)
DEPTHWISE_BN = 2 * (2 * 3 * 2048 + 320 + 288 + 288 + 144 + 256 + 128 + 128)


@pytest.mark.slow
@pytest.mark.parametrize("separable_conv, expected, paper", [
    ("none", 168_798_540, 168.77e6), ("all", 136_977_660, 136.92e6)])
def test_parameter_counts_against_swidernet_table3(separable_conv, expected, paper):
  model = PanopticDeepLabSWideRNet(1, 1, 1, num_classes=134, separable_conv=separable_conv)
  assert harness.count_params(model) == expected
  aspp = model.get_layer("semantic_decoder").aspp
  atrous = 3 * ((9 + 2) * 2048 + 2048 * 256 + 512) if separable_conv == "all" else (
      3 * (9 * 2048 * 256 + 512))
  # 1x1 and pooling branches, three atrous branches, 1280 -> 256 projection (+ BN each).
  assert harness.count_params(aspp) == 2 * (2048 * 256 + 512) + atrous + 1280 * 256 + 512
  explained = expected - SE_CONV2 - (DEPTHWISE_BN if separable_conv == "all" else 0)
  assert 0 < paper - explained < 25_000, paper - explained


@pytest.mark.slow
def test_axial_deeplab_s_is_panoptic_deeplab_on_deeplab2s_backbone():
  from tfvision.models import AxialDeepLabS  # pylint: disable=import-outside-toplevel
  model = AxialDeepLabS(num_classes=19)
  backbone = model.get_layer("axial_deeplab_s")
  # deeplab2's axial_resnet_instances_test count for the backbone (issue 3).
  assert harness.count_params(backbone) == 11_565_856
  for decoder in ("semantic_decoder", "instance_decoder"):
    aspp = model.get_layer(decoder).aspp
    assert aspp.projection_only and not hasattr(aspp, "atrous_convs")
  # Whole model with deeplab2's projection-only ASPP and default decoder widths: the
  # backbone plus 890,054 decoder / head weights (measured; BENCHMARKS.md).
  assert harness.count_params(model) == 12_455_910
  outputs = model(harness.sample_images(1, 65), training=False)
  assert outputs["semantic_logits"].shape == (1, 65, 65, 19)
