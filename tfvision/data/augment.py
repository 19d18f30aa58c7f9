"""Augmentations of the training recipes: the SWideRNet AutoAugment policy, and the
random scale / crop / flip of the dense-prediction pipelines.

`SWIDERNET_TABLE2_POLICY` is swidernet.md Table 2 (five sub-policies of two
photometric operations; one sub-policy drawn uniformly per image). `autoaugment(name)`
returns Model Garden's `AutoAugment` with that policy (or one of Model Garden's named
policies). Dense-prediction tasks accept only policies whose operations leave the
geometry unchanged, so the labels stay aligned (`check_photometric`).

The dense augmentations follow deeplab2's `data/preprocessing/input_preprocessing.py`:
scale by a random factor (image bilinear, labels nearest neighbour), pad the image with
the mean pixel and the label with the void value up to the crop size, crop a random
window of the crop size, flip left-right with probability 1/2.
"""
import tensorflow as tf
from official.vision.ops import augment as model_garden_augment

from tfvision.utils import validation

# swidernet.md Table 2: (operation, probability, magnitude).
SWIDERNET_TABLE2_POLICY = (
    (("Sharpness", 0.4, 1.4), ("Brightness", 0.2, 2.0)),
    (("Equalize", 0.0, 1.8), ("Contrast", 0.2, 2.0)),
    (("Sharpness", 0.2, 1.8), ("Color", 0.2, 1.8)),
    (("Solarize", 0.2, 1.4), ("Equalize", 0.6, 1.8)),
    (("Sharpness", 0.2, 0.2), ("Equalize", 0.2, 1.4)),
)

NAMED_POLICIES = {"swidernet_table2": SWIDERNET_TABLE2_POLICY}

# Operations that change pixel values only (no rotation, shear, translation, cutout).
PHOTOMETRIC_OPERATIONS = frozenset((
    "AutoContrast", "Equalize", "Invert", "Posterize", "Solarize", "SolarizeAdd", "Color",
    "Contrast", "Brightness", "Sharpness", "Grayscale"))


def policy(name):
  """The sub-policies of a named policy (ours or one of Model Garden's)."""
  if name in NAMED_POLICIES:
    return [list(sub) for sub in NAMED_POLICIES[name]]
  available = model_garden_augment.AutoAugment().available_policies
  if name not in available:
    raise ValueError(f"unknown AutoAugment policy, received autoaugment_policy={name!r}; "
                     f"known: {sorted(set(NAMED_POLICIES) | set(available))}")
  return available[name]


def check_photometric(name):
  """Raises a ValueError if the policy `name` has geometric operations."""
  geometric = sorted({op for sub in policy(name) for op, _, _ in sub} -
                     PHOTOMETRIC_OPERATIONS)
  if geometric:
    raise ValueError(f"dense-prediction tasks need a photometric AutoAugment policy (the "
                     f"labels are not transformed); {name!r} has {geometric}, received "
                     f"autoaugment_policy={name!r}")
  return name


def autoaugment(name):
  """Model Garden's AutoAugment running the named policy (uint8 images in and out)."""
  return model_garden_augment.AutoAugment(policies=policy(name))


def random_scale_factor(min_scale, max_scale, step=0.0):
  """A random scale factor: uniform in [min_scale, max_scale], or on its grid of `step`.

  deeplab2's `get_random_scale` (data/preprocessing/preprocess_utils.py): with step > 0
  the factor is one of min_scale, min_scale + step, ..., max_scale, each equally likely
  (its Cityscapes / COCO configs use step 0.1).
  """
  validation.check_non_negative("step", step)
  if step == 0 or min_scale == max_scale:
    return tf.random.uniform([], min_scale, max_scale)
  count = int((max_scale - min_scale) / step + 1)
  index = tf.random.uniform([], 0, count, tf.int32)
  return min_scale + tf.cast(index, tf.float32) * float(step)


def random_scale(image, label, min_scale, max_scale, step=0.0):
  """Resizes image (bilinear) and label (nearest) by a random factor in [min, max]."""
  if min_scale == max_scale == 1.0:
    return image, label
  scale = random_scale_factor(min_scale, max_scale, step)
  size = tf.cast(tf.round(tf.cast(tf.shape(image)[:2], tf.float32) * scale), tf.int32)
  size = tf.maximum(size, 1)
  image = tf.image.resize(image, size, method="bilinear")
  label = tf.image.resize(label[..., tf.newaxis], size, method="nearest")[..., 0]
  return image, label


def pad_to_size(image, label, height, width, image_value, label_value):
  """Pads bottom / right up to at least (height, width)."""
  shape = tf.shape(image)
  pad_h = tf.maximum(height - shape[0], 0)
  pad_w = tf.maximum(width - shape[1], 0)
  image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]], constant_values=image_value)
  label = tf.pad(label, [[0, pad_h], [0, pad_w]], constant_values=label_value)
  return image, label


def random_crop(image, label, height, width):
  """The same random (height, width) window of an image and its label."""
  shape = tf.shape(image)
  top = tf.random.uniform([], 0, shape[0] - height + 1, tf.int32)
  left = tf.random.uniform([], 0, shape[1] - width + 1, tf.int32)
  image = image[top:top + height, left:left + width]
  label = label[top:top + height, left:left + width]
  return image, label


def random_flip(image, label):
  """Flips both left-right with probability 1/2."""
  flip = tf.random.uniform([]) < 0.5
  image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
  label = tf.cond(flip, lambda: label[:, ::-1], lambda: label)
  return image, label


def fit_within(image, label, height, width):
  """Downscales (keeping the aspect ratio) an image larger than (height, width)."""
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  ratio = tf.minimum(1.0, tf.minimum(height / shape[0], width / shape[1]))
  size = tf.cast(tf.floor(shape * ratio), tf.int32)

  def shrink():
    return (tf.image.resize(image, size, method="bilinear"),
            tf.image.resize(label[..., tf.newaxis], size, method="nearest")[..., 0])

  return tf.cond(ratio < 1.0, shrink, lambda: (image, label))


def dense_augment(image, label, crop_size, void_label, min_scale=1.0, max_scale=1.0,
                  flip=True, pad_value=127.5, scale_step=0.0):
  """deeplab2's training augmentation: random scale, pad, random crop, flip.

  Args:
    image: float32 [H, W, 3] pixels.
    label: int32 [H, W] (semantic or panoptic ids).
    crop_size: (height, width) of the output.
    void_label: label value of padded pixels.
    min_scale, max_scale: range of the random scale factor.
    flip: random left-right flip.
    pad_value: image value of padded pixels (the mean pixel).
    scale_step: grid of the scale factor (0: continuous; `random_scale_factor`).
  Returns: (image [h, w, 3], label [h, w]) with (h, w) = crop_size.
  """
  validation.check_positive("min_scale", min_scale)
  validation.check_positive("max_scale", max_scale)
  if min_scale > max_scale:
    raise ValueError(f"min_scale must not exceed max_scale={max_scale!r}, received "
                     f"min_scale={min_scale!r}")
  height, width = crop_size
  image, label = random_scale(image, label, min_scale, max_scale, scale_step)
  image, label = pad_to_size(image, label, height, width, pad_value, void_label)
  image, label = random_crop(image, label, height, width)
  if flip:
    image, label = random_flip(image, label)
  image.set_shape([height, width, 3])
  label.set_shape([height, width])
  return image, label


def color_jitter(image, strength):
  """Random brightness, contrast and saturation of float [0, 255] pixels.

  torchvision's `ColorJitter(b, c, s)` with b = c = s = `strength`, as Model Garden's
  `preprocess_ops.color_jitter`: each factor uniform in [max(0, 1 - strength),
  1 + strength], applied in that order as a blend with black (brightness), with the mean
  grey level (contrast) and with the grey image (saturation), clipped to [0, 255]. This
  one takes the factors as tensors throughout: Model Garden's `augment.blend` branches
  on `factor == 0.0` in Python, which fails for a random factor when the parser is traced
  without AutoGraph (inside `tfvision.data.robust.map_skipping_errors`).

  Args:
    image: float [H, W, 3] pixels in [0, 255].
    strength: jitter magnitude (>= 0); 0 returns the image unchanged.
  """
  validation.check_non_negative("strength", strength)
  if not strength:
    return image
  image = tf.cast(image, tf.float32)
  low, high = max(0.0, 1.0 - strength), 1.0 + strength

  def factor():
    return tf.random.uniform([], low, high)

  def grey(x):
    return tf.image.rgb_to_grayscale(x)

  image = tf.clip_by_value(image * factor(), 0.0, 255.0)
  mean = tf.reduce_mean(grey(image))
  image = tf.clip_by_value(mean + factor() * (image - mean), 0.0, 255.0)
  grey_image = grey(image)
  return tf.clip_by_value(grey_image + factor() * (image - grey_image), 0.0, 255.0)


# The PCA of ImageNet's RGB pixels on the [0, 255] scale (AlexNet's "lighting" noise), as
# MXNet's `LightingAug` / GluonCV's `RandomLighting`, which ResNeSt's training script uses.
IMAGENET_PCA_EIGENVALUES = (55.46, 4.794, 1.148)
IMAGENET_PCA_EIGENVECTORS = ((-0.5675, 0.7192, 0.4009),
                             (-0.5808, -0.0045, -0.8140),
                             (-0.5836, -0.6948, 0.4203))


def pca_lighting(image, alpha_std):
  """AlexNet's PCA lighting noise on float [0, 255] RGB pixels.

  Adds sum_j eigenvector_j * alpha_j * eigenvalue_j to every pixel, alpha_j ~ N(0,
  alpha_std), then clips to [0, 255] (resnest.md Sec. 6.1 "changing the lighting";
  ResNeSt `scripts/gluon/train.py`: `RandomLighting(0.1)` after the color jitter).

  Args:
    image: float [H, W, 3] pixels in [0, 255].
    alpha_std: standard deviation of the per-component noise (>= 0); 0 returns the image.
  """
  validation.check_non_negative("alpha_std", alpha_std)
  if not alpha_std:
    return image
  alpha = tf.random.normal([3], stddev=alpha_std)
  eigenvectors = tf.constant(IMAGENET_PCA_EIGENVECTORS, tf.float32)
  shift = tf.linalg.matvec(eigenvectors, alpha * tf.constant(IMAGENET_PCA_EIGENVALUES))
  return tf.clip_by_value(tf.cast(image, tf.float32) + shift, 0.0, 255.0)
