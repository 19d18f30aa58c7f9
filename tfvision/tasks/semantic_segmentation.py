"""Semantic segmentation (DeepLabV3 / V3+) with the tfvision backbones.

The model takes raw pixels and returns logits at the input resolution; the loss is the
per-pixel cross-entropy averaged per image over the non-ignored pixels
(`tfvision.losses.panoptic.semantic_segmentation_loss`, optionally bootstrapped), and
the evaluation metric mIoU over the unpadded, non-ignored pixels (a confusion matrix
summed over replicas). `head_learning_rate_multiplier` scales the gradients of every
variable outside the backbone (GluonCV's DeepLabV3 trains its head with `lr_mult` 10);
padded evaluation examples (`valid_example` 0) count for nothing.
"""
import tensorflow as tf
import tf_keras
from official.core import base_task
from official.core import task_factory

from tfvision.configs import semantic_segmentation as exp_cfg
from tfvision.data import dense_parsers
from tfvision.data import robust
from tfvision.data import shapes  # noqa: F401  (registers the built-in TFDS dataset)
from tfvision.losses.panoptic import semantic_segmentation_loss
from tfvision.models.deeplab import DeepLabV3, DeepLabV3Plus
from tfvision.tasks import inputs as inputs_lib
from tfvision.tasks.common import (backbone_of, build_dense_model, initialize_from_checkpoint,
                                   minimize, weighted_mean)

DECODERS = {"v3": DeepLabV3, "v3plus": DeepLabV3Plus}


def build_deeplab(model_config, weight_decay=0.0):
  """DeepLabV3 / V3+ from a `DeepLabModel` config."""
  decoder = model_config.decoder
  if decoder.type not in DECODERS:
    raise ValueError(f"decoder.type must be one of {sorted(DECODERS)}, received "
                     f"task.model.decoder.type={decoder.type!r}")
  return build_dense_model(DECODERS[decoder.type], model_config, decoder.get(),
                           weight_decay)


class ConfusionMatrix(tf_keras.metrics.Metric):
  """Confusion matrix of the valid pixels; result() is the mIoU.

  Args:
    num_classes: semantic classes.
    ignore_label: ground-truth label without a class.
  """

  def __init__(self, num_classes, ignore_label, name="mean_iou", **kwargs):
    super().__init__(name=name, **kwargs)
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.matrix = self.add_weight("matrix", shape=(num_classes, num_classes),
                                  initializer="zeros", dtype=tf.float64)

  def update_state(self, labels, logits, valid_sizes):
    height, width = tf.shape(labels)[1], tf.shape(labels)[2]
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = (rows < valid_sizes[:, 0, None, None]) & (cols < valid_sizes[:, 1, None, None])
    valid = inside & (labels != self.ignore_label) & (labels >= 0) & (
        labels < self.num_classes)
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    matrix = tf.math.confusion_matrix(
        tf.boolean_mask(labels, valid), tf.boolean_mask(predictions, valid),
        num_classes=self.num_classes, dtype=tf.float64)
    return self.matrix.assign_add(matrix)

  def per_class_iou(self):
    intersection = tf.linalg.diag_part(self.matrix)
    union = tf.reduce_sum(self.matrix, 0) + tf.reduce_sum(self.matrix, 1) - intersection
    return intersection, union

  def result(self):
    intersection, union = self.per_class_iou()
    present = union > 0
    iou = tf.math.divide_no_nan(intersection, union)
    return tf.math.divide_no_nan(tf.reduce_sum(tf.where(present, iou, 0.0)),
                                 tf.reduce_sum(tf.cast(present, tf.float64)))

  def reset_state(self):
    self.matrix.assign(tf.zeros_like(self.matrix))


@task_factory.register_task_cls(exp_cfg.SemanticSegmentationTask)
class SemanticSegmentationTask(base_task.Task):
  """DeepLabV3 / V3+ training and mIoU evaluation."""

  def build_model(self):
    model = build_deeplab(self.task_config.model,
                          self.task_config.losses.l2_weight_decay / 2.0)
    model(tf.zeros([1] + list(self.task_config.model.input_size)), training=False)
    return model

  def initialize(self, model):
    initialize_from_checkpoint(model, self.task_config.init_checkpoint,
                               self.task_config.init_checkpoint_modules)

  def build_inputs(self, params, input_context=None):
    parser = dense_parsers.SemanticParser(
        self.task_config.model.input_size[:2], self.task_config.losses.ignore_label,
        is_training=params.is_training, aug_scale_min=params.parser.aug_scale_min,
        aug_scale_max=params.parser.aug_scale_max,
        aug_rand_hflip=params.parser.aug_rand_hflip,
        autoaugment_policy=params.parser.autoaugment_policy,
        aug_scale_step=params.parser.aug_scale_step)
    key = "task.train_data" if params.is_training else "task.validation_data"
    return inputs_lib.build_dataset(params, "semantic", parser, input_context,
                                    config_key=key)

  def _pixel_loss(self, labels, logits):
    losses = self.task_config.losses
    per_image = semantic_segmentation_loss(
        labels["semantic"], tf.cast(logits, tf.float32), losses.ignore_label,
        losses.top_k_percent)
    return weighted_mean(per_image, labels.get("valid_example"))

  def build_losses(self, labels, model_outputs, aux_losses=None):
    loss = self._pixel_loss(labels, model_outputs)
    if aux_losses:
      loss += tf.add_n(aux_losses)
    return loss

  def build_metrics(self, training=True):
    metrics = [robust.SkippedExamples()]
    if not training:
      metrics.append(ConfusionMatrix(self.task_config.model.num_classes,
                                     self.task_config.losses.ignore_label))
    return metrics

  def _update_metrics(self, metrics, labels, logits):
    for metric in metrics or []:
      if isinstance(metric, robust.SkippedExamples):
        metric.update_state(labels["skipped_examples"])
      elif isinstance(metric, ConfusionMatrix):
        metric.update_state(labels["semantic"], logits, labels["valid_size"])

  def gradient_multipliers(self, model):
    """{variable: head_learning_rate_multiplier} for the variables outside the backbone."""
    factor = self.task_config.head_learning_rate_multiplier
    if factor == 1.0:
      return None
    backbone = {v.ref() for v in backbone_of(model).trainable_variables}
    return {v.ref(): factor for v in model.trainable_variables if v.ref() not in backbone}

  def train_step(self, inputs, model, optimizer, metrics=None):
    images, labels = inputs

    def loss_fn():
      logits = model(images, training=True)
      loss = self._pixel_loss(labels, logits)
      if model.losses:
        loss += tf.add_n(model.losses)
      return loss, logits

    loss, logits = minimize(loss_fn, model, optimizer, self.gradient_multipliers(model))
    self._update_metrics(metrics, labels, logits)
    return {self.loss: loss}

  def validation_step(self, inputs, model, metrics=None):
    images, labels = inputs
    logits = model(images, training=False)
    loss = self._pixel_loss(labels, logits)
    self._update_metrics(metrics, labels, logits)
    return {self.loss: loss}
