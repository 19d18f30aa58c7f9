"""The Panoptic-DeepLab task for Model Garden's trainer (`tfvision-train`).

- model: `tfvision.models.PanopticDeepLab` on a backbone from the config OneOf
  (`tfvision.models.factory.build_model_from_config`; raw pixels in);
- inputs: `tfvision.tasks.inputs.build_dataset` with `PanopticParser` (deeplab2's
  augmentation and Panoptic-DeepLab targets), corrupt examples skipped and counted;
- loss: `PanopticDeepLabLoss` (per image, averaged over the replica batch, plus the L2
  regularisation losses), logged per term;
- evaluation: the batched TF post-processing in the validation step, then PQ / SQ / RQ
  (all, things, stuff) and mIoU on the host (`tfvision.evaluation.panoptic`), on the
  unpadded part of every image; the empty examples of padded evaluation
  (`pad_to_global_batch`: "valid_example" 0, "valid_size" (0, 0)) are skipped.
"""
from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras
from official.core import base_task
from official.core import task_factory

from tfvision.configs import panoptic_deeplab as exp_cfg
from tfvision.data import dense_parsers
from tfvision.data import robust
from tfvision.data import shapes  # noqa: F401  (registers the built-in TFDS dataset)
from tfvision.data.panoptic import PanopticDatasetInfo
from tfvision.evaluation.panoptic import PanopticEvaluator
from tfvision.losses.panoptic import PanopticDeepLabLoss
from tfvision.models.panoptic_deeplab import PanopticDeepLab
from tfvision.ops.panoptic_postprocess import PanopticDeepLabPostProcessor
from tfvision.tasks import inputs as inputs_lib
from tfvision.tasks.common import (build_dense_model, initialize_from_checkpoint, minimize,
                                   weighted_mean)

LOSS_TERMS = ("semantic_loss", "center_loss", "offset_loss")


def dataset_info(task_config):
  """The `PanopticDatasetInfo` (label scheme + post-processing) of a task config."""
  labels, post = task_config.labels, task_config.post_process
  return PanopticDatasetInfo(
      name="task", num_classes=task_config.model.num_classes,
      thing_classes=tuple(labels.thing_classes), ignore_label=labels.ignore_label,
      label_divisor=labels.label_divisor, stuff_area_limit=post.stuff_area_limit,
      nms_kernel=post.nms_kernel, center_threshold=post.center_threshold,
      keep_k_centers=post.keep_k_centers)


def build_panoptic_model(model_config, weight_decay=0.0):
  """PanopticDeepLab from a `PanopticDeepLabModel` config."""
  return build_dense_model(PanopticDeepLab, model_config, model_config, weight_decay)


@task_factory.register_task_cls(exp_cfg.PanopticDeepLabTask)
class PanopticDeepLabTask(base_task.Task):
  """Panoptic-DeepLab training and PQ evaluation (see the module docstring)."""

  def __init__(self, params, logging_dir=None, name=None):
    super().__init__(params, logging_dir=logging_dir, name=name)
    self.info = dataset_info(params)
    losses = params.losses
    self.loss_fn = PanopticDeepLabLoss(
        ignore_label=params.labels.ignore_label, top_k_percent=losses.top_k_percent,
        semantic_weight=losses.semantic_weight, center_weight=losses.center_weight,
        offset_weight=losses.offset_weight)
    self.postprocessor = PanopticDeepLabPostProcessor(**self.info.postprocess_kwargs())

  def build_model(self):
    # The papers' weight decay is the SGD coefficient: a Keras L2 factor of half of it.
    model = build_panoptic_model(self.task_config.model,
                                 self.task_config.losses.l2_weight_decay / 2.0)
    size = self.task_config.model.input_size
    model(tf.zeros([1] + list(size)), training=False)
    return model

  def initialize(self, model):
    initialize_from_checkpoint(model, self.task_config.init_checkpoint,
                               self.task_config.init_checkpoint_modules)

  def build_inputs(self, params, input_context=None):
    config = self.task_config
    parser = dense_parsers.PanopticParser(
        config.model.input_size[:2], config.model.num_classes, config.labels.thing_classes,
        config.labels.label_divisor, config.labels.ignore_label,
        is_training=params.is_training, sigma=params.parser.sigma,
        small_instance_area=params.parser.small_instance_area,
        small_instance_weight=params.parser.small_instance_weight,
        aug_scale_min=params.parser.aug_scale_min, aug_scale_max=params.parser.aug_scale_max,
        aug_rand_hflip=params.parser.aug_rand_hflip,
        autoaugment_policy=params.parser.autoaugment_policy,
        aug_scale_step=params.parser.aug_scale_step)
    key = "task.train_data" if params.is_training else "task.validation_data"
    return inputs_lib.build_dataset(params, "panoptic", parser, input_context,
                                    config_key=key)

  def build_losses(self, labels, model_outputs, aux_losses=None):
    components = self.loss_fn.components(labels, model_outputs)
    loss = tf.reduce_mean(components["total"])
    if aux_losses:
      loss += tf.add_n(aux_losses)
    return loss

  def build_metrics(self, training=True):
    del training
    return ([tf_keras.metrics.Mean(name) for name in LOSS_TERMS] +
            [robust.SkippedExamples()])

  def _update_metrics(self, metrics, components, labels):
    weights = labels.get("valid_example")
    for metric in metrics or []:
      if metric.name in components:
        metric.update_state(components[metric.name], sample_weight=weights)
      elif isinstance(metric, robust.SkippedExamples):
        metric.update_state(labels["skipped_examples"])

  def train_step(self, inputs, model, optimizer, metrics=None):
    images, labels = inputs

    def loss_fn():
      outputs = tf.nest.map_structure(lambda x: tf.cast(x, tf.float32),
                                      model(images, training=True))
      components = self.loss_fn.components(labels, outputs)
      loss = tf.reduce_mean(components["total"])
      if model.losses:
        loss += tf.add_n(model.losses)
      return loss, components

    loss, components = minimize(loss_fn, model, optimizer)
    self._update_metrics(metrics, components, labels)
    return {self.loss: loss}

  def validation_step(self, inputs, model, metrics=None):
    images, labels = inputs
    outputs = tf.nest.map_structure(lambda x: tf.cast(x, tf.float32),
                                    model(images, training=False))
    components = self.loss_fn.components(labels, outputs)
    loss = weighted_mean(components["total"], labels.get("valid_example"))
    self._update_metrics(metrics, components, labels)
    maps = self.postprocessor(outputs)
    return {self.loss: loss, "panoptic_prediction": maps["panoptic"],
            "semantic_prediction": maps["semantic"],
            "panoptic_groundtruth": labels["panoptic"], "valid_size": labels["valid_size"]}

  def inference_step(self, inputs, model):
    return model(inputs, training=False)

  def aggregate_logs(self, state=None, step_outputs=None):
    if state is None:
      state = PanopticEvaluator(self.info)
    if not step_outputs:
      return state
    per_replica = [tf.nest.flatten(step_outputs[key]) for key in (
        "panoptic_groundtruth", "panoptic_prediction", "semantic_prediction", "valid_size")]
    for groundtruth, panoptic, semantic, sizes in zip(*per_replica):
      update_evaluator(state, groundtruth, panoptic, semantic, sizes)
    return state

  def reduce_aggregated_logs(self, aggregated_logs, global_step=None):
    del global_step
    if aggregated_logs is None:
      return {}
    results = aggregated_logs.result()
    summary = {"panoptic_quality": results["pq"], "pq_things": results["pq_things"],
               "pq_stuff": results["pq_stuff"], "segmentation_quality": results["sq"],
               "recognition_quality": results["rq"], "mean_iou": results["miou"]}
    logging.info("panoptic evaluation: %s", {k: round(v, 4) for k, v in summary.items()})
    return {key: np.float32(value) for key, value in summary.items()}


def update_evaluator(evaluator, groundtruth, panoptic, semantic, valid_sizes):
  """Adds a batch to a PanopticEvaluator, each image cropped to its valid size."""
  groundtruth, panoptic, semantic, valid_sizes = (
      np.asarray(v) for v in (groundtruth, panoptic, semantic, valid_sizes))
  for index in range(groundtruth.shape[0]):
    height, width = (int(v) for v in valid_sizes[index])
    if height == 0 or width == 0:  # the empty examples of padded evaluation
      continue
    evaluator.update(groundtruth[index, :height, :width], panoptic[index, :height, :width],
                     semantic[index, :height, :width])
