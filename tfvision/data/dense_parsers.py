"""Parsers of the dense-prediction tasks: decoded examples -> (pixels, labels).

Both parsers keep pixels raw ([0, 255] float32; the models normalise internally) and
produce fixed-size outputs, so batches have static shapes:

- training: deeplab2's augmentation (`tfvision.data.augment.dense_augment`: random
  scale, pad, random crop to the crop size, flip), then the optional photometric
  AutoAugment policy on the uint8 image;
- evaluation: images larger than the crop size are downscaled to fit (aspect ratio
  kept), then padded bottom / right (pixels with the mean value, labels with void);
  "valid_size" records the unpadded (height, width), so metrics skip the padding.

`PanopticParser` adds the Panoptic-DeepLab targets (`tfvision.ops.panoptic_targets`);
`SemanticParser` the semantic label alone.
"""
import tensorflow as tf

from tfvision.data import augment
from tfvision.ops.panoptic_targets import panoptic_targets
from tfvision.utils import validation

PAD_PIXEL = 127.5


def _check_size(output_size):
  try:
    height, width = (int(v) for v in list(output_size)[:2])
  except (TypeError, ValueError):
    raise ValueError(f"output_size must be (height, width), received "
                     f"output_size={output_size!r}")
  validation.check_positive("output_size", height, integer=True)
  validation.check_positive("output_size", width, integer=True)
  return height, width


class _DenseParser:
  """Shared augmentation / padding of image + label map."""

  def __init__(self, output_size, void_label, is_training, aug_scale_min=1.0,
               aug_scale_max=1.0, aug_rand_hflip=True, autoaugment_policy=None,
               aug_scale_step=0.0):
    self.output_size = _check_size(output_size)
    validation.check_non_negative("aug_scale_step", aug_scale_step)
    self.aug_scale_step = float(aug_scale_step)
    self.void_label = int(void_label)
    self.is_training = bool(is_training)
    self.aug_scale_min = float(aug_scale_min)
    self.aug_scale_max = float(aug_scale_max)
    self.aug_rand_hflip = bool(aug_rand_hflip)
    self._augmenter = None
    if autoaugment_policy:
      augment.check_photometric(autoaugment_policy)
      self._augmenter = augment.autoaugment(autoaugment_policy)

  def _image_and_label(self, image, label):
    height, width = self.output_size
    label = tf.cast(label, tf.int32)
    if self.is_training:
      if self._augmenter is not None:
        image = self._augmenter.distort(tf.cast(image, tf.uint8))
      image, label = augment.dense_augment(
          tf.cast(image, tf.float32), label, (height, width), self.void_label,
          self.aug_scale_min, self.aug_scale_max, self.aug_rand_hflip, PAD_PIXEL,
          self.aug_scale_step)
      valid = tf.constant([height, width], tf.int32)
    else:
      image, label = augment.fit_within(tf.cast(image, tf.float32), label, height, width)
      valid = tf.shape(label)[:2]
      image, label = augment.pad_to_size(image, label, height, width, PAD_PIXEL,
                                         self.void_label)
      image.set_shape([height, width, 3])
      label.set_shape([height, width])
    return image, label, valid


class PanopticParser(_DenseParser):
  """{"image", "panoptic"} -> (image [h, w, 3] float32, targets + "panoptic").

  Args:
    output_size: crop / evaluation (height, width).
    num_classes, thing_classes, label_divisor, ignore_label: the label scheme.
    is_training: augment (training) or pad (evaluation).
    sigma: standard deviation of the center Gaussians, in pixels.
    small_instance_area, small_instance_weight: semantic weight of small instances.
    aug_scale_min, aug_scale_max, aug_rand_hflip, autoaugment_policy: augmentation.
    aug_scale_step: grid of the random scale (0: continuous; deeplab2's configs: 0.1).
  Output labels: `panoptic_targets`' six maps, "panoptic" [h, w] int32 and
  "valid_size" [2] int32.
  """

  def __init__(self, output_size, num_classes, thing_classes, label_divisor, ignore_label,
               is_training, sigma=8.0, small_instance_area=4096, small_instance_weight=3.0,
               aug_scale_min=1.0, aug_scale_max=1.0, aug_rand_hflip=True,
               autoaugment_policy=None, aug_scale_step=0.0):
    super().__init__(output_size, ignore_label * label_divisor, is_training, aug_scale_min,
                     aug_scale_max, aug_rand_hflip, autoaugment_policy, aug_scale_step)
    self.target_kwargs = dict(
        num_classes=num_classes, thing_classes=list(thing_classes),
        label_divisor=label_divisor, ignore_label=ignore_label, sigma=sigma,
        small_instance_area=small_instance_area,
        small_instance_weight=small_instance_weight)
    # Validates the label scheme and target arguments now, not inside the pipeline.
    panoptic_targets(tf.zeros([1, 1], tf.int32), **self.target_kwargs)

  def __call__(self, decoded):
    image, panoptic, valid = self._image_and_label(decoded["image"], decoded["panoptic"])
    labels = panoptic_targets(panoptic, **self.target_kwargs)
    labels["panoptic"] = panoptic
    labels["valid_size"] = valid
    return image, labels


class SemanticParser(_DenseParser):
  """{"image", "semantic"} -> (image [h, w, 3] float32, {"semantic", "valid_size"}).

  Args:
    output_size: crop / evaluation (height, width).
    ignore_label: label of void pixels (also used for padding).
    is_training, aug_scale_min, aug_scale_max, aug_rand_hflip, autoaugment_policy,
      aug_scale_step: as PanopticParser.
  """

  def __init__(self, output_size, ignore_label, is_training, aug_scale_min=1.0,
               aug_scale_max=1.0, aug_rand_hflip=True, autoaugment_policy=None,
               aug_scale_step=0.0):
    validation.check_non_negative("ignore_label", ignore_label, integer=True)
    super().__init__(output_size, ignore_label, is_training, aug_scale_min, aug_scale_max,
                     aug_rand_hflip, autoaugment_policy, aug_scale_step)

  def __call__(self, decoded):
    image, semantic, valid = self._image_and_label(decoded["image"], decoded["semantic"])
    return image, {"semantic": semantic, "valid_size": valid}
