"""The export command lines: `tfvision-export-saved-model`, `tfvision-export-tflite`."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfvision import export
from tfvision.export import cli
from tfvision.models import get_preset

NAME = "swidernet_0.25_0.25_0.75"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_ARGS = ["--model", NAME, "--tiny", "--model-kwargs", '{"num_classes": 3}']


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A Model Garden style model_dir with a checkpoint of the tiny classifier."""
  directory = str(tmp_path_factory.mktemp("model_dir"))
  tf_keras.utils.set_random_seed(17)
  model = get_preset(NAME).build_tiny(num_classes=3)
  checkpoint = tf.train.Checkpoint(model=model, global_step=tf.Variable(5, dtype=tf.int64))
  tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1).save(checkpoint_number=5)
  return directory, model


def test_saved_model_command_exports_and_verifies(model_dir, tmp_path, capsys):
  directory, model = model_dir
  output = str(tmp_path / "sm")
  report_json = str(tmp_path / "report.json")
  status = cli.saved_model_main(MODEL_ARGS + [
      "--checkpoint", directory, "--input-size", "64", "--signatures",
      "image_bytes,image_tensor", "--output", output, "--verify", "--verify-images", "4",
      "--report-json", report_json])
  assert status == 0
  printed = capsys.readouterr().out
  assert "serving_default = image_bytes" in printed
  assert "saved_model:image_bytes" in printed and "saved_model:image_tensor" in printed
  loaded = tf.saved_model.load(output)
  assert set(loaded.signatures) == {"image_bytes", "image_tensor", "serving_default"}
  images = export.load_images("shapes", 2, (64, 64))
  np.testing.assert_allclose(
      loaded.signatures["image_tensor"](inputs=tf.constant(images))["logits"].numpy(),
      model(images.astype("float32")).numpy(), atol=1e-5)  # the checkpoint's weights
  with open(report_json, encoding="utf-8") as f:
    saved = json.load(f)
  assert saved["failures"] == [] and saved["report"]["num_images"] == 4


def test_tflite_command_with_ops_report_and_verify(model_dir, tmp_path, capsys):
  directory, _ = model_dir
  output = str(tmp_path / "out" / "model.tflite")
  status = cli.tflite_main(MODEL_ARGS + [
      "--checkpoint", directory, "--input-size", "64", "--quantization", "dynamic",
      "--output", output, "--ops-report", "--verify", "--verify-images", "4",
      "--min-agreement", "0.5"])
  assert status == 0
  printed = capsys.readouterr().out
  assert "CONV_2D" in printed and "tflite:dynamic" in printed and "top1" in printed
  assert os.path.getsize(output) > 0


@pytest.mark.parametrize("command, extra, message", [
    (cli.tflite_main, ["--quantization", "int8"], "--representative-data=None"),
    (cli.tflite_main, ["--quantization", "int4"], "invalid choice: 'int4'"),
    (cli.tflite_main, ["--input-size", "0"], "--input-size"),
    (cli.tflite_main, ["--representative-data", "shapes", "--quantization", "int8",
                       "--representative-count", "0"], "--representative-count=0"),
    (cli.saved_model_main, ["--signatures", "image_tensor,image_jpeg"],
     "--signatures=.*image_jpeg"),
    (cli.saved_model_main, ["--checkpoint", "/no/such/dir"], "--checkpoint='/no/such/dir'"),
    (cli.saved_model_main, ["--top-k", "0", "--random-weights"], "--top-k=0"),
])
def test_bad_arguments_exit_2_naming_the_flag(command, extra, message, tmp_path, capsys):
  args = MODEL_ARGS + ["--output", str(tmp_path / "out")] + extra
  if command is cli.tflite_main and "--input-size" not in extra:
    args += ["--input-size", "64"]
  if "--checkpoint" not in extra and "--random-weights" not in extra:
    args += ["--random-weights"]
  with pytest.raises(SystemExit) as exit_info:
    command(args)
  assert exit_info.value.code == 2
  assert __import__("re").search(message, capsys.readouterr().err)


def test_no_weights_and_unknown_model_are_clear(tmp_path, capsys):
  for args, message in ((["--model", NAME, "--tiny"], "--checkpoint=None"),
                        (["--model", "swidernet_0.3"], "--model='swidernet_0.3'")):
    with pytest.raises(SystemExit):
      cli.saved_model_main(args + ["--output", str(tmp_path / "x")])
    assert message in capsys.readouterr().err


def test_command_line_wrappers_and_console_scripts():
  result = subprocess.run([sys.executable, os.path.join(ROOT, "export", "export_tflite.py"),
                           "--help"], capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr
  assert "--quantization {float32,float16,dynamic,int8}" in result.stdout
  with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
    setup = f.read()
  assert "tfvision-export-saved-model=tfvision.export.cli:saved_model_main" in setup
  assert "tfvision-export-tflite=tfvision.export.cli:tflite_main" in setup
  assert cli.parse_input_size("240x320") == (240, 320)
