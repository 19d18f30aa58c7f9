"""create_model(name, weights=...): download over HTTP (127.0.0.1 only), convert once,
cache, load; the converted weights in init_checkpoint and in the exporters; bad input."""
import functools
import hashlib
import http.server
import os
import shutil
import socket
import tarfile
import threading

import numpy as np
import pytest

from tests import weights_fixtures as fx
from tfvision import export
from tfvision.models import PanopticDeepLab, create_model, registry
from tfvision.tasks.common import initialize_from_checkpoint
from tfvision.weights import DownloadError, api, mapping

ALIAS = "cityscapes"


class _Files(http.server.SimpleHTTPRequestHandler):
  """Serves one folder; counts GET requests per path."""

  def log_message(self, *args):
    pass

  def do_GET(self):  # pylint: disable=invalid-name
    self.server.requests[self.path] = self.server.requests.get(self.path, 0) + 1
    super().do_GET()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  folder = tmp_path_factory.mktemp("served")
  # The panoptic fixture as deeplab2 releases checkpoints: a .tar.gz of its folder.
  with tarfile.open(folder / "panoptic.tar.gz", "w:gz") as archive:
    archive.add(fx.PANOPTIC, arcname="panoptic_swidernet_sac_se")
  httpd = http.server.ThreadingHTTPServer(
      ("127.0.0.1", 0), functools.partial(_Files, directory=str(folder)))
  httpd.requests = {}
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd, folder
  httpd.shutdown()
  httpd.server_close()


def _fixture_preset(monkeypatch, url, sha256=None, name="fixture_panoptic_sac_se"):
  """A registry preset for the fixture's model whose release is served locally."""
  release = registry.Release(url=url, converter="deeplab2", dataset="cityscapes",
                             labels="cityscapes19", input_size=(65, 97), sha256=sha256)
  preset = registry.Preset(
      name, PanopticDeepLab, fixed=dict(backbone=fx.swidernet_sac_se_backbone()),
      defaults=fx.HEADS, task="panoptic", weights={ALIAS: release})
  registry.get_preset("resnest50")  # the families are registered before the patch
  monkeypatch.setitem(registry._PRESETS, name, preset)  # pylint: disable=protected-access
  return name


def _url(server, path):
  return f"http://127.0.0.1:{server[0].server_address[1]}/{path}"


def test_alias_downloads_converts_once_and_matches_deeplab2(server, tmp_path, monkeypatch):
  monkeypatch.setenv("TFVISION_HOME", str(tmp_path))
  digest = hashlib.sha256((server[1] / "panoptic.tar.gz").read_bytes()).hexdigest()
  name = _fixture_preset(monkeypatch, _url(server, "panoptic.tar.gz"), sha256=digest)
  requests = server[0].requests
  before = requests.get("/panoptic.tar.gz", 0)
  model = create_model(name, weights=ALIAS)
  assert requests["/panoptic.tar.gz"] == before + 1
  reference = fx.outputs(fx.PANOPTIC)
  got = model(reference["image"], training=False)
  for key in ("semantic_logits", "center_heatmap", "offsets"):
    assert fx.relative_error(got[key], reference[key]) < 1e-5, key
  converted = tmp_path / "weights" / name / ALIAS
  assert (converted / api.METADATA).exists()
  assert (tmp_path / "downloads" / "panoptic.tar.gz").exists()
  # Second call: neither downloaded nor converted again.
  monkeypatch.setattr(api, "convert", lambda *a, **k: pytest.fail("converted twice"))
  again = create_model(name, weights=ALIAS)
  assert requests["/panoptic.tar.gz"] == before + 1
  for a, b in zip(model.get_weights(), again.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_wrong_checksum_keeps_nothing(server, tmp_path, monkeypatch):
  monkeypatch.setenv("TFVISION_HOME", str(tmp_path))
  name = _fixture_preset(monkeypatch, _url(server, "panoptic.tar.gz"), sha256="0" * 64)
  with pytest.raises(DownloadError, match="sha256"):
    create_model(name, weights=ALIAS)
  assert not (tmp_path / "weights" / name / ALIAS).exists()
  assert not (tmp_path / "downloads" / "panoptic.tar.gz").exists()


def test_missing_file_and_no_network_name_the_url_and_the_cache_file(server, tmp_path,
                                                                      monkeypatch):
  monkeypatch.setenv("TFVISION_HOME", str(tmp_path))
  name = _fixture_preset(monkeypatch, _url(server, "gone.tar.gz"))
  with pytest.raises(DownloadError, match=r"404.*gone\.tar\.gz|gone\.tar\.gz.*404"):
    create_model(name, weights=ALIAS)
  closed = socket.socket()
  closed.bind(("127.0.0.1", 0))
  port = closed.getsockname()[1]
  closed.close()
  name = _fixture_preset(monkeypatch, f"http://127.0.0.1:{port}/offline.tar.gz")
  with pytest.raises(DownloadError) as error:
    create_model(name, weights=ALIAS)
  assert f"http://127.0.0.1:{port}/offline.tar.gz" in str(error.value)
  assert os.path.join(str(tmp_path), "downloads", "offline.tar.gz") in str(error.value)
  # Placing the file there by hand is the offline route.
  shutil.copy(server[1] / "panoptic.tar.gz", tmp_path / "downloads" / "offline.tar.gz")
  model = create_model(name, weights=ALIAS)
  reference = fx.outputs(fx.PANOPTIC)
  assert fx.relative_error(model(reference["image"], training=False)["offsets"],
                           reference["offsets"]) < 1e-5


def test_bad_weights_arguments():
  from tfvision.models import ResNeSt50  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match=r"valid: imagenet"):
    create_model("resnest50", weights="cityscapes")
  with pytest.raises(ValueError, match=r"received weights='imagenet21k'; valid: imagenet"):
    ResNeSt50(weights="imagenet21k")
  with pytest.raises(ValueError, match="no released weights"):
    create_model("pale_tiny", weights="imagenet")
  with pytest.raises(ValueError, match="no released weights"):
    create_model("botnet50", weights="imagenet")
  with pytest.raises(ValueError, match="no such file"):
    create_model("resnest50", weights="/nonexistent/weights.safetensors")
  with pytest.raises(ValueError, match="received weights=3"):
    api.load_weights(None, 3)


def test_every_release_is_complete():
  releases = api.released_presets()
  deeplab2 = {n for n, r in releases.items() if r[next(iter(r))].converter == "deeplab2"}
  assert len(deeplab2) == 18
  for name, by_alias in releases.items():
    for alias, release in by_alias.items():
      assert release.url.startswith("https://"), name
      assert release.dataset in ("imagenet2012", "cityscapes"), name
      assert release.converter in api.CONVERTERS, name
      assert release.reference, name
      if release.dataset == "cityscapes":
        assert release.labels == "cityscapes19" and release.metrics["pq"] > 60, name
        assert release.input_size == (1025, 2049), name
  assert releases["panoptic_deeplab_swidernet_sac_1_1_4.5_os16"]["cityscapes"].url.endswith(
      "swidernet_sac_1_1_4.5_os16_panoptic_deeplab_cityscapes_trainfine.tar.gz")


def test_converted_imagenet_backbone_initialises_a_panoptic_model(tmp_path):
  """init_checkpoint_modules: backbone, from converted deeplab2 ImageNet weights."""
  backbone = fx.swidernet_sac_backbone()
  api.load_source(backbone, fx.IMAGENET)
  out = str(tmp_path / "imagenet")
  api.save_converted(backbone, out, {"preset": None, "arguments": {}})
  dense = PanopticDeepLab(backbone=fx.swidernet_sac_backbone(output_stride=16), **fx.HEADS)
  initialize_from_checkpoint(dense, out, "backbone")
  # A strided SAC (output stride 32) keeps its global contexts beside its plain conv;
  # dilated (16), inside the switchable conv: the same weights one level apart.
  def canonical(named):
    return {path.replace("/conv/pre_context", "/pre_context").replace(
        "/conv/post_context", "/post_context"): v for path, v in named.items()}
  want = canonical(mapping.named_variables(backbone))
  got = canonical(mapping.named_variables(dense.get_layer(backbone.name)))
  assert set(want) - set(got) == set()
  for path, variable in want.items():
    np.testing.assert_array_equal(got[path].numpy(), variable.numpy(), err_msg=path)


def test_converted_model_exports_with_parity(tmp_path):
  """A converted deeplab2 model: SavedModel, TFLite float32 and int8."""
  model = fx.panoptic_swidernet_sac_se()
  api.load_source(model, fx.PANOPTIC)
  images = export.load_images("shapes", 4, (65, 97))
  saved = export.export_saved_model(model, str(tmp_path / "sm"), input_size=(65, 97))
  report = export.verify_saved_model(saved, model, images)
  assert report.failures(max_abs_error=1e-5, min_agreement=1.0) == [], report.format()
  result = export.export_tflite(model, None, input_size=(65, 97))
  report = export.verify_tflite(result.flatbuffer, model, images)
  assert report.failures(max_abs_error=1e-4) == [], report.format()
  assert report.agreement["semantic_map"] >= 0.999, report.format()
  int8 = export.export_tflite(model, None, input_size=(65, 97), quantization="int8",
                              representative_data=images)
  report = export.verify_tflite(int8.flatbuffer, model, images)
  # Measured here: 98.6% of pixels keep their class, instance / panoptic maps 100%.
  assert report.agreement["semantic_map"] >= 0.95, report.format()
  assert report.agreement["panoptic_map"] >= 0.95, report.format()


def test_label_sets_name_every_output():
  from tfvision.weights import class_names, synsets  # pylint: disable=import-outside-toplevel
  imagenet = class_names("imagenet1k")
  assert len(imagenet) == 1000 and imagenet[1] == "goldfish, Carassius auratus"
  assert len(set(imagenet)) == 1000
  ids = synsets("imagenet1k")
  assert ids[0] == "n01440764" and ids[-1] == "n15075141" and ids == sorted(ids)
  cityscapes = class_names("cityscapes19")
  assert len(cityscapes) == 19 and cityscapes[13] == "car"
  for name, by_alias in api.released_presets().items():
    for release in by_alias.values():
      if release.labels:
        assert len(class_names(release.labels)) == (19 if release.dataset == "cityscapes"
                                                    else 1000), name
  with pytest.raises(ValueError, match="received label_set='coco'"):
    class_names("coco")


def test_init_checkpoint_names_a_release(server, tmp_path, monkeypatch):
  """`init_checkpoint: tfvision:<preset>/<alias>`: one YAML line fine-tunes a release."""
  monkeypatch.setenv("TFVISION_HOME", str(tmp_path))
  name = _fixture_preset(monkeypatch, _url(server, "panoptic.tar.gz"))
  model = PanopticDeepLab(backbone=fx.swidernet_sac_se_backbone(), **fx.HEADS)
  initialize_from_checkpoint(model, f"tfvision:{name}/{ALIAS}", "all")
  reference = fx.outputs(fx.PANOPTIC)
  got = model(reference["image"], training=False)
  assert fx.relative_error(got["semantic_logits"], reference["semantic_logits"]) < 1e-5
  with pytest.raises(ValueError, match="tfvision:<preset>/<alias>"):
    initialize_from_checkpoint(model, "tfvision:nothing", "all")


def test_convert_cli(server, tmp_path, monkeypatch, capsys):
  from tfvision.weights import cli  # pylint: disable=import-outside-toplevel
  name = _fixture_preset(monkeypatch, _url(server, "panoptic.tar.gz"))
  out = tmp_path / "converted"
  assert cli.main([name, fx.PANOPTIC, str(out)]) == 0
  report = capsys.readouterr().out
  assert '"tensors_used": 435' in report and '"tensors_present": 435' in report
  model = create_model(name, weights=str(out))
  reference = fx.outputs(fx.PANOPTIC)
  assert fx.relative_error(model(reference["image"], training=False)["offsets"],
                           reference["offsets"]) < 1e-5
  assert cli.main(["--list"]) == 0
  listing = capsys.readouterr().out
  assert "panoptic_deeplab_swidernet_sac_1_1_4.5_os16\tcityscapes\tcityscapes" in listing
  assert cli.main([name, fx.PANOPTIC, str(out), "--model-kwargs", "[1]"]) == 2
  assert "received model_kwargs='[1]'" in capsys.readouterr().err
  assert cli.main(["resnest50", fx.PANOPTIC, str(tmp_path / "x")]) == 2
  assert "looks like a deeplab2 checkpoint" in capsys.readouterr().err
  assert cli.main(["swidernet_sac_1_1_1.tiny", fx.PANOPTIC, str(tmp_path / "x")]) == 2
  assert "does not fit the model 'swidernet_sac_1_1_1'" in capsys.readouterr().err


def test_readme_lists_every_release():
  import importlib.util  # pylint: disable=import-outside-toplevel
  root = os.path.join(os.path.dirname(__file__), "..")
  spec = importlib.util.spec_from_file_location(
      "zoo_table", os.path.join(root, "scripts", "zoo_table.py"))
  zoo = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(zoo)
  with open(os.path.join(root, "README.md")) as f:
    readme = f.read()
  assert zoo.table() in readme, "README's zoo table is stale: run scripts/zoo_table.py"


def test_converted_classifier_loads_headless_and_rejects_another_width(tmp_path):
  """convert() of a ResNeSt file, then weights=<dir> with include_top=False drops the
  classifier (and only it); another width is an error that leaves the model as it was."""
  source = os.path.join(fx.DATA, "timm_resnest", "resnest26_2s1x64d.safetensors")
  tiny = dict(width_multiplier=1 / 16, num_classes=7)
  out = str(tmp_path / "resnest26")
  report = api.convert("resnest26", source, out, converter="timm_resnest", **tiny)
  assert report["tensors_used"] == report["tensors_present"] == report["variables"]
  headless = create_model("resnest26", weights=out, include_top=False, **tiny)
  direct = create_model("resnest26", include_top=False, **tiny)
  plan = api.load_source(direct, source)
  assert plan.dropped == ["fc.bias", "fc.weight"]
  image = np.random.RandomState(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
  for key, value in direct(image, training=False).items():
    np.testing.assert_array_equal(headless(image, training=False)[key], value, err_msg=key)
  wider = create_model("resnest26", width_multiplier=1 / 8, num_classes=7)
  before = [w.copy() for w in wider.get_weights()]
  with pytest.raises(mapping.WeightsMismatchError, match="do not fit"):
    api.load_weights(wider, out)
  for old, new in zip(before, wider.get_weights()):
    np.testing.assert_array_equal(old, new)
