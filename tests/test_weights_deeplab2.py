"""deeplab2 checkpoints: parity on fixtures written by deeplab2, coverage, bad input."""
import re
import shutil

import numpy as np
import pytest

from tests import weights_fixtures as fx
from tfvision.models import get_preset
from tfvision.weights import WeightsMismatchError, api, deeplab2, mapping

PANOPTIC_OUTPUTS = ("semantic_logits", "center_heatmap", "offsets")


def _weights(model):
  return [w.copy() for w in model.get_weights()]


def _load_and_compare(model, path):
  """Loads a panoptic fixture; its three outputs within 1e-5 of deeplab2's. The plan."""
  plan = api.load_source(model, path)
  reference = fx.outputs(path)
  got = model(reference["image"], training=False)
  for key in PANOPTIC_OUTPUTS:
    assert fx.relative_error(got[key], reference[key]) < 1e-5, key
  return plan


def test_panoptic_swidernet_sac_se_matches_deeplab2():
  model = fx.panoptic_swidernet_sac_se()
  plan = _load_and_compare(model, fx.PANOPTIC)
  # Every checkpoint tensor fills exactly one variable; the rest is optimizer state.
  used, present = plan.coverage
  assert used == present == len(model.weights)
  assert plan.dropped == []
  assert any(".OPTIMIZER_SLOT" in key for key in plan.ignored)
  assert "global_step" in plan.ignored


def test_axial_max_deeplab_s_from_tar_gz_matches_deeplab2():
  model = fx.axial_max_deeplab_s()
  plan = _load_and_compare(model, fx.AXIAL_TAR)
  used, present = plan.coverage
  # The stacked retrieved-output norms fill two tfvision norms each.
  assert used == present
  assert len(plan.values) > used
  axial = [p for p in plan.sources if "content_output_norm/gamma" in p]
  assert axial and all(plan.sources[p].endswith("_batch_norm_retrieved_output/gamma")
                       for p in axial)


def test_imagenet_root_loads_into_the_backbone():
  backbone = fx.swidernet_sac_backbone()
  tensors = deeplab2.read(fx.IMAGENET)
  assert tensors.root == "backbone/_encoder/"
  plan = api.load_source(backbone, fx.IMAGENET)
  assert plan.coverage[0] == plan.coverage[1] == len(backbone.weights)
  reference = fx.outputs(fx.IMAGENET)
  got = backbone(reference["image"], training=False)
  for endpoint, key in (("2", "res2"), ("3", "res3"), ("5", "res5")):
    assert fx.relative_error(got[endpoint], reference[key]) < 1e-5, key


def test_dense_checkpoint_encoder_loads_into_a_backbone_dropping_the_heads():
  backbone = fx.swidernet_sac_se_backbone()
  plan = api.load_source(backbone, fx.PANOPTIC)
  assert plan.dropped and all(not key.startswith("encoder/") for key in plan.dropped)
  assert any(key.startswith("semantic_last_layer") for key in plan.dropped)


def test_mapping_table_transforms():
  stacked = np.arange(2 * 1 * 3 * 1 * 4, dtype=np.float32).reshape(2, 1, 3, 1, 4)
  np.testing.assert_array_equal(mapping.TRANSFORMS["retrieved_content"](stacked),
                                np.arange(12))
  np.testing.assert_array_equal(mapping.TRANSFORMS["retrieved_value_rpe"](stacked),
                                np.arange(12, 24))
  torch_conv = np.arange(4 * 3 * 2 * 2).reshape(4, 3, 2, 2)
  assert mapping.TRANSFORMS["oihw_to_hwio"](torch_conv).shape == (2, 2, 3, 4)
  with pytest.raises(ValueError, match="transform"):
    mapping.Rule("x", "y", "transpose")


def test_another_architecture_names_the_tensors_that_do_not_fit():
  model = fx.axial_max_deeplab_s()
  before = _weights(model)
  with pytest.raises(WeightsMismatchError) as error:
    api.load_source(model, fx.PANOPTIC)
  message = str(error.value)
  assert "nothing was loaded" in message
  assert "have no tensor in the checkpoint" in message
  assert "are not used by the model" in message
  # The first tensors that do not fit are listed with their shapes.
  assert re.search(r"\n  encoder/_stage\S+ \(\d+(, \d+)*,?\)\n", message), message
  for old, new in zip(before, model.get_weights()):
    np.testing.assert_array_equal(old, new)


def test_another_width_lists_shapes_and_loads_nothing():
  model = get_preset("panoptic_deeplab_swidernet_sac_1_1_1_os16").build_tiny()
  before = _weights(model)
  with pytest.raises(WeightsMismatchError, match=r"(?s)do not fit.*\(3, 3, 3, 4\) <- \S+ \(3, 3, 3, 2\)"):
    api.load_source(model, fx.PANOPTIC)
  for old, new in zip(before, model.get_weights()):
    np.testing.assert_array_equal(old, new)


def test_truncated_archive_and_corrupt_checkpoint(tmp_path):
  truncated = tmp_path / "truncated.tar.gz"
  data = open(fx.AXIAL_TAR, "rb").read()
  truncated.write_bytes(data[:len(data) // 2])
  model = fx.axial_max_deeplab_s()
  before = _weights(model)
  with pytest.raises(ValueError, match="truncated or corrupt"):
    api.load_source(model, str(truncated))
  corrupt = tmp_path / "corrupt"
  shutil.copytree(fx.PANOPTIC, corrupt)
  data_file = next(corrupt.glob("*.data-*"))
  data_file.write_bytes(data_file.read_bytes()[:1000])
  panoptic = fx.panoptic_swidernet_sac_se()
  with pytest.raises(ValueError, match="corrupt|cannot read"):
    api.load_source(panoptic, str(corrupt))
  for old, new in zip(before, model.get_weights()):
    np.testing.assert_array_equal(old, new)
  with pytest.raises(ValueError, match="received path="):
    api.load_source(model, str(tmp_path / "missing.tar.gz"))
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(ValueError, match="expected one checkpoint"):
    api.load_source(model, str(empty))


def test_converted_weights_round_trip_and_init_checkpoint(tmp_path):
  """convert() output: loadable by path, by Model Garden's init_checkpoint, exportable."""
  from tfvision.tasks.common import initialize_from_checkpoint  # pylint: disable=import-outside-toplevel
  model = fx.panoptic_swidernet_sac_se()
  api.load_source(model, fx.PANOPTIC)
  out = str(tmp_path / "converted")
  api.save_converted(model, out, {"preset": None, "arguments": {}})
  fresh = fx.panoptic_swidernet_sac_se()
  initialize_from_checkpoint(fresh, out, "all")
  image = fx.outputs(fx.PANOPTIC)["image"]
  want = model(image, training=False)
  got = fresh(image, training=False)
  for key in PANOPTIC_OUTPUTS:
    np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6)
