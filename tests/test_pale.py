"""Pale Transformer T / S / B: Table 1 layout, Table 2 counts, modes, any size, bad input."""
import numpy as np
import pytest
import tensorflow as tf

from tests import harness
from tfvision.blocks import OverlappingPatchMerging, PaleTransformerBlock
from tfvision.models import (PaleTransformer, PaleTransformerBase, PaleTransformerSmall,
                             PaleTransformerTiny, create_model, list_models)
from tfvision.utils.flops import count_macs

SMALL = dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 2))


def _blocks(model):
  return [layer for layer in model.layers if isinstance(layer, PaleTransformerBlock)]


def expected_parameters(embed_dim, depths=(2, 2, 16, 2), num_classes=1000):
  """Trainable parameters of the architecture as the paper and CSWin / CvT describe it."""
  total, c_in = 0, 3
  for index, (kernel, depth) in enumerate(zip((7, 3, 3, 3), depths)):
    c = embed_dim * 2 ** index
    total += kernel * kernel * c_in * c + c + 2 * c       # conv + bias, LayerNorm
    block = (9 * c + c                                   # CPE: depthwise 3x3 + bias
             + 2 * c                                     # LN
             + 3 * (9 * c + 2 * c + c * c + c)           # q, k, v: dw 3x3, BN, pointwise
             + c * c + c                                 # projection (Eq. 15)
             + 2 * c                                     # LN
             + c * 4 * c + 4 * c + 4 * c * c + c)        # MLP, ratio 4
    total += depth * block
    c_in = c
  return total + 2 * c_in + c_in * num_classes + num_classes  # final LN, classifier


# Table 2: parameters and FLOPs (= MACs) at 224; Table 1: heads; appendix: drop path.
VARIANTS = [
    (PaleTransformerTiny, 64, (2, 4, 8, 16), 22e6, 4.2e9, 0.1),
    (PaleTransformerSmall, 96, (2, 4, 8, 16), 48e6, 9.0e9, 0.3),
    (PaleTransformerBase, 128, (4, 8, 16, 32), 85e6, 15.6e9, 0.5),
]


@pytest.mark.slow
@pytest.mark.parametrize("builder,embed_dim,heads,paper_params,paper_macs,drop_path",
                         VARIANTS, ids=["tiny", "small", "base"])
def test_table1_layout_and_table2_parameters_and_macs(builder, embed_dim, heads,
                                                      paper_params, paper_macs, drop_path):
  model = builder(input_shape=(224, 224, 3))
  params = harness.count_params(model)
  assert params == expected_parameters(embed_dim)
  assert abs(params / paper_params - 1) < 0.02, params
  macs = count_macs(model, (224, 224, 3))
  assert abs(macs / paper_macs - 1) < 0.05, macs
  # Table 1: four stages of [2, 2, 16, 2] blocks, C doubling, H_i heads, pale size 7.
  blocks = _blocks(model)
  stage_of = [0] * 2 + [1] * 2 + [2] * 16 + [3] * 2
  assert len(blocks) == 22
  assert [b.channels for b in blocks] == [embed_dim * 2 ** s for s in stage_of]
  assert [b.num_heads for b in blocks] == [heads[s] for s in stage_of]
  assert all(b.pale_size == 7 and b.mlp_ratio == 4.0 and b.mode == "parallel"
             for b in blocks)
  # Appendix + Swin: drop path rising linearly from 0 to the variant's maximum.
  np.testing.assert_allclose([b.drop_path_rate for b in blocks],
                             np.linspace(0.0, drop_path, 22), atol=1e-7)
  merges = [l for l in model.layers if isinstance(l, OverlappingPatchMerging)]
  assert [(m.kernel_size, m.strides, m.padding) for m in merges] == [
      (7, 4, 2), (3, 2, 1), (3, 2, 1), (3, 2, 1)]
  assert all(b.norm1.epsilon == 1e-5 for b in blocks)


def test_registry_names_and_constructors():
  assert list_models(family="pale") == ["pale_base", "pale_small", "pale_tiny"]
  model = create_model("pale_small.tiny", num_classes=5, input_shape=(64, 64, 3))
  assert model.name == "pale_small"
  assert model.get_config()["drop_path_rate"] == 0.3
  assert model(harness.sample_images(1, 64), training=False).shape == (1, 5)


def test_any_input_size_gives_endpoints_at_strides_4_to_32():
  """Pale size 7 on maps it does not divide (64, 32, 16, 8 ...): padded, cropped back."""
  model = PaleTransformer(include_top=False, **SMALL)
  assert set(model.output_specs) == {"2", "3", "4", "5"}
  for height, width in [(256, 256), (512, 1024), (100, 75)]:
    outputs = model(harness.sample_images(1, (height, width)), training=False)
    # 7x7 stride 4 padding 2, then 3x3 stride 2 padding 1 (PyTorch output sizes).
    side_h, side_w = (height - 3) // 4 + 1, (width - 3) // 4 + 1
    for level in (2, 3, 4, 5):
      feature = outputs[str(level)].numpy()
      assert feature.shape == (1, side_h, side_w, 16 * 2 ** (level - 2)), (level,
                                                                           feature.shape)
      assert np.all(np.isfinite(feature))
      side_h, side_w = (side_h + 1) // 2, (side_w + 1) // 2


def test_backbone_is_the_classifier_without_its_head():
  """The same layers with and without the head: endpoint "5" is the classifier's input."""
  backbone = PaleTransformer(include_top=False, input_shape=(64, 64, 3), **SMALL)
  classifier = PaleTransformer(input_shape=(64, 64, 3), **SMALL)
  names = [layer.name for layer in backbone.layers]
  assert [layer.name for layer in classifier.layers] == names + ["head"]
  assert "norm" in names and not any(name.startswith("out_norm") for name in names)
  backbone.set_weights(classifier.get_weights()[:len(backbone.weights)])
  images = harness.sample_images(1, 64)
  pooled = tf.reduce_mean(backbone(images, training=False)["5"], axis=[1, 2])
  logits = classifier.get_layer("head").fc(pooled)
  np.testing.assert_allclose(logits.numpy(), classifier(images, training=False).numpy(),
                             atol=1e-5)


@pytest.mark.parametrize("mode", ["sequential", "vanilla", "axial", "cross_shaped"])
def test_table8_modes_build_and_run(mode):
  model = PaleTransformer(mode=mode, num_classes=3, embed_dim=16, depths=(2, 1, 1, 1),
                          num_heads=(2, 2, 2, 2), pale_size=3, input_shape=(48, 40, 3))
  out = model(harness.sample_images(2, (48, 40)), training=False).numpy()
  assert out.shape == (2, 3) and np.all(np.isfinite(out))
  blocks = _blocks(model)
  assert all(b.attention.mode == mode for b in blocks)
  if mode == "sequential":
    # Rows and columns alternately in consecutive blocks of a stage (Sec. "Comparisons").
    assert [b.sequential_direction for b in blocks[:2]] == ["row", "column"]


def test_per_stage_pale_sizes():
  model = PaleTransformer(pale_size=[1, 3, 5, 7], input_shape=(64, 64, 3), **SMALL)
  assert [b.pale_size for b in _blocks(model)] == [1, 3, 5, 7]


@pytest.mark.parametrize("kwargs,name", [
    (dict(pale_size=0), "pale_size"),
    (dict(pale_size=[7, 7, 7]), "pale_size"),
    (dict(pale_size=[7, 7, 0, 7]), "pale_size"),
    (dict(num_heads=(2, 4, 8, 15)), "num_heads"),
    (dict(num_heads=(2, 4, 6, 16)), "num_heads"),   # 3 heads per branch, 128 channels
    (dict(num_heads=(2, 4, 8)), "num_heads"),
    (dict(depths=(2, 2, 0, 2)), "depths"),
    (dict(mode="window"), "mode"),
    (dict(embed_dim=0), "embed_dim"),
    (dict(mlp_ratio=-1), "mlp_ratio"),
    (dict(drop_path_rate=1.5), "drop_path_rate"),
    (dict(input_shape=(64, 64, 4)), "input_shape"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
  with pytest.raises(ValueError, match=rf"received {name}="):
    PaleTransformer(**kwargs)
