"""Image classification with the tfvision models for Model Garden's trainer.

Model Garden's `ImageClassificationTask` provides the losses (label smoothing, soft
labels after mixup), metrics and train / validation steps; this subclass changes what
differs:

- the model is the tfvision classifier itself (`build_model_from_config(...,
  include_top=True)`: the family's own head and input normalisation);
- the parser follows Model Garden's steps (random-size crop, flip, color jitter,
  AutoAugment / RandAugment, center-crop evaluation) without its ImageNet
  normalisation, so the model receives raw [0, 255] pixels like everywhere else and
  normalises them once;
- decoding runs in the error-tolerant stage (`tfvision.tasks.inputs`), and the
  `skipped_examples` metric counts corrupt images;
- `pca_lighting` adds AlexNet's PCA lighting noise after the color jitter (ResNeSt);
- padded evaluation (`pad_to_global_batch`): the loss and metrics weight each example
  by `labels["valid_example"]`, so the empty padding counts for nothing.
"""
import tensorflow as tf
import tf_keras
from official.core import task_factory
from official.vision.dataloaders import classification_input
from official.vision.ops import augment as model_garden_augment
from official.vision.ops import preprocess_ops
from official.vision.tasks import image_classification as model_garden

from tfvision.configs import image_classification as exp_cfg
from tfvision.data import augment
from tfvision.data import robust
from tfvision.data import shapes  # noqa: F401  (registers the built-in TFDS dataset)
from tfvision.models.factory import build_model_from_config
from tfvision.tasks import inputs as inputs_lib
from tfvision.tasks.common import initialize_from_checkpoint


class RawPixelParser(classification_input.Parser):
  """Model Garden's classification parser, returning [0, 255] pixels, never normalised.

  The steps and their order are the parent's (`_parse_train_image` / `_parse_eval_image`
  of `official.vision.dataloaders.classification_input.Parser`): decode and crop (or
  center-crop), flip, resize, AutoAugment / RandAugment, DeiT's three augment; the
  parent then normalises with Model Garden's ImageNet mean / std, which this parser
  does not: the model normalises, once, as its paper did. Two steps differ:

  - color jitter runs on the pixels after AutoAugment / RandAugment
    (`tfvision.data.augment.color_jitter`) instead of between crop and resize: the
    parent's version cannot be traced in the error-tolerant stage; PCA lighting
    (`pca_lighting`, ResNeSt) follows it;
  - random erasing, whose fill values are drawn in normalised units, runs on the image
    normalised for that step only (the one place a round trip remains, when enabled).
  """

  def __init__(self, dtype="float32", color_jitter=0.0, pca_lighting=0.0, **kwargs):
    super().__init__(dtype="float32", color_jitter=0.0, **kwargs)
    self._jitter = float(color_jitter)
    self._lighting = float(pca_lighting)
    self._pixel_dtype = tf.dtypes.as_dtype(dtype)
    self._mean = tf.constant(preprocess_ops.MEAN_RGB, tf.float32)
    self._std = tf.constant(preprocess_ops.STDDEV_RGB, tf.float32)

  def _crop(self, decoded_tensors, training):
    """The decoded image, randomly cropped (training) or center-cropped (the parent's)."""
    image = decoded_tensors[self._image_field_key]
    encoded = not tf.is_tensor(image) or image.dtype == tf.dtypes.string
    if encoded and self._decode_jpeg_only and self._aug_crop:
      shape = tf.image.extract_jpeg_shape(image)
      if not training:
        return preprocess_ops.center_crop_image_v2(image, shape, self._center_crop_fraction)
      cropped = preprocess_ops.random_crop_image_v2(image, shape,
                                                     area_range=self._crop_area_range)
      return tf.cond(tf.reduce_all(tf.equal(tf.shape(cropped), shape)),
                     lambda: preprocess_ops.center_crop_image_v2(image, shape),
                     lambda: cropped)
    if encoded:
      image = tf.io.decode_image(image, channels=3)
      image.set_shape([None, None, 3])
    if not self._aug_crop:
      return image
    if not training:
      return preprocess_ops.center_crop_image(image, self._center_crop_fraction)
    cropped = preprocess_ops.random_crop_image(image, area_range=self._crop_area_range)
    return tf.cond(tf.reduce_all(tf.equal(tf.shape(cropped), tf.shape(image))),
                   lambda: preprocess_ops.center_crop_image(image), lambda: cropped)

  def _resize(self, image):
    image = tf.image.resize(image, self._output_size, method=self._tf_resize_method)
    image.set_shape([self._output_size[0], self._output_size[1], 3])
    return image

  def _parse_train_image(self, decoded_tensors):
    image = self._crop(decoded_tensors, training=True)
    if self._aug_rand_hflip:
      image = tf.image.random_flip_left_right(image)
    image = self._resize(image)
    if self._augmenter is not None:
      image = self._augmenter.distort(image)
    if self._three_augment:
      image = model_garden_augment.AutoAugment(
          augmentation_name="deit3_three_augment", translate_const=20).distort(image)
    image = augment.color_jitter(tf.cast(image, tf.float32), self._jitter)
    image = augment.pca_lighting(image, self._lighting)
    if self._random_erasing is not None:
      normalised = (image - self._mean) / self._std
      image = self._random_erasing.distort(normalised) * self._std + self._mean
    return tf.cast(image, self._pixel_dtype)

  def _parse_eval_image(self, decoded_tensors):
    image = self._resize(self._crop(decoded_tensors, training=False))
    return tf.cast(image, self._pixel_dtype)


def build_classifier(model_config, l2_weight_decay=0.0):
  """The tfvision classifier of a `ClassificationModel` config."""
  extra = {}
  if model_config.dropout_rate is not None:
    extra["dropout_rate"] = model_config.dropout_rate
  return build_model_from_config(
      model_config.backbone, model_config.norm_activation,
      weight_decay=l2_weight_decay / 2.0, include_top=True,
      num_classes=model_config.num_classes, **extra)


@task_factory.register_task_cls(exp_cfg.ImageClassificationTask)
class ImageClassificationTask(model_garden.ImageClassificationTask):
  """tfvision classifier + raw-pixel parser on Model Garden's classification task."""

  def build_model(self):
    model = build_classifier(self.task_config.model,
                             self.task_config.losses.l2_weight_decay)
    model(tf.zeros([1] + list(self.task_config.model.input_size)), training=False)
    return model

  def initialize(self, model):
    initialize_from_checkpoint(model, self.task_config.init_checkpoint,
                               self.task_config.init_checkpoint_modules)

  def build_inputs(self, params, input_context=None):
    config = self.task_config
    num_classes = config.model.num_classes
    parser = RawPixelParser(
        output_size=config.model.input_size[:2], num_classes=num_classes,
        image_field_key="image", label_field_key="label", decode_jpeg_only=False,
        aug_rand_hflip=params.aug_rand_hflip, aug_crop=params.aug_crop,
        crop_area_range=params.crop_area_range, aug_type=params.aug_type,
        color_jitter=params.color_jitter, pca_lighting=params.pca_lighting,
        random_erasing=params.random_erasing,
        is_multilabel=params.is_multilabel, dtype=params.dtype,
        center_crop_fraction=params.center_crop_fraction,
        tf_resize_method=params.tf_resize_method, three_augment=params.three_augment)
    postprocess_fn = None
    if params.mixup_and_cutmix:
      mix = model_garden_augment.MixupAndCutmix(
          mixup_alpha=params.mixup_and_cutmix.mixup_alpha,
          cutmix_alpha=params.mixup_and_cutmix.cutmix_alpha,
          prob=params.mixup_and_cutmix.prob,
          switch_prob=params.mixup_and_cutmix.switch_prob,
          label_smoothing=params.mixup_and_cutmix.label_smoothing,
          num_classes=num_classes)

      def postprocess_fn(images, labels):
        images, mixed = mix(images, labels["label"])
        return images, dict(labels, label=mixed)

    key = "task.train_data" if params.is_training else "task.validation_data"
    return inputs_lib.build_dataset(params, "classification",
                                    parser.parse_fn(params.is_training), input_context,
                                    postprocess_fn=postprocess_fn, config_key=key)

  def build_metrics(self, training=True):
    return super().build_metrics(training) + [robust.SkippedExamples()]

  @staticmethod
  def _split(inputs, metrics):
    images, labels = inputs
    skipped = [m for m in metrics or [] if isinstance(m, robust.SkippedExamples)]
    others = [m for m in metrics or [] if not isinstance(m, robust.SkippedExamples)]
    for metric in skipped:
      metric.update_state(labels["skipped_examples"])
    return (images, labels["label"]), others

  def train_step(self, inputs, model, optimizer, metrics=None):
    inputs, metrics = self._split(inputs, metrics)
    return super().train_step(inputs, model, optimizer, metrics=metrics)

  def validation_step(self, inputs, model, metrics=None):
    weights = inputs[1].get("valid_example")
    inputs, metrics = self._split(inputs, metrics)
    if weights is None:
      return super().validation_step(inputs, model, metrics=metrics)
    return self._weighted_validation_step(inputs, weights, model, metrics)

  def _weighted_validation_step(self, inputs, weights, model, metrics):
    """Model Garden's validation step with per-example weights (padded evaluation)."""
    images, labels = inputs
    losses = self.task_config.losses
    num_classes = self.task_config.model.num_classes
    outputs = tf.cast(self.inference_step(images, model), tf.float32)
    if losses.one_hot or losses.soft_labels:
      labels = tf.one_hot(labels, num_classes)
    if losses.use_binary_cross_entropy:
      per_example = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
          labels=labels, logits=outputs), axis=-1)
    elif losses.one_hot:
      per_example = tf_keras.losses.categorical_crossentropy(
          labels, outputs, from_logits=True, label_smoothing=losses.label_smoothing)
    elif losses.soft_labels:
      per_example = tf.nn.softmax_cross_entropy_with_logits(labels, outputs)
    else:
      per_example = tf_keras.losses.sparse_categorical_crossentropy(
          labels, outputs, from_logits=True)
    weights = tf.cast(weights, tf.float32)
    loss = tf.math.divide_no_nan(tf.reduce_sum(per_example * weights),
                                 tf.reduce_sum(weights)) * losses.loss_weight
    if model.losses:
      loss += tf.add_n(model.losses)
    for metric in metrics or []:
      metric.update_state(labels, outputs, sample_weight=weights)
    return {self.loss: loss}
