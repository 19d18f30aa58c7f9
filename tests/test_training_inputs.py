"""Training inputs and configuration errors: decoders by TFDS name, YAML configs,
unknown names and keys, corrupt images skipped and counted."""
import pathlib
import re
import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import yaml
from official.core import exp_factory

import tfvision.tasks
from tfvision import train
from tfvision.configs import image_classification as classification_cfg
from tfvision.data import decoders
from tfvision.data import robust
from tfvision.models import factory
from tfvision.tasks import inputs as inputs_lib
from tfvision.tasks.image_classification import RawPixelParser

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
YAML_FILES = sorted(CONFIG_DIR.rglob("*.yaml"))

# (experiment, data config) -> the decoder its tfds_name must select.
EXPECTED_DECODERS = {
    "tfvision_resnest50_imagenet": decoders._imagenet_classification,  # pylint: disable=protected-access
    "tfvision_botnet50_imagenet": decoders._imagenet_classification,  # pylint: disable=protected-access
    "tfvision_swidernet_imagenet": decoders._imagenet_classification,  # pylint: disable=protected-access
    "tfvision_deeplabv3_resnest101_ade20k": decoders._ade20k_semantic,  # pylint: disable=protected-access
    "tfvision_deeplabv3_resnest101_cityscapes": decoders._cityscapes_semantic,  # pylint: disable=protected-access
    "tfvision_panoptic_deeplab_swidernet_coco": decoders._coco_panoptic,  # pylint: disable=protected-access
    # deeplab2's Cityscapes TFRecords (TFDS cityscapes has no instance labels).
    "tfvision_panoptic_deeplab_swidernet_cityscapes": decoders._tfrecord_panoptic,  # pylint: disable=protected-access
}
def _kind(task_config):
  name = type(task_config).__name__
  return {"ImageClassificationTask": "classification",
          "SemanticSegmentationTask": "semantic",
          "PanopticDeepLabTask": "panoptic"}[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_DECODERS))
def test_tfds_configs_select_the_right_decoder(name):
  params = exp_factory.get_exp_config(name)
  for data in (params.task.train_data, params.task.validation_data):
    decoder = decoders.get_decoder(_kind(params.task), data.tfds_name)
    assert decoder is EXPECTED_DECODERS[name], (name, data.tfds_name)


def test_every_experiment_has_a_decoder():
  for name in tfvision.tasks.list_experiments():
    params = exp_factory.get_exp_config(name)
    for data in (params.task.train_data, params.task.validation_data):
      assert data.tfds_name or data.input_path, name
      decoders.get_decoder(_kind(params.task), data.tfds_name)


def test_coco_panoptic_decoder_maps_segments_to_panoptic_ids():
  # Segment ids 5 (class 0 "person", thing), 9 (class 2, crowd thing) and 7 (class 90,
  # stuff); pixels of id 0 are void.
  ids = np.array([[5, 5, 0], [9, 7, 7]])
  rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
  example = {"image": tf.zeros([2, 3, 3], tf.uint8), "panoptic_image": tf.constant(rgb),
             "panoptic_objects": {"id": tf.constant([7, 5, 9]),
                                  "label": tf.constant([90, 0, 2]),
                                  "is_crowd": tf.constant([False, False, True])}}
  panoptic = decoders.get_decoder("panoptic", "coco/2017_panoptic")(example)["panoptic"]
  expected = np.array([[1 * 256 + 1, 1 * 256 + 1, 0], [3 * 256, 91 * 256, 91 * 256]])
  np.testing.assert_array_equal(panoptic.numpy(), expected)


def test_cityscapes_and_ade20k_label_mappings():
  ids = tf.constant([[7, 26, 0], [33, -1, 255]])
  np.testing.assert_array_equal(decoders.cityscapes_train_ids(ids).numpy(),
                                [[0, 13, 255], [18, 255, 255]])
  ade = {"image": tf.zeros([1, 3, 3], tf.uint8),
         "annotation": tf.constant([[[0], [1], [150]]], tf.uint8)}
  semantic = decoders.get_decoder("semantic", "scene_parse150")(ade)["semantic"]
  np.testing.assert_array_equal(semantic.numpy(), [[255, 0, 149]])


def test_dataset_without_decoder_names_the_key():
  with pytest.raises(ValueError, match=r"task\.train_data\.tfds_name='mnist'"):
    decoders.get_decoder("panoptic", "mnist", key="task.train_data.tfds_name")
  params = exp_factory.get_exp_config("tfvision_panoptic_deeplab_swidernet_shapes")
  params.task.train_data.tfds_name = "imagenet2012"
  task = tfvision.tasks.panoptic_deeplab.PanopticDeepLabTask(params.task)
  with pytest.raises(ValueError, match=r"task\.train_data\.tfds_name='imagenet2012'"):
    task.build_inputs(params.task.train_data)


# --- configuration errors ----------------------------------------------------------------

class _Flags(types.SimpleNamespace):
  """The flag values `train_utils.ExperimentParser` reads (it also tests `in`)."""

  def __contains__(self, name):
    return name in vars(self)


def _flags(**kwargs):
  values = dict(experiment=None, config_file=None, params_override=None, tpu=None,
                tf_data_service=None)
  values.update(kwargs)
  return _Flags(**values)


def test_unknown_experiment_is_named_with_suggestions():
  with pytest.raises(train.ConfigError,
                     match=r"--experiment='tfvision_resnest51_imagenet'.*Did you mean "
                           r"tfvision_resnest50_imagenet"):
    train.parse_configuration(_flags(experiment="tfvision_resnest51_imagenet"))


def test_unknown_yaml_key_is_named(tmp_path):
  config = tmp_path / "bad.yaml"
  config.write_text("task:\n  model:\n    backbone:\n      resnest:\n        depthh: 50\n")
  with pytest.raises(train.ConfigError, match="depthh"):
    train.parse_configuration(_flags(experiment="tfvision_resnest50_imagenet",
                                     config_file=[str(config)]))
  with pytest.raises(train.ConfigError, match="learning_rat"):
    train.parse_configuration(_flags(experiment="tfvision_resnest50_imagenet",
                                     params_override="trainer.learning_rat=0.1"))


def test_unknown_backbone_is_named():
  with pytest.raises(train.ConfigError, match="backbone"):
    train.parse_configuration(_flags(
        experiment="tfvision_resnest50_imagenet",
        params_override="task.model.backbone.type=resnet_rs"))
  with pytest.raises(train.ConfigError, match=r"the swidernet family, received "
                                              r"use_sse=True \(did you mean use_se\?\); "
                                              r"accepted: drop_path_beyond_stride, "):
    train.parse_configuration(_flags(
        experiment="tfvision_swidernet_imagenet",
        params_override="task.model.backbone.swidernet.use_sse=true"))
  with pytest.raises(train.ConfigError, match=r"task.model.backbone.swidernet: "
                                              r"sac_beyond_stride must be one of"):
    train.parse_configuration(_flags(
        experiment="tfvision_swidernet_imagenet",
        params_override="task.model.backbone.swidernet.sac_beyond_stride=3"))
  with pytest.raises(ValueError, match=r"backbone\.type='nope'"):
    factory.family_model(types.SimpleNamespace(type="nope"))


def test_main_reports_config_errors_without_traceback(capsys):
  with pytest.raises(SystemExit) as exit_info:
    train.main(["tfvision-train", "--experiment=tfvision_nope", "--mode=train",
                "--model_dir=/tmp/unused"])
  assert exit_info.value.code == 2
  assert "--experiment='tfvision_nope'" in capsys.readouterr().err


def test_seed_repeats_initialisation_and_rejects_bad_values():
  draws = []
  for _ in range(2):
    train.seed_everything(7)
    layer = tf_keras.layers.Dense(3)
    layer.build([None, 4])  # unseeded initializer, as in every model
    draws.append((layer.kernel.numpy(), tf.random.uniform([4]).numpy(), np.random.rand(2)))
  for first, second in zip(*draws):
    np.testing.assert_array_equal(first, second)
  for bad in (-1, 1.5, True):
    with pytest.raises(ValueError, match=re.escape(f"seed={bad!r}")):
      train.seed_everything(bad)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_yaml_config_loads_onto_its_experiment(path):
  text = path.read_text()
  experiment = re.search(r"^# experiment: (\S+)$", text, re.M).group(1)
  params = train.parse_configuration(_flags(experiment=experiment,
                                            config_file=[str(path)]))
  runtime = yaml.safe_load(text)["runtime"]
  if path.stem.endswith("_tpu"):
    assert runtime == {"distribution_strategy": "tpu", "mixed_precision_dtype": "bfloat16"}
  else:
    assert runtime["distribution_strategy"] == "mirrored" and runtime["num_gpus"] >= 1
  assert params.runtime.distribution_strategy == runtime["distribution_strategy"]
  data = params.task.train_data
  assert data.tfds_name or data.input_path
  decoders.get_decoder(_kind(params.task), data.tfds_name)


def test_yaml_files_cover_every_paper_experiment():
  covered = {re.search(r"^# experiment: (\S+)$", p.read_text(), re.M).group(1)
             for p in YAML_FILES}
  papers = {n for n in tfvision.tasks.list_experiments() if "shapes" not in n}
  assert papers <= covered, sorted(papers - covered)
  for name in papers:
    variants = sorted(p.stem.rsplit("_", 1)[1] for p in YAML_FILES
                      if f"# experiment: {name}\n" in p.read_text())
    assert variants == ["gpu", "tpu"], (name, variants)


# --- corrupt images ----------------------------------------------------------------------

def _jpeg(seed):
  image = np.random.RandomState(seed).randint(0, 255, (40, 48, 3)).astype(np.uint8)
  return tf.io.encode_jpeg(image).numpy()


def _classification_records(path, encoded_images):
  with tf.io.TFRecordWriter(str(path)) as writer:
    for label, encoded in enumerate(encoded_images):
      example = tf.train.Example(features=tf.train.Features(feature={
          "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
          "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
              value=[label % 3]))}))
      writer.write(example.SerializeToString())


def test_map_skipping_errors_counts_each_dropped_element():
  values = tf.data.Dataset.from_tensor_slices([1.0, -1.0, -2.0, 4.0, -3.0, 9.0])

  def fn(x):
    with tf.control_dependencies([tf.debugging.assert_non_negative(x)]):
      return tf.sqrt(x)

  out = list(robust.map_skipping_errors(values, fn, deterministic=True).as_numpy_iterator())
  assert [float(v) for v, _ in out] == [1.0, 2.0, 3.0]
  assert [int(s) for _, s in out] == [0, 2, 1]


def test_corrupt_images_are_skipped_and_counted(tmp_path):
  good = [_jpeg(i) for i in range(5)]
  records = [good[0], b"not an image", good[1], good[2], good[3][:60], good[4]]
  path = tmp_path / "train.tfrecord"
  _classification_records(path, records)
  data = classification_cfg.DataConfig(
      input_path=str(path), tfds_name="", is_training=False, global_batch_size=1,
      drop_remainder=False, cycle_length=1, deterministic=True)
  parser = RawPixelParser(output_size=[32, 32], num_classes=3, image_field_key="image",
                          label_field_key="label", decode_jpeg_only=False, aug_crop=False)
  dataset = inputs_lib.build_dataset(data, "classification", parser.parse_fn(False))
  metric = robust.SkippedExamples()
  images = []
  for pixels, labels in dataset:
    images.append(pixels.numpy())
    metric.update_state(labels["skipped_examples"])
  # Two corrupt records (garbage, truncated JPEG) dropped; four good images parsed.
  assert len(images) == 4
  assert float(metric.result()) == 2.0
  assert all(i.shape == (1, 32, 32, 3) and 0 <= i.min() and i.max() <= 255.5 for i in images)


def _demo_train_reader(data_dir, **data_overrides):
  """The demo experiment's training input on tfvision_shapes/tiny: unshuffled, unflipped."""
  from official.core import task_factory  # pylint: disable=import-outside-toplevel
  params = exp_factory.get_exp_config("tfvision_panoptic_deeplab_swidernet_shapes")
  params.override({"task": {
      "model": {"input_size": [64, 64, 3]},
      "train_data": {"tfds_name": "tfvision_shapes/tiny", "tfds_data_dir": data_dir,
                     "global_batch_size": 1, "shuffle_buffer_size": 1,
                     "parser": {"aug_rand_hflip": False}, **data_overrides}}},
                  is_strict=True)
  task = task_factory.get_task(params.task)
  return params.task.train_data, task.build_inputs(params.task.train_data)


def test_a_one_file_tfds_split_is_read_once_per_pass_not_once_per_core(tmp_path):
  """Model Garden's repeated-file interleave read each example N times in a row."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  data_dir = str(tmp_path)
  builder = tfds.builder("tfvision_shapes/tiny", data_dir=data_dir)
  builder.download_and_prepare()
  assert len(builder.info.splits["train"].file_instructions) == 1
  config, dataset = _demo_train_reader(data_dir)
  assert inputs_lib.interleave_cycle_length(config) == 1
  images = [pixels.numpy() for pixels, _ in dataset.take(8)]
  assert all(not np.array_equal(a, b) for a, b in zip(images, images[1:]))
  # With a cycle of 2 (what AUTOTUNE gives on 2 cores) every example came out twice.
  config, dataset = _demo_train_reader(data_dir, cycle_length=2)
  assert inputs_lib.interleave_cycle_length(config) == 2
  images = [pixels.numpy() for pixels, _ in dataset.take(8)]
  assert all(np.array_equal(a, b) for a, b in zip(images[::2], images[1::2]))


def test_interleave_cycle_is_capped_by_files_per_pipeline(monkeypatch):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  fake_builder = types.SimpleNamespace(info=types.SimpleNamespace(splits={
      "train": types.SimpleNamespace(file_instructions=[None] * 40)}))
  monkeypatch.setattr(tfds, "builder", lambda name, data_dir=None: fake_builder)
  config = classification_cfg.DataConfig(tfds_name="x", tfds_split="train", is_training=True,
                                         cycle_length=None)
  context = lambda n: tf.distribute.InputContext(num_input_pipelines=n)  # noqa: E731
  assert inputs_lib.interleave_cycle_length(config) == 16
  assert inputs_lib.interleave_cycle_length(config, context(4)) == 10
  # Fewer files than pipelines: each pipeline reads every file (Model Garden).
  assert inputs_lib.interleave_cycle_length(config, context(64)) == 16
  fake_builder.info.splits["train"].file_instructions = [None] * 3
  assert inputs_lib.interleave_cycle_length(config) == 3
  assert inputs_lib.interleave_cycle_length(config, context(64)) == 3
  assert inputs_lib.interleave_cycle_length(config.replace(cycle_length=8)) == 8
  assert inputs_lib.interleave_cycle_length(config.replace(is_training=False)) is None


# --- recipe augmentations and the head learning-rate multiplier ---------------------------

def test_pca_lighting_shifts_every_pixel_along_imagenets_principal_components():
  from tfvision.data import augment  # pylint: disable=import-outside-toplevel
  grey = tf.fill([3, 4, 3], 128.0)
  assert augment.pca_lighting(grey, 0.0) is grey
  tf.random.set_seed(0)
  shifts = np.stack([(augment.pca_lighting(grey, 0.1) - grey).numpy() for _ in range(400)])
  # One shift per image, the same at every pixel.
  np.testing.assert_allclose(shifts, shifts[:, :1, :1, :] * np.ones_like(shifts), atol=1e-4)
  # Its covariance: V diag((0.1 * eigenvalue)^2) V^T (AlexNet / GluonCV RandomLighting).
  vectors = np.array(augment.IMAGENET_PCA_EIGENVECTORS)
  expected = vectors @ np.diag((0.1 * np.array(augment.IMAGENET_PCA_EIGENVALUES)) ** 2) @ (
      vectors.T)
  np.testing.assert_allclose(np.cov(shifts[:, 0, 0, :].T), expected, rtol=0.25, atol=0.5)
  with pytest.raises(ValueError, match=r"alpha_std=-1"):
    augment.pca_lighting(grey, -1)


def test_random_scale_on_deeplab2s_grid():
  from tfvision.data import augment  # pylint: disable=import-outside-toplevel
  tf.random.set_seed(1)
  draws = np.array([float(augment.random_scale_factor(0.5, 2.0, 0.1)) for _ in range(400)])
  grid = np.round(np.arange(0.5, 2.0001, 0.1), 6)
  assert set(np.round(draws, 6)) == set(grid)  # all 16 factors, nothing else
  continuous = [float(augment.random_scale_factor(0.5, 2.0)) for _ in range(20)]
  assert all(0.5 <= v < 2.0 for v in continuous) and len(set(continuous)) == 20
  with pytest.raises(ValueError, match=r"step=-0\.1"):
    augment.random_scale_factor(0.5, 2.0, -0.1)


def test_gradient_multipliers_scale_the_sgd_update_of_their_variables():
  from tfvision.tasks.common import minimize  # pylint: disable=import-outside-toplevel
  inputs = tf_keras.Input([2])
  first = tf_keras.layers.Dense(2, name="body")
  second = tf_keras.layers.Dense(1, name="head")
  model = tf_keras.Model(inputs, second(first(inputs)))
  x = tf.constant([[1.0, -2.0], [0.5, 3.0]])

  def updates(multipliers):
    start = [v.numpy() for v in model.trainable_variables]
    optimizer = tf_keras.optimizers.SGD(0.01, momentum=0.9)
    minimize(lambda: (tf.reduce_mean(model(x) ** 2), None), model, optimizer, multipliers)
    end = [v.numpy() for v in model.trainable_variables]
    for variable, value in zip(model.trainable_variables, start):
      variable.assign(value)
    return [e - s for s, e in zip(start, end)]

  plain = updates(None)
  scaled = updates({v.ref(): 10.0 for v in second.trainable_variables})
  for variable, a, b in zip(model.trainable_variables, plain, scaled):
    factor = 10.0 if variable.name.startswith("head") else 1.0
    np.testing.assert_allclose(b, factor * a, rtol=1e-5, atol=1e-8)
