"""The timm / authors' ResNeSt weights: file readers, the mapping table, parity with timm.

Fixtures (tests/data/weights/timm_resnest/, made by scripts/make_resnest_fixture.py with
timm's own classes, random weights and BN statistics): tiny ResNeSts in timm's key
layout written by the `safetensors` package, a fixed image and timm's float64 logits
and last-stage features for it; keys.json holds the key names and shapes of the
full-size released layouts.
"""
import json
import os
import struct
import sys

import numpy as np
import pytest

from tests import harness
from tfvision.layers import conv as conv_module
from tfvision.models import ResNeSt, ResNeSt14, ResNeSt26, create_model, get_preset
from tfvision.weights import mapping, timm_resnest, torch_files

DATA = os.path.join(os.path.dirname(__file__), "data", "weights", "timm_resnest")
# name -> the tfvision arguments of the model the fixture was made for (the .npz
# records them too; test_fixture_records_the_same_arguments keeps both in step).
FIXTURES = {
    "resnest26_2s1x64d": dict(depth=26, width_multiplier=1 / 16, num_classes=7),
    "resnest14_fast_4s2x64d": dict(depth=14, radix=4, cardinality=2, base_width=64,
                                   fast=True, width_multiplier=1 / 16, num_classes=7),
}
TOLERANCE = 1e-5   # max |tfvision - timm| / max |timm|


def _fixture(name):
  reference = np.load(os.path.join(DATA, f"{name}.npz"))
  tensors = timm_resnest.read(os.path.join(DATA, f"{name}.safetensors"))
  return reference, tensors


def _relative_error(got, expected):
  return float(np.abs(got - expected).max() / np.abs(expected).max())


def _load(model, tensors, source_name="test weights"):
  plan = timm_resnest.plan_model(model, tensors, source_name)
  mapping.assign(model, plan)
  return plan


def _snapshot(model):
  return {path: v.numpy().copy() for path, v in mapping.named_variables(model).items()}


def _assert_load_fails_untouched(model, tensors, *patterns):
  """The load raises WeightsMismatchError whose message holds every pattern, and no
  variable of the model changed."""
  before = _snapshot(model)
  with pytest.raises(mapping.WeightsMismatchError) as info:
    _load(model, tensors)
  message = str(info.value)
  for pattern in patterns:
    assert pattern in message, message
  after = _snapshot(model)
  assert all(np.array_equal(before[path], after[path]) for path in before)
  return message


# --- safetensors / .pth readers --------------------------------------------------------


def test_safetensors_round_trip_every_dtype(tmp_path):
  rng = np.random.default_rng(0)
  tensors = {
      "f32": rng.standard_normal((3, 4, 5)).astype(np.float32),
      "f16": rng.standard_normal((7,)).astype(np.float16),
      "f64": rng.standard_normal((2, 2)),
      "i64": rng.integers(-2**40, 2**40, (4,)),
      "i32": rng.integers(-2**30, 2**30, (2, 3)).astype(np.int32),
      "u8": rng.integers(0, 256, (5,)).astype(np.uint8),
      "bool": np.array([True, False, True]),
      "scalar": np.array(2.5, np.float32),
      "empty": np.zeros((0, 3), np.float32),
      "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
  }
  path = tmp_path / "w.safetensors"
  torch_files.write_safetensors(path, tensors, metadata={"format": "pt"})
  read = torch_files.read_safetensors(path)
  assert sorted(read) == sorted(tensors)
  for name, array in tensors.items():
    assert read[name].shape == array.shape, name
    assert read[name].dtype == array.dtype.newbyteorder("="), name
    np.testing.assert_array_equal(read[name], array)
  # The data buffer starts 8-byte aligned, as the reference writer pads it.
  header_size = struct.unpack("<Q", path.read_bytes()[:8])[0]
  assert (8 + header_size) % 8 == 0


def test_safetensors_bfloat16_round_trip(tmp_path):
  values = np.array([1.0, -2.0, 3.140625, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8,
                     1.0 + 2.0**-8 + 2.0**-12, 65504.0, np.inf, -0.0, np.nan], np.float32)
  # bfloat16 keeps 8 significant bits, rounding to nearest, ties to even.
  expected = np.array([1.0, -2.0, 3.140625, 1.0, 1.0 + 2.0**-6, 1.0 + 2.0**-7, 65536.0,
                       np.inf, -0.0, np.nan], np.float32)
  path = tmp_path / "bf16.safetensors"
  torch_files.write_safetensors(path, {"x": values, "y": values}, bfloat16=["x"])
  raw = path.read_bytes()
  header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
  assert (header["x"]["dtype"], header["y"]["dtype"]) == ("BF16", "F32")
  assert header["x"]["data_offsets"][1] - header["x"]["data_offsets"][0] == 2 * len(values)
  read = torch_files.read_safetensors(path)
  assert read["x"].dtype == np.float32
  np.testing.assert_array_equal(read["x"], expected)   # NaN == NaN here; -0.0 == 0.0
  assert np.signbit(read["x"][8])
  np.testing.assert_array_equal(read["y"], values)
  # An ml_dtypes bfloat16 array (TensorFlow's numpy bfloat16) is written bit for bit.
  ml_dtypes = pytest.importorskip("ml_dtypes")
  random = np.random.default_rng(1).standard_normal(100).astype(ml_dtypes.bfloat16)
  torch_files.write_safetensors(path, {"r": random})
  np.testing.assert_array_equal(torch_files.read_safetensors(path)["r"],
                                random.astype(np.float32))


def test_reads_the_safetensors_package_files():
  """The fixtures were written by the `safetensors` package: F16, BF16 and I64 tensors."""
  half = torch_files.read_safetensors(os.path.join(DATA, "resnest26_2s1x64d.safetensors"))
  assert half["conv1.0.weight"].dtype == np.float16
  assert half["conv1.0.weight"].shape == (2, 3, 3, 3)
  assert half["bn1.num_batches_tracked"].dtype == np.int64
  assert half["bn1.num_batches_tracked"].shape == ()
  assert int(half["bn1.num_batches_tracked"]) > 0
  brain = torch_files.read_safetensors(
      os.path.join(DATA, "resnest14_fast_4s2x64d.safetensors"))
  assert brain["layer1.0.conv2.conv.weight"].dtype == np.float32   # BF16, widened
  # Widened bfloat16 values have their low 16 bits zero.
  bits = brain["layer1.0.conv2.conv.weight"].view(np.uint32)
  assert np.all(bits & 0xFFFF == 0) and np.any(bits != 0)


def _write_raw(path, header_bytes, data=b"", header_size=None):
  size = len(header_bytes) if header_size is None else header_size
  path.write_bytes(struct.pack("<Q", size) + header_bytes + data)
  return path


@pytest.mark.parametrize("case, message", [
    ("short", "shorter than the 8-byte header length"),
    ("header_past_end", "header length 1000000 is beyond the file size"),
    ("bad_json", "not valid JSON"),
    ("not_object", "must be a JSON object"),
    ("bad_dtype", "dtype 'F7'"),
    ("bad_offsets", "invalid data_offsets"),
    ("size_mismatch", "needs 24 bytes, its data_offsets [0, 20] hold 20"),
    ("data_past_end", "runs past the end of the file"),
    ("truncated_fixture", "runs past the end of the file"),
])
def test_corrupt_safetensors_names_the_path(tmp_path, case, message):
  path = tmp_path / f"{case}.safetensors"
  entry = lambda **kw: json.dumps({"x": {"dtype": "F32", "shape": [2, 3],  # noqa: E731
                                         "data_offsets": [0, 24], **kw}}).encode()
  if case == "short":
    path.write_bytes(b"\x01\x02")
  elif case == "header_past_end":
    _write_raw(path, b"{}", header_size=1_000_000)
  elif case == "bad_json":
    _write_raw(path, b'{"x": {"dtype": "F32",')
  elif case == "not_object":
    _write_raw(path, b"[1, 2]")
  elif case == "bad_dtype":
    _write_raw(path, entry(dtype="F7"), bytes(24))
  elif case == "bad_offsets":
    _write_raw(path, entry(data_offsets=[24, 0]), bytes(24))
  elif case == "size_mismatch":
    _write_raw(path, entry(data_offsets=[0, 20]), bytes(24))
  elif case == "data_past_end":
    _write_raw(path, entry(), bytes(23))
  else:
    data = open(os.path.join(DATA, "resnest26_2s1x64d.safetensors"), "rb").read()
    path.write_bytes(data[:-100])
  with pytest.raises(ValueError) as info:
    torch_files.read_weights_file(path)
  assert str(path) in str(info.value) and message in str(info.value), str(info.value)


def test_pth_without_torch_says_how_to_get_it(tmp_path, monkeypatch):
  path = tmp_path / "resnest50-528c19ca.pth"
  path.write_bytes(b"not read")
  monkeypatch.setitem(sys.modules, "torch", None)   # `import torch` raises ImportError
  for reader in (torch_files.read_pth, torch_files.read_weights_file, timm_resnest.read):
    with pytest.raises(ValueError) as info:
      reader(path)
    message = str(info.value)
    assert str(path) in message and "pip install torch" in message, message
    assert ".safetensors" in message and "not installed" in message


def test_pth_with_torch_unwraps_training_checkpoints(tmp_path):
  torch = pytest.importorskip("torch")   # not a project dependency: runs where installed
  tensors = torch_files.read_safetensors(
      os.path.join(DATA, "resnest14_fast_4s2x64d.safetensors"))
  state = {f"module.{k}": torch.from_numpy(v.copy()) for k, v in tensors.items()}
  state["module.conv1.0.weight"] = state["module.conv1.0.weight"].bfloat16()
  torch.save({"epoch": 3, "state_dict": state}, tmp_path / "checkpoint.pth")
  read = torch_files.read_weights_file(tmp_path / "checkpoint.pth")
  assert sorted(read) == sorted(tensors)
  assert read["conv1.0.weight"].dtype == np.float32
  for key, value in tensors.items():
    np.testing.assert_array_equal(read[key], value)


def test_unknown_extension_lists_the_accepted_ones(tmp_path):
  path = tmp_path / "weights.h5"
  path.write_bytes(b"")
  with pytest.raises(ValueError, match=r"'\.h5'.*\.safetensors, \.pth, \.pt, \.bin") as info:
    torch_files.read_weights_file(path)
  assert str(path) in str(info.value)


# --- the mapping and parity with timm ------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_records_the_same_arguments(name):
  reference = np.load(os.path.join(DATA, f"{name}.npz"))
  assert json.loads(str(reference["tfvision_arguments"])) == FIXTURES[name]
  assert reference["image"].shape == (2, 64, 64, 3)
  assert reference["logits"].shape == (2, 7)


@pytest.mark.parametrize("direct_grouped_conv", [True, False])
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_logits_match_timm(name, direct_grouped_conv, monkeypatch):
  # Both inference forms of the split attention, whatever this machine's CPU kernels:
  # one grouped conv then bn0 (oneDNN, GPUs), or bn0 folded into one conv per group
  # (TensorFlow's Eigen kernels; `SplitAttention._folded_splits`).
  monkeypatch.setattr(conv_module, "onednn_enabled", lambda: direct_grouped_conv)
  reference, tensors = _fixture(name)
  model = ResNeSt(**FIXTURES[name])
  plan = _load(model, tensors, f"fixture {name}")
  # Every tensor but the BN step counters is used, each by one variable.
  counters = sorted(k for k in tensors if k.endswith("num_batches_tracked"))
  assert plan.ignored == counters and len(counters) > 0
  assert plan.dropped == []
  assert sorted(plan.sources.values()) == sorted(set(tensors) - set(counters))
  logits = model(reference["image"].astype(np.float32), training=False).numpy()
  error = _relative_error(logits, reference["logits"])
  assert error < TOLERANCE, error
  # The loaded values are the file's, transposed: spot-check a grouped kernel and the head.
  variables = mapping.named_variables(model)
  np.testing.assert_array_equal(
      variables["stage2_block1/split_attention/kernel"].numpy(),
      np.transpose(tensors["layer2.0.conv2.conv.weight"], (2, 3, 1, 0)).astype(np.float32))
  np.testing.assert_array_equal(variables["head/fc/kernel"].numpy(),
                                tensors["fc.weight"].T.astype(np.float32))


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_backbone_drops_exactly_the_classifier(name):
  reference, tensors = _fixture(name)
  model = ResNeSt(**{**FIXTURES[name], "include_top": False})
  plan = _load(model, tensors)
  assert plan.dropped == ["fc.bias", "fc.weight"]
  features = model(reference["image"].astype(np.float32), training=False)["5"].numpy()
  error = _relative_error(features, reference["features"])
  assert error < TOLERANCE, error


def test_another_width_lists_the_shapes_and_changes_nothing():
  _, tensors = _fixture("resnest26_2s1x64d")
  wider = ResNeSt(**{**FIXTURES["resnest26_2s1x64d"], "width_multiplier": 1 / 8})
  message = _assert_load_fails_untouched(
      wider, tensors, "do not fit",
      "stem_conv1/conv/kernel (3, 3, 3, 4) <- conv1.0.weight (2, 3, 3, 3)")
  assert "nothing was loaded" in message


def test_another_head_lists_the_classifier_shapes():
  _, tensors = _fixture("resnest26_2s1x64d")
  model = ResNeSt(**{**FIXTURES["resnest26_2s1x64d"], "num_classes": 5})
  _assert_load_fails_untouched(model, tensors, "head/fc/kernel (128, 5) <- fc.weight (7, 128)",
                               "head/fc/bias (5,) <- fc.bias (7,)")


def test_another_layout_fails():
  # The fast fixture (radix 4, two cardinal groups) does not fit the 2s1x64d layout.
  _, tensors = _fixture("resnest14_fast_4s2x64d")
  model = ResNeSt(depth=14, width_multiplier=1 / 16, num_classes=7)
  _assert_load_fails_untouched(
      model, tensors, "stage1_block1/split_attention/kernel (3, 3, 2, 8) <- "
      "layer1.0.conv2.conv.weight (32, 1, 3, 3)")


def test_unknown_tensor_is_listed():
  _, tensors = _fixture("resnest26_2s1x64d")
  extra = dict(tensors)
  extra["layer5.0.conv1.weight"] = np.zeros((4, 4, 1, 1), np.float32)
  extra["layer2.1.se.fc.weight"] = np.zeros((3,), np.float32)
  extra["layer5.0.bn1.num_batches_tracked"] = np.array(3)   # a counter: ignored
  model = ResNeSt(**FIXTURES["resnest26_2s1x64d"])
  message = _assert_load_fails_untouched(
      model, extra, "2 checkpoint tensors are not used by the model",
      "layer5.0.conv1.weight (4, 4, 1, 1)", "layer2.1.se.fc.weight (3,)")
  assert "num_batches_tracked" not in message


def test_missing_tensor_is_listed():
  _, tensors = _fixture("resnest26_2s1x64d")
  fewer = {k: v for k, v in tensors.items()
           if k not in ("layer2.1.conv2.fc1.bias", "layer4.0.downsample.2.running_var")}
  model = ResNeSt(**FIXTURES["resnest26_2s1x64d"])
  _assert_load_fails_untouched(
      model, fewer, "2 model variables have no tensor",
      "stage2_block2/split_attention/fc1_bias <- layer2.1.conv2.fc1.bias",
      "stage4_block1/shortcut/bn/moving_variance <- layer4.0.downsample.2.running_var")


def test_loaded_model_keeps_its_weights_after_a_failed_load():
  reference, tensors = _fixture("resnest26_2s1x64d")
  model = ResNeSt(**FIXTURES["resnest26_2s1x64d"])
  _load(model, tensors)
  broken = dict(tensors)
  broken["layer3.1.conv3.weight"] = broken["layer3.1.conv3.weight"][:, :-1]
  _assert_load_fails_untouched(model, broken, "layer3.1.conv3.weight")
  logits = model(reference["image"].astype(np.float32), training=False).numpy()
  assert _relative_error(logits, reference["logits"]) < TOLERANCE


# --- presets and full-size layouts ---------------------------------------------------


# tfvision preset -> (timm model whose released file it loads, its trainable parameters
# as timm 1.0.31 counts them with the 1000-class head).
TIMM_MODELS = {
    "resnest14": ("resnest14d", 10_611_688),
    "resnest26": ("resnest26d", 17_069_448),
    "resnest50": ("resnest50d", 27_483_240),
    "resnest50_fast_4s2x40d": ("resnest50d_4s2x40d", 30_417_592),
    "resnest50_fast_1s4x24d": ("resnest50d_1s4x24d", 25_677_000),
}


def test_presets_name_the_released_files():
  releases = {name: get_preset(name).weights.get("imagenet")
              for name in ("resnest14", "resnest26", "resnest50", "resnest101",
                           "resnest200", "resnest269", "resnest50_fast_4s2x40d",
                           "resnest50_fast_1s4x24d")}
  assert all(r is not None for r in releases.values())
  assert {r.converter for r in releases.values()} == {timm_resnest.NAME}
  assert len({r.filename for r in releases.values()}) == len(releases)
  assert releases["resnest50"].url == (
      "https://huggingface.co/timm/resnest50d.in1k/resolve/main/model.safetensors")
  assert releases["resnest14"].filename == "resnest14d.gluon_in1k.safetensors"
  assert {n: r.input_size[0] for n, r in releases.items()} == {
      "resnest14": 224, "resnest26": 224, "resnest50": 224, "resnest101": 256,
      "resnest200": 320, "resnest269": 416, "resnest50_fast_4s2x40d": 224,
      "resnest50_fast_1s4x24d": 224}
  assert {n: r.metrics["top1"] for n, r in releases.items()} == {
      "resnest14": 75.75, "resnest26": 78.68, "resnest50": 81.13, "resnest101": 83.0,
      "resnest200": 83.9, "resnest269": 84.5, "resnest50_fast_4s2x40d": 80.86,
      "resnest50_fast_1s4x24d": 80.99}
  assert "bicubic" in releases["resnest200"].crop and "352" in releases["resnest200"].crop
  # The ablation models without a released file have no weights.
  assert get_preset("resnest50_fast_2s1x64d").weights == {}


def test_depth_14_and_26_constructors():
  tiny = dict(width_multiplier=1 / 16, num_classes=3)
  for constructor, depth, blocks in ((ResNeSt14, 14, 4), (ResNeSt26, 26, 8)):
    model = constructor(**tiny)
    assert model.get_config()["depth"] == depth
    assert len([name for name in mapping.named_variables(model)
                if name.endswith("split_attention/kernel")]) == blocks
    assert model.get_layer("stem_conv1").filters == 2   # stem width 32 / 16
  with pytest.raises(ValueError, match="depth is fixed"):
    ResNeSt14(depth=26)


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(TIMM_MODELS))
def test_full_size_presets_fit_the_released_layouts(preset):
  timm_name, timm_params = TIMM_MODELS[preset]
  model = create_model(preset)
  assert harness.count_params(model) == timm_params
  with open(os.path.join(DATA, "keys.json")) as f:
    shapes = json.load(f)[timm_name]
  rng = np.random.default_rng(0)
  tensors = {key: (np.array(5, np.int64) if key.endswith("num_batches_tracked")
                   else rng.standard_normal(shape, dtype=np.float32))
             for key, shape in shapes.items()}
  plan = timm_resnest.plan_model(model, tensors, f"random {timm_name}")
  counters = [k for k in shapes if k.endswith("num_batches_tracked")]
  assert sorted(plan.ignored) == sorted(counters) and plan.dropped == []
  assert plan.coverage == (len(shapes) - len(counters),) * 2
  assert len(plan.values) == len(model.weights)
  np.testing.assert_array_equal(plan.values["stem_conv1/conv/kernel"],
                                np.transpose(tensors["conv1.0.weight"], (2, 3, 1, 0)))
  np.testing.assert_array_equal(plan.values["head/fc/kernel"], tensors["fc.weight"].T)
  backbone_plan = timm_resnest.plan_model(create_model(preset, include_top=False), tensors,
                                          f"random {timm_name}")
  assert backbone_plan.dropped == ["fc.bias", "fc.weight"]
