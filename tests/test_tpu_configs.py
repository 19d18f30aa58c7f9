"""Every configs/**/*.yaml: restates its experiment, and every TPU file runs on the core
counts its header documents under Model Garden's input-reader rules (tfvision.configs.tpu).
The two-step CPU run of each TPU file's model and pipeline at its 8-core per-replica
batch is tests/test_experiments.py."""
import pathlib
import re
import sys
import types

import pytest
import tensorflow as tf
from official.core import exp_factory
from official.modeling.hyperparams import params_dict

import tfvision.tasks  # noqa: F401
from tfvision.configs import tpu
from tfvision.tasks import inputs as inputs_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
YAML_FILES = sorted(CONFIG_DIR.rglob("*.yaml"))
TPU_FILES = [p for p in YAML_FILES if p.stem.endswith("_tpu")]
# swidernet.md Sec. 4: every Panoptic-DeepLab model trained on 32 TPU cores.
PANOPTIC_CORES = 32


def _experiment(path):
  return re.search(r"^# experiment: (\S+)$", path.read_text(), re.M).group(1)


def _load(path):
  params = exp_factory.get_exp_config(_experiment(path))
  return params_dict.override_params_dict(params, str(path), is_strict=True)


def test_every_tpu_yaml_runs_on_its_documented_cores():
  assert len(TPU_FILES) == 28
  for path in TPU_FILES:
    name = _experiment(path)
    cores = tpu.header_cores(path.read_text())
    assert cores and min(cores) >= tpu.MIN_CORES, path
    if "panoptic_deeplab" in name:
      assert PANOPTIC_CORES in cores, path
    params = _load(path)
    for count in cores:
      tpu.check_tpu_config(name, params, count)
    # The header lists exactly the slices (8 ... 1024 cores) the config runs on.
    assert cores == tpu.supported_cores(params), path


def test_every_yaml_restates_its_experiment():
  for path in YAML_FILES:
    loaded = _load(path).as_dict()
    experiment = exp_factory.get_exp_config(_experiment(path)).as_dict()
    del loaded["runtime"], experiment["runtime"]
    assert loaded == experiment, path


def test_yaml_files_are_current():
  sys.path.insert(0, str(ROOT / "scripts"))
  try:
    import write_configs  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(str(ROOT / "scripts"))
  assert write_configs.main(["--check"]) == 0, "python scripts/write_configs.py"


def test_bad_tpu_configs_name_the_experiment_and_the_key(tmp_path):
  path = CONFIG_DIR / "panoptic_deeplab" / "panoptic_deeplab_swidernet_cityscapes_tpu.yaml"
  bad = tmp_path / "bad_tpu.yaml"
  bad.write_text(path.read_text().replace("global_batch_size: 32\n",
                                          "global_batch_size: 48\n", 1))
  params = _load(bad)
  assert params.task.train_data.global_batch_size == 48
  name = "tfvision_panoptic_deeplab_swidernet_cityscapes"
  with pytest.raises(ValueError, match=rf"experiment '{name}': task\.train_data\."
                                       rf"global_batch_size=48 does not divide over 32"):
    tpu.check_tpu_config(name, params, 32)
  params = _load(path)
  params.task.validation_data.pad_to_global_batch = False
  with pytest.raises(ValueError, match=r"500 validation examples do not fill whole global "
                                       r"batches of 32.*pad_to_global_batch=False"):
    tpu.check_tpu_config(name, params, 32)
  with pytest.raises(ValueError, match=r"cores=12"):
    tpu.check_tpu_config(name, _load(path), 12)
  assert tpu.header_cores("# experiment: x\nruntime: {}\n") is None


def _pipeline(values, **kwargs):
  labels = {"label": tf.constant(values), "skipped_examples": tf.zeros_like(values)}
  return tf.data.Dataset.from_tensor_slices((tf.cast(tf.constant(values), tf.float32)[
      :, None] * tf.ones([1, 2]), labels), **kwargs)


def test_padding_completes_the_last_block_and_marks_it():
  dataset = inputs_lib.pad_to_whole_batches(_pipeline([1, 2, 3, 4, 5]), block=4)
  elements = list(dataset.as_numpy_iterator())
  assert len(elements) == 8
  assert [float(e[1]["valid_example"]) for e in elements] == [1.0] * 5 + [0.0] * 3
  assert [int(e[1]["label"]) for e in elements] == [1, 2, 3, 4, 5, 0, 0, 0]
  # A multiple of the block needs no padding.
  full = list(inputs_lib.pad_to_whole_batches(_pipeline([1, 2, 3, 4]), 4))
  assert len(full) == 4
  assert inputs_lib.pipeline_batch(64, tf.distribute.InputContext(num_input_pipelines=4)) == 16
  with pytest.raises(ValueError, match=r"task\.validation_data\.global_batch_size=30"):
    inputs_lib.pipeline_batch(30, tf.distribute.InputContext(num_input_pipelines=4),
                              key="task.validation_data.global_batch_size")


def test_padded_validation_step_scores_only_the_real_examples():
  from official.core import task_factory  # pylint: disable=import-outside-toplevel
  params = exp_factory.get_exp_config("tfvision_shapes_classification")
  params.task.model.input_size = [32, 32, 3]
  params.task.model.backbone.swidernet.override({"w1": 1 / 16, "w2": 1 / 16})
  task = task_factory.get_task(params.task)
  model = task.build_model()
  images = tf.random.stateless_uniform([4, 32, 32, 3], [1, 2], maxval=255.0)
  labels = {"label": tf.constant([0, 1, 2, 1]), "skipped_examples": tf.zeros([4], tf.int64)}
  plain_metrics = task.build_metrics(training=False)
  plain = task.validation_step((images, labels), model, metrics=plain_metrics)
  # The same four examples followed by four empty ones of weight 0.
  padded_images = tf.concat([images, tf.zeros_like(images)], 0)
  padded_labels = {key: tf.concat([value, tf.zeros_like(value)], 0)
                   for key, value in labels.items()}
  padded_labels["valid_example"] = tf.constant([1.0] * 4 + [0.0] * 4)
  padded_metrics = task.build_metrics(training=False)
  padded = task.validation_step((padded_images, padded_labels), model,
                                metrics=padded_metrics)
  assert float(padded[task.loss]) == pytest.approx(float(plain[task.loss]), rel=1e-5)
  for a, b in zip(plain_metrics, padded_metrics):
    assert float(a.result()) == pytest.approx(float(b.result())), a.name


def test_panoptic_evaluation_skips_empty_examples():
  import numpy as np  # pylint: disable=import-outside-toplevel
  from tfvision.tasks.panoptic_deeplab import update_evaluator  # pylint: disable=import-outside-toplevel
  seen = []
  evaluator = types.SimpleNamespace(update=lambda gt, pan, sem: seen.append(gt.shape))
  maps = np.ones([2, 4, 6], np.int32)
  update_evaluator(evaluator, maps, maps, maps, np.array([[3, 5], [0, 0]]))
  assert seen == [(3, 5)]
