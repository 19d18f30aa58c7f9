"""Every registered tfvision experiment: validates, builds, and trains two steps.

An experiment with a TPU YAML (configs/**/*_tpu.yaml) is loaded through it and runs
with the per-replica batches that YAML gives on an 8-core TPU: its input pipelines are
built with an input context of 8 replicas, so Model Garden's reader divides the
experiment's own global batches (training and, padded, evaluation) by 8. Two training
steps and one validation step then run on one such batch. The demos on tfvision_shapes
(no YAML) use a batch of 2.

Each experiment keeps its recipe (optimizer, schedule, augmentation, losses, model
layout) and gets only what a CPU test needs: the built-in `tfvision_shapes/tiny` data
(64 x 64 images; classification crops 32 x 32), float32, the registry's `tiny` widths
for its backbone, narrow dense-prediction heads, and ResNeSt at depth 50 (the deeper
ResNeSt experiments differ from ResNeSt-50's only in depth, batch and crop;
tests/test_resnest.py builds and trains the deep tiny models). The steps run eagerly.

Experiments with the same input recipe (the Pale family, the fast-regime Panoptic-DeepLab
variants of a dataset, ...) share the batches their pipeline produced: building an
AutoAugment pipeline costs more than the training steps.
"""
import json
import math
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from official.core import exp_factory
from official.core import task_factory
from official.modeling.hyperparams import params_dict

import tfvision.tasks
from tests import harness
from tfvision.configs import image_classification as classification_cfg
from tfvision.configs import panoptic_deeplab as panoptic_cfg
from tfvision.configs import semantic_segmentation as segmentation_cfg
from tfvision.data import shapes
from tfvision.models.factory import FAMILIES
from tfvision.tasks.common import backbone_of

EXPERIMENTS = tfvision.tasks.list_experiments()
CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
TPU_YAMLS = {re.search(r"^# experiment: (\S+)$", p.read_text(), re.M).group(1): p
             for p in sorted(CONFIG_DIR.rglob("*_tpu.yaml"))}
# The replicas of the smallest TPU slice every TPU YAML supports.
TPU_REPLICAS = 8
TINY_DATA = "tfvision_shapes/tiny"
SIZE = 64
CLASSIFICATION_SIZE = 32
# Backbone types whose tiny models run at 64 x 64: attention at every stage, or a 2 x 2
# map at stride 32 where a 1 x 1 map leaves variables without a gradient (BoTNet's later
# position tables: a softmax over one key; SWideRNet's SAC switch: on one pixel both of
# its atrous rates see only the centre tap, so the switch changes nothing).
TINY_SIZE_64 = ("axial_resnet", "axial_swidernet", "pale", "botnet", "swidernet")
TINY_HEADS = 16


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  tfds.builder(TINY_DATA, data_dir=data_dir).download_and_prepare()
  return data_dir


def test_every_family_and_task_has_an_experiment():
  backbone_types = set()
  registry_names = set()
  for name in EXPERIMENTS:
    backbone_types.add(exp_factory.get_exp_config(name).task.model.backbone.type)
  assert {"swidernet", "resnest", "botnet", "axial_resnet", "pale"} <= backbone_types
  for required in ("tfvision_resnest50_imagenet", "tfvision_botnet50_imagenet",
                   "tfvision_swidernet_imagenet", "tfvision_deeplabv3_resnest101_ade20k",
                   "tfvision_deeplabv3_resnest101_cityscapes",
                   "tfvision_panoptic_deeplab_swidernet_coco",
                   "tfvision_panoptic_deeplab_swidernet_cityscapes"):
    assert required in EXPERIMENTS


def _tiny_backbone(backbone):
  """The family's test-size widths (its model class's TINY) on the experiment's spec."""
  model_class = FAMILIES[backbone.type]
  spec = backbone.get()
  spec.override({key: value for key, value in model_class.TINY.items()
                 if key in spec.field_names()})
  if backbone.type == "resnest":
    # The deeper ResNeSt experiments differ from ResNeSt-50's only in depth.
    spec.depth = 50


def tiny_params(name, data_dir, batch=2, yaml_path=None):
  """The experiment's config with tiny data and model (recipe unchanged).

  With `yaml_path` the config is loaded through that YAML file and keeps its global
  batch sizes; otherwise both become `batch`.
  """
  params = exp_factory.get_exp_config(name)
  if yaml_path is not None:
    params = params_dict.override_params_dict(params, str(yaml_path), is_strict=True)
  params.validate()
  task = params.task
  data = {"tfds_name": TINY_DATA, "tfds_data_dir": data_dir, "input_path": "",
          "shuffle_buffer_size": 8}
  if yaml_path is None:
    data["global_batch_size"] = batch
  task.train_data.override(dict(data, tfds_split="train"))
  task.validation_data.override(dict(data, tfds_split="validation"))
  params.runtime.override({"mixed_precision_dtype": "float32"})
  task.model.input_size = [SIZE, SIZE, 3]
  _tiny_backbone(task.model.backbone)
  if isinstance(task, classification_cfg.ImageClassificationTask):
    task.model.num_classes = len(shapes.THING_CLASSES)
    size = 64 if task.model.backbone.type in TINY_SIZE_64 else CLASSIFICATION_SIZE
    task.model.input_size = [size, size, 3]
  elif isinstance(task, segmentation_cfg.SemanticSegmentationTask):
    task.model.num_classes = shapes.NUM_CLASSES
    task.model.decoder.get().override({"aspp_filters": TINY_HEADS,
                                       "head_filters": TINY_HEADS})
    task.losses.ignore_label = shapes.IGNORE_LABEL
  else:
    assert isinstance(task, panoptic_cfg.PanopticDeepLabTask), type(task)
    w = TINY_HEADS
    task.model.override({
        "num_classes": shapes.NUM_CLASSES, "semantic_aspp_filters": w,
        "semantic_decoder_filters": w, "semantic_low_level_filters": [w, w // 2],
        "semantic_head_filters": w, "instance_aspp_filters": w,
        "instance_decoder_filters": w, "instance_low_level_filters": [w // 2, w // 2],
        "center_head_filters": w // 2, "offset_head_filters": w // 2})
    task.labels.override({"thing_classes": list(shapes.THING_IDS),
                          "ignore_label": shapes.IGNORE_LABEL,
                          "label_divisor": shapes.LABEL_DIVISOR})
    # Instance ids must fit below the tiny dataset's label divisor.
    task.post_process.keep_k_centers = min(task.post_process.keep_k_centers,
                                           shapes.LABEL_DIVISOR - 1)
  params.validate()
  return params


_BATCHES = {}


def _input_context(replicas):
  return tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                    num_replicas_in_sync=replicas)


def _batches(task, params, data, count, replicas):
  """`count` batches of a data config's pipeline (shared by equal recipes)."""
  key = json.dumps([type(params.task).__name__, data.as_dict(),
                    params.task.model.input_size, params.task.model.num_classes,
                    replicas], sort_keys=True, default=str)
  if key not in _BATCHES:
    batches = iter(task.build_inputs(data, _input_context(replicas)))
    _BATCHES[key] = [next(batches) for _ in range(count)]
  return _BATCHES[key]


def _evaluation(task, params, replicas):
  """The first evaluation batch, and the real and total examples of the whole pass."""
  first, real, total = None, 0, 0
  for images, labels in task.build_inputs(params.task.validation_data,
                                          _input_context(replicas)):
    first = first or (images, labels)
    real += int(tf.reduce_sum(labels["valid_example"]))
    total += int(labels["valid_example"].shape[0])
  return first, real, total


def _tiny_key(name):
  params = tiny_params(name, "TINY_DATA_DIR", yaml_path=TPU_YAMLS.get(name))
  return json.dumps(params.as_dict(), sort_keys=True, default=str)


def _groups():
  """Experiments grouped by identical tiny configs (e.g. fast-regime variants that
  differ only in the backbone widths the tiny test replaces): each group runs once."""
  groups = {}
  for name in EXPERIMENTS:
    groups.setdefault(_tiny_key(name), []).append(name)
  return list(groups.values())


GROUPS = _groups()


def test_every_experiment_is_trained():
  assert sorted(n for group in GROUPS for n in group) == EXPERIMENTS
  # The fast-regime variants of a dataset share two tiny configs (l = 0.75 and l = 1).
  fast = [g for g in GROUPS if "_0.25_" in g[0]]
  assert sorted(len(g) for g in fast) == [2, 2, 3, 3]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g[0] + (f"+{len(g) - 1}" if
                                                                len(g) > 1 else ""))
def test_experiment_trains_two_steps(group, tiny_data_dir):
  name = group[0]
  yaml_path = TPU_YAMLS.get(name)
  params = tiny_params(name, tiny_data_dir, yaml_path=yaml_path)
  replicas = TPU_REPLICAS if yaml_path is not None else 1
  train_batch = params.task.train_data.global_batch_size // replicas
  task = task_factory.get_task(params.task)
  model = task.build_model()
  task.initialize(model)
  optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
  # Every trainable variable must receive a non-zero gradient: record the first update's
  # gradients (zero-initialised scales are woken first, so that every path is open).
  harness.wake_zero_variables(model)
  first_update = []
  apply_gradients = optimizer.apply_gradients

  def recording_apply_gradients(grads_and_vars, *args, **kwargs):
    grads_and_vars = list(grads_and_vars)
    if not first_update:
      first_update.extend(grads_and_vars)
    return apply_gradients(grads_and_vars, *args, **kwargs)

  optimizer.apply_gradients = recording_apply_gradients
  metrics = task.build_metrics(training=True)
  size = params.task.model.input_size[0]
  if isinstance(params.task, segmentation_cfg.SemanticSegmentationTask):
    # GluonCV's head lr_mult: every variable outside the backbone, none inside.
    multipliers = task.gradient_multipliers(model) or {}
    factor = params.task.head_learning_rate_multiplier
    backbone = {v.ref() for v in backbone_of(model).trainable_variables}
    expected = {v.ref() for v in model.trainable_variables} - backbone
    assert set(multipliers) == (expected if factor != 1.0 else set())
    assert set(multipliers.values()) <= {factor}
  before = [v.numpy() for v in model.trainable_variables]
  losses = []
  for images, labels in _batches(task, params, params.task.train_data, 2, replicas):
    assert images.shape == (train_batch, size, size, 3) and images.dtype == tf.float32
    # Raw pixels reach the model (each family normalises internally).
    assert float(tf.reduce_max(images)) > 2.0
    logs = task.train_step((images, labels), model, optimizer, metrics=metrics)
    losses.append(float(logs[task.loss]))
  assert all(math.isfinite(v) for v in losses), losses
  assert int(optimizer.iterations) == 2
  assert len(first_update) == len(model.trainable_variables), name
  silent = [v.name for g, v in first_update
            if g is None or not np.any(tf.convert_to_tensor(g).numpy())]
  assert not silent, f"{name}: variables with no or an all-zero gradient: {silent}"
  # Warm-up schedules start at lr 0, so only the later step must move the weights.
  changed = sum(not np.array_equal(b, v.numpy())
                for b, v in zip(before, model.trainable_variables))
  assert changed > 0, name
  skipped = [m for m in metrics if m.name == "skipped_examples"]
  assert skipped and float(skipped[0].result()) == 0.0
  if yaml_path is None:
    return
  # Evaluation: the padded global batch divided over the 8 replicas; one validation step.
  validation = params.task.validation_data
  (images, labels), real, total = _evaluation(task, params, replicas)
  assert images.shape[0] == validation.global_batch_size // replicas
  assert set(np.unique(labels["valid_example"].numpy())) <= {0.0, 1.0}
  logs = task.validation_step((images, labels), model,
                              metrics=task.build_metrics(training=False))
  assert math.isfinite(float(logs[task.loss]))
  split = tfds.builder(TINY_DATA, data_dir=tiny_data_dir).info.splits["validation"]
  assert real == split.num_examples and total % validation.global_batch_size == 0
