"""MaX-DeepLab-L's backbone: deeplab2's stacked decoder inside Axial-SWideRNet-(1, 1, 1).

The fixture (tests/data/weights/max_deeplab_l_backbone) was written by
scripts/make_max_deeplab_l_fixture.py with deeplab2's own `max_deeplab_l_backbone` at
widths 1/32 and blocks [3, 1, 2, 1, 1] (the preset's test size), output stride 16, every
variable random; the deeplab2 converter's table maps its decoder stages and resized fusions.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import weights_fixtures as fx
from tfvision.models import AxialResNet, AxialSWideRNet, create_model, get_preset
from tfvision.models.axial_resnet import DECODER_ENDPOINT, stacked_decoder_plan
from tfvision.weights import api

FIXTURE = os.path.join(fx.DATA, "max_deeplab_l_backbone")
ENDPOINTS = (("2", "res2"), ("3", "res3"), ("4", "res4"), ("5", "res5"),
             (DECODER_ENDPOINT, "backbone_output"))


def _load(model, path):
  """The deeplab2 converter, whose table maps the stacked decoder too; returns the plan."""
  return api.load_source(model, path)


def _count(model):
  return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_tiny_backbone_matches_deeplab2():
  model = get_preset("max_deeplab_l_backbone").build_tiny(include_top=False)
  plan = _load(model, FIXTURE)
  used, present = plan.coverage
  assert used == present
  assert _count(model) == 122386  # deeplab2's trainable count of the fixture model
  reference = fx.outputs(FIXTURE)
  got = model(reference["image"], training=False)
  for endpoint, key in ENDPOINTS:
    assert fx.relative_error(got[endpoint], reference[key]) < 1e-5, key
  # Endpoint "5" is res5 (the encoder's), not the decoder's output.
  assert fx.relative_error(got["5"], reference["backbone_output"]) > 1e-2


def test_the_decoder_rules_map_every_decoder_variable_to_its_deeplab2_key():
  model = get_preset("max_deeplab_l_backbone").build_tiny(include_top=False)
  plan = _load(model, FIXTURE)
  decoder = {path: key for path, key in plan.sources.items() if "/decoder_stage" in path}
  assert decoder and all(key.startswith("encoder/_decoder_stage") for key in decoder.values())
  assert plan.sources["encoder/decoder_stage3_strided_conv1/conv/kernel"] == (
      "encoder/_decoder_stage3_resized_fuse/_strided_conv_bn1/_conv/kernel")
  assert plan.sources["encoder/decoder_stage1_block1/convs/1/bn/gamma"] == (
      "encoder/_decoder_stage1/_block1/_conv2_bn/_batch_norm/gamma")
  # The encoder's own stages keep their keys beside the decoder's.
  assert plan.sources["encoder/stage1_block1/convs/1/bn/gamma"] == (
      "encoder/_stage1/_block1/_conv2_bn/_batch_norm/gamma")


def test_the_classifier_reads_the_decoder_output():
  model = get_preset("max_deeplab_l_backbone").build_tiny(num_classes=3)
  assert model.get_layer("head").input is model.get_layer(DECODER_ENDPOINT).output
  assert model(tf.zeros([2, 64, 64, 3])).shape == (2, 3)


def test_decoder_stages_follow_deeplab2():
  def strides(output_stride, stacks=1, high=4):
    arch = AxialSWideRNet.ARCH.create(dict(output_stride=output_stride,
                                           backbone_decoder_num_stacks=stacks,
                                           high_resolution_output_stride=high))
    return [(s["stride"], s["original_stride"]) for s in stacked_decoder_plan(arch, 1.0)]
  assert strides(16) == [(8, 8), (4, 4), (8, 8), (16, 32)]
  assert strides(32) == [(16, 16), (8, 8), (4, 4), (8, 8), (16, 16), (32, 32)]
  assert strides(8) == [(4, 4), (8, 32)]
  assert strides(16, stacks=2) == [(8, 8), (4, 4), (8, 8), (16, 32)] * 2
  assert strides(16, stacks=0) == []
  with pytest.raises(ValueError, match="high_resolution_output_stride=8"):
    AxialSWideRNet(output_stride=8, backbone_decoder_num_stacks=1,
                   high_resolution_output_stride=8)


def test_no_stacked_decoder_by_default():
  # The pinned outputs (tests/test_output_pins.py) check the graphs; here the defaults.
  for model_class in (AxialResNet, AxialSWideRNet):
    assert model_class.ARCH.create({}).backbone_decoder_num_stacks == 0
  for name in ("axial_swidernet_1_1_1", "max_deeplab_s_backbone", "axial_deeplab_l"):
    assert "backbone_decoder_num_stacks" not in get_preset(name).arguments(), name
  model = get_preset("axial_swidernet_1_1_1").build_tiny(include_top=False)
  assert sorted(model.output_specs) == ["2", "3", "4", "5"]
  assert not any("decoder" in layer.name for layer in model.layers)


def test_axial_resnet_takes_a_stacked_decoder_too():
  model = AxialResNet(width_multiplier=0.125, stem_width_multiplier=0.125,
                      stem="inception", stem_max_pool=False, use_axial_beyond_stride=16,
                      output_stride=16, backbone_decoder_num_stacks=1,
                      high_resolution_output_stride=2, include_top=False)
  outputs = model(tf.zeros([1, 65, 97, 3]), training=False)
  assert outputs[DECODER_ENDPOINT].shape == (1, 5, 7, 256)
  assert outputs["5"].shape == (1, 5, 7, 256)


@pytest.mark.slow
def test_full_size_parameter_count_is_deeplab2s():
  # deeplab2 model/encoder/axial_resnet_instances_test.py (encoder, output stride 16).
  model = create_model("max_deeplab_l_backbone", include_top=False)
  assert model.get_config()["output_stride"] == 16
  assert _count(model) == 175115392
  # Without the stacked decoder: Axial-SWideRNet-(1, 1, 1), deeplab2's axial_swidernet.
  assert _count(create_model("axial_swidernet_1_1_1", include_top=False)) == 136399392
