"""Every registered tfvision experiment: validates, builds, and trains two steps.

Each experiment keeps its recipe (optimizer, schedule, augmentation, losses, model
layout) and gets only what a CPU test needs: the built-in `tfvision_shapes/tiny` data
(64 x 64 images; classification crops 32 x 32), a batch of 2, float32, the registry's
`tiny` widths for its backbone, narrow dense-prediction heads, and ResNeSt at depth 50
(the deeper ResNeSt experiments differ from ResNeSt-50's only in depth, batch and crop;
tests/test_resnest.py builds and trains the deep tiny models). The two steps run eagerly.

Experiments with the same input recipe (the four ResNeSt, the three Pale, ...) share
the two batches their pipeline produced: building an AutoAugment pipeline costs more
than the training steps.
"""
import json
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from official.core import exp_factory
from official.core import task_factory

import tfvision.tasks
from tests import harness
from tfvision.configs import image_classification as classification_cfg
from tfvision.configs import panoptic_deeplab as panoptic_cfg
from tfvision.configs import semantic_segmentation as segmentation_cfg
from tfvision.data import shapes
from tfvision.models.factory import FAMILIES

EXPERIMENTS = tfvision.tasks.list_experiments()
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


def tiny_params(name, data_dir, batch=2):
  """The experiment's config with tiny data, model and batch (recipe unchanged)."""
  params = exp_factory.get_exp_config(name)
  params.validate()
  task = params.task
  data = {"tfds_name": TINY_DATA, "tfds_data_dir": data_dir, "input_path": "",
          "global_batch_size": batch, "shuffle_buffer_size": 8}
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
  params.validate()
  return params


_BATCHES = {}


def _two_batches(task, params):
  """Two training batches of the experiment's pipeline (shared by equal recipes)."""
  key = json.dumps([type(params.task).__name__, params.task.train_data.as_dict(),
                    params.task.model.input_size, params.task.model.num_classes],
                   sort_keys=True, default=str)
  if key not in _BATCHES:
    batches = iter(task.build_inputs(params.task.train_data))
    _BATCHES[key] = [next(batches), next(batches)]
  return _BATCHES[key]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_trains_two_steps(name, tiny_data_dir):
  params = tiny_params(name, tiny_data_dir)
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
  before = [v.numpy() for v in model.trainable_variables]
  losses = []
  for images, labels in _two_batches(task, params):
    assert images.shape == (2, size, size, 3) and images.dtype == tf.float32
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
