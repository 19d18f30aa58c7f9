"""Runs the DESIGN.md harness over every preset (tests/harness.py).

Every preset (the cheap checks, no graph): its full-size and test-size arguments resolve
against its family's spec (types, ranges, cross-field checks, the block plan), it names
its source and family. One preset per layout (its model class and the arguments its
name fixes: presets of one layout differ only in widths and depths, the same code) also
builds at its test size and runs forward with the documented shapes and finite values;
the first preset of each model class also gives endpoints "2".."5" with
`include_top=False`, and `get_config` -> `from_config` with copied weights giving equal
outputs. So adding presets of an existing layout adds no model build to CI.

One representative per distinct block layout of each family (models that differ only
in width or depth reuse the same layers and code paths) additionally goes through XLA,
mixed_bfloat16, the `.keras` file, SavedModel, TFLite/LiteRT parity and a distributed
training step. Those steps cost 20-120 s per model on the 2-core CI machine, and CI
has to stay under 30 minutes for all five families.

"""
import pytest

from tests import harness
from tfvision.models import get_preset, list_models

ALL_MODELS = list_models()

REPRESENTATIVES = {
    # SE + SAC + basic and bottleneck blocks: every SWideRNet code path.
    "swidernet": ["swidernet_0.25_0.25_0.75"],
    # ResNeSt: the "fast" layout with radix 4 and two cardinal groups exercises every
    # split-attention path but the sigmoid gate (radix 1), whose XLA / bf16 / TFLite runs
    # are in test_split_attention.py; resnest50 differs only in the pool's position.
    "resnest": ["resnest50_fast_4s2x40d"],
    # Panoptic-DeepLab: dual ASPP / decoders, separable and 1x1 convs, three float32
    # heads, aligned-corner upsampling. DeepLabV3 / V3+ are built from the same layers
    # (ASPP, ConvNormAct, SeparableConvNormAct, ResizeToMatch, a float32 1x1 classifier).
    "deeplab": ["panoptic_deeplab_swidernet_0.25_0.25_0.75"],
    # BoTNet-50: ResNet blocks in c2-c4, strided and unstrided BoT blocks (the ResNet
    # baselines use the same blocks; S1 / SE blocks: tests/test_botnet.py).
    "botnet": ["botnet50"],
    # T / S / B share one block layout (parallel pale attention, padded at every stage
    # of the tiny 64x64 configuration); the other attention modes are covered in
    # tests/test_pale_attention.py (XLA, TFLite) and tests/test_pale.py.
    "pale": ["pale_tiny"],
    # Basic blocks, then axial blocks (strided, projected, key/value expansion 2/4) past
    # stride 16. It traces a third of axial_resnet_s's training graph; the Axial-ResNet
    # stems get XLA / TFLite / bf16 checks in test_axial_resnet.py.
    "axial_resnet": ["axial_swidernet_1_1_1"],
}
FULL = sorted({name for names in REPRESENTATIVES.values() for name in names})



def _first_entry_per_builder(names):
  """The first preset of each model class.

  Presets of one class differ only in its arguments (widths, depths, radix, ...):
  `get_config` / `from_config` and the `include_top=False` endpoints are the class's
  code, so one preset per class exercises them; every preset still builds and runs.
  """
  seen, first = set(), []
  for name in names:
    model_class = get_preset(name).model
    if model_class not in seen:
      seen.add(model_class)
      first.append(name)
  return first


def _first_entry_per_layout(names):
  """The first preset of each (model class, arguments its name fixes)."""
  seen, first = set(), []
  for name in names:
    preset = get_preset(name)
    key = (preset.model, tuple(sorted(preset.fixed)))
    if key not in seen:
      seen.add(key)
      first.append(name)
  return first


ROUND_TRIP = set(_first_entry_per_builder(ALL_MODELS))
BUILT = _first_entry_per_layout(ALL_MODELS)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_preset_resolves_against_its_spec(name):
  preset = get_preset(name)
  assert preset.source and preset.family == preset.model.FAMILY
  arguments = preset.arguments()
  tiny = preset.tiny_preset().arguments()
  if preset.task != "classification":
    # A dense preset: its backbone preset resolves too (at the output stride it gets).
    for args in (arguments, tiny):
      backbone = get_preset(args["backbone"])
      backbone.model.resolve_arguments((), {**backbone.arguments(),
                                            **(args.get("backbone_kwargs") or {}),
                                            "include_top": False,
                                            "output_stride": args.get("output_stride", 16)})
    own = lambda args: {k: v for k, v in args.items()
                        if k not in ("backbone", "backbone_kwargs")}
    arguments, tiny = own(arguments), own(tiny)
  preset.model.resolve_arguments((), arguments)
  preset.model.resolve_arguments((), tiny)


@pytest.mark.parametrize("name", BUILT)
def test_builds_runs_and_round_trips_config(name):
  model, images, outputs = harness.check_forward(name, jit_compile=False)
  if name not in ROUND_TRIP:
    return
  harness.check_config_roundtrip(model, images, outputs, keras_file=False)
  if get_preset(name).task == "classification":
    harness.check_backbone_endpoints(name)


@pytest.mark.parametrize("name", FULL)
def test_xla_keras_file_savedmodel_tflite(name, tmp_path):
  model, images, outputs = harness.check_forward(name, jit_compile=True)
  harness.check_config_roundtrip(model, images, outputs, keras_file=True,
                                 tmp_dir=str(tmp_path))
  harness.check_saved_model(model, images, outputs, str(tmp_path))
  harness.check_tflite(model, images, outputs)


@pytest.mark.parametrize("name", FULL)
def test_mixed_bfloat16(name):
  harness.check_mixed_bfloat16(name)


@pytest.mark.parametrize("name", FULL)
def test_distributed_training_step(name):
  harness.check_distributed_training(name)


def test_every_layout_and_class_is_built():
  assert ROUND_TRIP <= set(BUILT)
  assert len(BUILT) < len(ALL_MODELS) / 2, (len(BUILT), len(ALL_MODELS))


def test_every_family_has_a_representative():
  families = {get_preset(n).family for n in ALL_MODELS}
  assert families <= set(REPRESENTATIVES), families - set(REPRESENTATIVES)
  for name in FULL:
    assert name in ALL_MODELS, name
