"""BoTNet / ResNet: layout, parameter counts and MACs against the paper, sizes, bad input."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests import harness
from tfvision.blocks import BottleneckTransformerBlock, ResNetBottleneckBlock
from tfvision.models import (BoTNet, BoTNet50, BoTNetS1, BoTNetT3, BoTNetT7, ResNet, ResNet50,
                             create_model, get_preset, list_models)
from tfvision.models.botnet import BLOCK_LAYOUTS, SCALED_FAMILY, stage_plan
from tfvision.models.spec import UnknownArgumentError
from tfvision.utils.flops import count_macs

TINY = dict(base_width=8, num_classes=7)
# c5 in ResNet-50: three 3x3 512->512 kernels; BoT: three fused 512->3*512 q/k/v kernels.
C5_CONV_KERNELS = 3 * 3 * 3 * 512 * 512
C5_QKV_KERNELS = 3 * 3 * 512 * 512


def _attention_layers(model):
  return [layer.attention for layer in model.layers
          if isinstance(layer, BottleneckTransformerBlock)]


def _kernel_params(model):
  """Conv and dense kernels only: what the authors' counting script counts."""
  return int(sum(np.prod(v.shape) for v in model.trainable_variables
                 if "kernel" in v.name and "position" not in v.name))


def test_block_layouts_give_their_depths():
  for depth, layout in BLOCK_LAYOUTS.items():
    assert 3 * sum(layout) + 2 == depth
  assert [d for d, _ in SCALED_FAMILY.values()] == [59, 110, 128, 77, 128]


def test_stage_plan_strides_and_attention_inputs():
  plan = stage_plan(50)
  assert [[b["strides"] for b in stage] for stage in plan] == [
      [1, 1, 1], [2, 1, 1, 1], [2] + [1] * 5, [2, 1, 1]]
  # BoT50: the first c5 block attends over the stride-16 map, the others at 32.
  assert [b["input_stride"] for b in plan[3]] == [16, 32, 32]
  s1 = stage_plan(50, output_stride=16)
  assert [b["strides"] for b in s1[3]] == [1, 1, 1]
  assert [b["input_stride"] for b in s1[3]] == [16, 16, 16]
  rates = [b["drop_path_rate"] for stage in stage_plan(50, drop_path_rate=0.15) for b in stage]
  assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.15) and rates == sorted(rates)


def test_botnet_differs_from_resnet_only_in_c5():
  resnet = ResNet50(**TINY)
  botnet = BoTNet50(**TINY)
  shapes = lambda m: {v.name: tuple(v.shape) for v in m.weights}  # noqa: E731
  res, bot = shapes(resnet), shapes(botnet)
  assert {k: v for k, v in res.items() if not k.startswith("c5_")} == {
      k: v for k, v in bot.items() if not k.startswith("c5_")}
  assert [type(l).__name__ for l in botnet.layers if l.name.startswith("c5_")] == [
      "BottleneckTransformerBlock"] * 3
  assert all(isinstance(l, ResNetBottleneckBlock) for l in resnet.layers
             if l.name.startswith("c"))


def test_position_tables_fit_the_static_map_or_max_input_size():
  rows = lambda m: [(a.position_height.shape[0], a.position_width.shape[0])  # noqa: E731
                    for a in _attention_layers(m)]
  # 224 x 320: 14 x 20 maps in the first c5 block, 7 x 10 after its pooling.
  assert rows(BoTNet50(input_shape=(224, 320, 3), **TINY)) == [(27, 39), (13, 19), (13, 19)]
  assert rows(BoTNet50(**TINY)) == [(127, 127), (63, 63), (63, 63)]
  assert rows(BoTNetS1(50, max_input_size=384, **TINY)) == [(47, 47)] * 3


def test_strided_bot_block_attends_then_pools():
  block = BottleneckTransformerBlock(8, strides=2, num_heads=2, max_size=6)
  x = tf.constant(np.random.RandomState(0).rand(2, 6, 6, 16).astype("float32"))
  out = block(x, training=False)
  assert out.shape == (2, 3, 3, 32)
  branch = block.conv1(x, training=False)
  branch = block.attention(branch)
  branch = tf_keras.layers.AveragePooling2D(2, 2)(branch)
  branch = tf.nn.relu(block.bn2(branch, training=False))
  branch = block.conv3(branch, training=False)
  want = tf.nn.relu(branch + block.shortcut(x, training=False))
  np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
  config = block.get_config()
  clone = BottleneckTransformerBlock.from_config(config)
  assert clone.get_config() == config


def test_unstrided_se_bot_block_under_xla_tflite_and_mixed_bfloat16():
  """The S1 / T-family block (stride 1, SE) outside the harness representative."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  x = np.random.RandomState(1).rand(1, 5, 4, 32).astype("float32")
  block = BottleneckTransformerBlock(16, num_heads=4, max_size=(6, 6), se_ratio=0.0625,
                                     activation="silu")
  want = block(x, training=False).numpy()
  compiled = tf.function(lambda t: block(t, training=False), jit_compile=True)
  np.testing.assert_allclose(compiled(x).numpy(), want, rtol=1e-5, atol=1e-5)
  fn = tf.function(lambda t: block(t, training=False),
                   input_signature=[tf.TensorSpec(x.shape, tf.float32)])
  converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                              block)
  interpreter = Interpreter(model_content=converter.convert())
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
  interpreter.invoke()
  got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    mixed = BottleneckTransformerBlock(16, num_heads=4, max_size=6, se_ratio=0.0625)
    with tf.GradientTape() as tape:
      y = mixed(tf.constant(x), training=True)
      loss = tf.reduce_mean(tf.cast(y, tf.float32) ** 2)
    grads = tape.gradient(loss, mixed.trainable_variables)
    assert y.dtype == tf.bfloat16
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")


def test_scaled_family_uses_se_and_stride_one():
  model = create_model("botnet_t3.tiny")
  config = model.get_config()
  assert model.name == "botnet_t3"
  assert config["depth"] == 59 and config["output_stride"] == 16
  assert config["se_ratio"] == 0.0625
  c5 = [l for l in model.layers if l.name.startswith("c5_")]
  assert len(c5) == 6 and all(l.se is not None for l in c5)
  plain = BoTNetT3(se_in_attention_blocks=False, **TINY)
  assert all(l.se is None for l in plain.layers if l.name.startswith("c5_"))
  assert all(l.se is not None for l in plain.layers if l.name.startswith("c4_"))


def test_table4_ablations_differ_in_position_parameters():
  x = tf.constant(np.random.RandomState(2).rand(1, 4, 4, 32).astype("float32"))
  blocks = {}
  for key, kwargs in (("relative", {}), ("absolute", dict(position_encoding="absolute")),
                      ("content", dict(position_encoding=None)),
                      ("position", dict(content_logits=False))):
    blocks[key] = BottleneckTransformerBlock(16, num_heads=2, max_size=(5, 6), **kwargs)
    assert np.all(np.isfinite(blocks[key](x, training=False).numpy()))
  count = lambda b: sum(int(np.prod(v.shape)) for v in b.trainable_variables)  # noqa: E731
  assert count(blocks["relative"]) - count(blocks["content"]) == (9 + 11) * 8
  assert count(blocks["absolute"]) - count(blocks["content"]) == (5 + 6) * 8
  assert count(blocks["position"]) == count(blocks["relative"])
  model = BoTNet50(position_encoding="absolute", content_logits=False, **TINY)
  assert model.get_config()["position_encoding"] == "absolute"
  assert np.all(np.isfinite(model(harness.sample_images(1, 64), training=False).numpy()))


@pytest.mark.slow
def test_table9_parameters_and_macs_and_resnet50_matches_model_garden():
  from official.vision.modeling.backbones import resnet as mg_resnet  # pylint: disable=import-outside-toplevel
  botnet = BoTNet50(input_shape=(224, 224, 3))
  resnet = ResNet50(input_shape=(224, 224, 3))
  s1 = BoTNetS1(50, input_shape=(224, 224, 3))
  # torchvision / Keras ResNet-50 with BN scale and offset: 25,557,032.
  assert harness.count_params(resnet) == 25_557_032
  garden = mg_resnet.ResNet(50, input_specs=tf_keras.layers.InputSpec(shape=[None, 224, 224, 3]))
  assert harness.count_params(garden) + 2048 * 1000 + 1000 == 25_557_032
  kernels = lambda m: sorted(tuple(v.shape) for v in m.trainable_variables  # noqa: E731
                             if len(v.shape) == 4)
  assert kernels(resnet) == kernels(garden)
  # BoTNet-50 (Table 1: 20.8M): c5's 3x3 kernels become q/k/v, plus relative tables of
  # 27, 13 and 13 rows per axis (14x14 then 7x7 maps at 224), 128 wide.
  tables = 2 * (27 + 13 + 13) * 128
  assert harness.count_params(botnet) == 25_557_032 - C5_CONV_KERNELS + C5_QKV_KERNELS + tables
  assert harness.count_params(botnet) == 20_852_008
  # BoTNet-S1-50 attends over 14x14 in all three blocks: 2 * 14 * 128 * 2 more table rows.
  assert harness.count_params(s1) == 20_852_008 + 2 * (27 - 13) * 128 * 2 == 20_859_176
  # Table 9 (224, with the classifier): BoT50 3.79G; BoT-S1-50 4.27G. The authors' own
  # script gives 4.02G and 5.42G for these layouts; see BENCHMARKS.md.
  bot50 = count_macs(botnet, (224, 224, 3))
  assert bot50 == pytest.approx(3.79e9, rel=0.10)
  assert bot50 == pytest.approx(4_024_557_568, rel=0.002)
  assert count_macs(s1, (224, 224, 3)) == pytest.approx(5_418_045_440, rel=0.002)
  assert count_macs(resnet, (224, 224, 3)) == pytest.approx(4_089_184_256, rel=0.002)


@pytest.mark.slow
def test_table1_macs_at_1024():
  # Table 1 (1024 x 1024, backbone only): R50 85.4G, BoT50 102.98G M.Adds.
  resnet = ResNet50(include_top=False, input_shape=(1024, 1024, 3))
  botnet = BoTNet50(include_top=False, input_shape=(1024, 1024, 3))
  assert count_macs(resnet, (1024, 1024, 3)) == pytest.approx(85.4e9, rel=0.002)
  assert count_macs(botnet, (1024, 1024, 3)) == pytest.approx(102.98e9, rel=0.002)


@pytest.mark.slow
@pytest.mark.parametrize("builder,kernel_params", [(BoTNetT3, 33_522_880),
                                                   (BoTNetT7, 75_138_240)])
def test_scaled_family_kernels_match_the_authors_count(builder, kernel_params):
  """The script counts conv / dense kernels (not BN, biases, position tables): T3
  33.5M and T5/T7 75.1M as the paper reports."""
  model = builder(input_shape=(224, 224, 3))
  assert _kernel_params(model) == kernel_params


@pytest.mark.slow
def test_variable_size_runs_at_224_and_1024_and_rejects_larger_maps():
  model = BoTNet50(include_top=False, **TINY)
  for size in (224, 1024):
    out = model(harness.sample_images(1, size), training=False)
    assert out["5"].shape[1:3] == (size // 32, size // 32)
  s1 = BoTNetS1(50, include_top=False, **TINY)
  assert s1(harness.sample_images(1, 1024), training=False)["5"].shape[1:3] == (64, 64)
  with pytest.raises(ValueError, match=r"height 65 exceeds .*max_size=\(64, 64\)"):
    s1(harness.sample_images(1, 1040), training=False)


def test_bad_input_names_the_argument():
  with pytest.raises(ValueError, match="received depth=42"):
    BoTNet(depth=42)
  with pytest.raises(ValueError, match="received depth=34"):
    ResNet(depth=34)
  with pytest.raises(ValueError, match="received depth=18"):
    BoTNetS1(18)
  with pytest.raises(ValueError, match="received num_heads=3"):
    BoTNet50(num_heads=3)
  with pytest.raises(ValueError, match="received output_stride=8"):
    BoTNet50(output_stride=8)
  with pytest.raises(ValueError, match="received max_input_size=0"):
    BoTNet50(max_input_size=0)
  with pytest.raises(ValueError, match="received position_encoding='learned'"):
    BoTNet50(position_encoding="learned")
  with pytest.raises(ValueError, match="content_logits=False"):
    BoTNet50(position_encoding=None, content_logits=False)
  with pytest.raises(ValueError, match="received input_shape="):
    BoTNet50(input_shape=(224, 224))


def test_registry_names():
  names = list_models(family="botnet")
  for name in ("botnet50", "botnet101", "botnet152", "botnet200", "botnet_s1_50",
               "botnet_t3", "botnet_t4", "botnet_t5", "botnet_t6", "botnet_t7", "resnet50", "resnet101", "resnet152", "resnet200"):
    assert name in names
  assert get_preset("botnet_t6").fixed == {"depth": 77, "output_stride": 16,
                                           "se_ratio": 0.0625}
  assert get_preset("botnet_t6").default_size == 320
  with pytest.raises(ValueError, match="depth is fixed by the preset 'botnet50'"):
    BoTNet50(depth=101)


def test_model_garden_factory_builds_the_backbones_for_fpn():
  from official.vision.configs import common  # pylint: disable=import-outside-toplevel
  from official.vision.modeling.backbones import factory  # pylint: disable=import-outside-toplevel
  from official.vision.modeling.decoders import fpn  # pylint: disable=import-outside-toplevel
  from tfvision.configs import backbones  # pylint: disable=import-outside-toplevel
  specs = tf_keras.layers.InputSpec(shape=[None, 128, 128, 3])
  norm = common.NormActivation(use_sync_bn=False, norm_momentum=0.97, norm_epsilon=1e-4)
  config = backbones.preset_config("botnet50", base_width=8)
  assert config.as_dict() == {"type": "botnet", "botnet": config.botnet.as_dict()}
  model = factory.build_backbone(specs, config, norm,
                                 l2_regularizer=tf_keras.regularizers.l2(4e-5))
  # Model Garden feeds mean/std-normalised images, which the backbone's one Normalize
  # layer takes as they are (BoTNet normalises with the same ImageNet statistics).
  assert isinstance(model, BoTNet)
  assert model.get_config()["input_normalization"] == "model_garden"
  assert model.get_config()["weight_decay"] == pytest.approx(4e-5)
  assert model.get_config()["norm"] == {"kind": "batch", "momentum": 0.97, "epsilon": 1e-4}
  assert sorted(model.output_specs) == ["2", "3", "4", "5"]
  decoder = fpn.FPN(input_specs=model.output_specs, min_level=2, max_level=6, num_filters=16)
  features = decoder(model(harness.sample_images(1, 128), training=False))
  assert features["2"].shape == (1, 32, 32, 16) and features["6"].shape == (1, 2, 2, 16)
  resnet = factory.build_backbone(
      specs, backbones.preset_config("resnet50", base_width=8), norm)
  assert isinstance(resnet, ResNet) and resnet.output_specs["5"][1:3] == (4, 4)
  with pytest.raises(UnknownArgumentError, match=r"botnet family.*model_id.*now depth"):
    config.override({"botnet": {"model_id": 101}})
