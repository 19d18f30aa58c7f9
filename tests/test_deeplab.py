"""DeepLabV3 / DeepLabV3+: layout, output stride, logits at input size, errors."""
import pytest
import tensorflow as tf

from tests import harness
from tfvision.layers import ConvNormAct, SeparableConvNormAct
from tfvision.models import DeepLabV3, DeepLabV3Plus

TINY_NAME = "swidernet_0.25_0.25_0.75.tiny"
TINY_BACKBONE = dict(use_se=False, sac_beyond_stride=0)


def test_deeplabv3_at_output_stride_8_doubles_the_rates_and_upsamples_logits():
  # ResNeSt Sec. 7.3: DeepLabV3 on a dilated stride-8 backbone.
  model = DeepLabV3(TINY_NAME, 7, backbone_kwargs=TINY_BACKBONE, output_stride=8,
                    aspp_filters=8, head_filters=8)
  aspp = model.get_layer("aspp")
  assert aspp.atrous_rates == [12, 24, 36] and not aspp.separable
  assert isinstance(model.get_layer("head_conv"), ConvNormAct)
  assert model.get_layer("head_conv").kernel_size == (3, 3)
  logits = model(harness.sample_images(2, (49, 33)), training=False)
  assert logits.shape == (2, 49, 33, 7) and logits.dtype == tf.float32
  backbone = model.get_layer("swidernet_0.25_0.25_0.75")
  assert backbone(harness.sample_images(1, 49))["5"].shape[1:3] == (7, 7)


def test_deeplabv3plus_fuses_the_stride_4_feature():
  model = DeepLabV3Plus(TINY_NAME, 5, backbone_kwargs=TINY_BACKBONE, aspp_filters=8,
                        low_level_filters=4, decoder_filters=8)
  assert model.get_layer("aspp").atrous_rates == [6, 12, 18]
  assert model.get_layer("low_level_projection").filters == 4
  fusions = [model.get_layer(n) for n in ("fusion1", "fusion2")]
  assert all(isinstance(f, SeparableConvNormAct) and f.kernel_size == 3 for f in fusions)
  # The fusion runs at stride 4: 65 -> 17.
  images = harness.sample_images(1, 65)
  logits = model(images, training=False)
  assert logits.shape == (1, 65, 65, 5)
  assert model.get_layer("concat").output.shape[-1] == 12
  config = model.get_config()
  assert config["low_level_feature"] == "2" and config["backbone"] == TINY_NAME
  harness.check_config_roundtrip(model, images, logits, keras_file=False)


@pytest.mark.parametrize("cls, kwargs, arg", [
    (DeepLabV3, dict(num_classes=-1), "num_classes=-1"),
    (DeepLabV3, dict(output_stride=4), "output_stride=4"),
    (DeepLabV3, dict(backbone="pale_tiny"), "'pale_tiny' .pale family. cannot produce "
                                            "output_stride=16; it gives \\[32\\]"),
    (DeepLabV3Plus, dict(decoder_filters=0), "decoder_filters"),
    (DeepLabV3Plus, dict(low_level_feature="1"), "'1'"),
])
def test_bad_arguments_raise_value_errors_naming_them(cls, kwargs, arg):
  args = dict(backbone=TINY_NAME, num_classes=3, backbone_kwargs=TINY_BACKBONE)
  args.update(kwargs)
  with pytest.raises(ValueError, match=arg):
    cls(**args)
