"""Sample and representative images: the built-in dataset, a folder, or arrays.

Used for int8 calibration (`export_tflite(..., representative_data=...)`) and by
`verify`. Every source yields uint8 [N, height, width, 3] RGB images resized (bilinear,
aspect ratio not kept) to the export input size, i.e. exactly what the exported model's
input sees.
"""
import os
from typing import Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf

BUILTIN = "shapes"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# tfvision_shapes split seeds (tfvision/data/shapes.py `_split_generators`): calibration
# draws from the train split, verification from the validation split, so the two never
# share an image.
SPLIT_FIRST_SEED = {"train": 0, "validation": 1_000_000}


def shapes_examples(count: int, size: Tuple[int, int], split: str = "validation"):
  """`count` tfvision_shapes examples at `size`, with their labels.

  The examples are those `tfds.load("tfvision_shapes/...", split=split)` yields (same
  seeds), generated directly by `generate_example` so that no dataset has to be
  prepared. Non-square sizes are generated square at the larger side and resized.

  Returns:
    dict with image uint8 [N, H, W, 3], label int [N] (image-level class) and semantic
    uint8 [N, H, W] (255 = ignore).
  """
  from tfvision.data import shapes  # pylint: disable=import-outside-toplevel
  if split not in SPLIT_FIRST_SEED:
    raise ValueError(f"split must be one of {sorted(SPLIT_FIRST_SEED)}, received split={split!r}")
  height, width = size
  side = max(height, width, 32)
  images, labels, semantics = [], [], []
  for index in range(count):
    example = shapes.generate_example(SPLIT_FIRST_SEED[split] + index, side)
    images.append(example["image"])
    labels.append(example["label"])
    semantics.append(example["semantic"])
  images = np.stack(images)
  semantics = np.stack(semantics)
  if (height, width) != (side, side):
    images = resize_uint8(images, size)
    semantics = tf.image.resize(semantics, size, method="nearest").numpy()
  return {"image": images, "label": np.asarray(labels, "int32"),
          "semantic": semantics[..., 0]}


def resize_uint8(images, size):
  """Bilinear resize of uint8 [N, h, w, 3] to `size`, rounded back to uint8."""
  resized = tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear")
  return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def folder_images(directory: str, count: Optional[int], size, name="representative_data"):
  """Up to `count` images of `directory` (sorted by name), decoded to RGB and resized."""
  files = sorted(f for f in tf.io.gfile.listdir(directory)
                 if f.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise ValueError(f"no {'/'.join(IMAGE_EXTENSIONS)} images in the folder, received "
                     f"{name}={directory!r}")
  images = []
  for file_name in files[:count]:
    encoded = tf.io.read_file(os.path.join(directory, file_name))
    try:
      image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError as error:
      raise ValueError(f"cannot decode {file_name} in {name}={directory!r}: "
                       f"{error.message}") from error
    images.append(resize_uint8(image[None], size)[0])
  return np.stack(images)


def load_images(source, count: Optional[int], size, *, split: str = "validation",
                name: str = "representative_data") -> np.ndarray:
  """uint8 [N, H, W, 3] images at `size` from a source.

  Args:
    source: "shapes" (the built-in tfvision_shapes dataset), a folder of images, or an
      array / iterable of [H, W, 3] images (uint8 or float in [0, 255]).
    count: how many (None = all of a folder or array; required for "shapes").
    size: (height, width).
    split: tfvision_shapes split for "shapes".
    name: the argument's name in error messages.
  """
  if count is not None and (not isinstance(count, int) or count < 1):
    raise ValueError(f"the image count must be a positive integer, received count={count!r}")
  if isinstance(source, str):
    if source == BUILTIN:
      if count is None:
        raise ValueError(f"the built-in dataset needs a count, received {name}={source!r} "
                         "with count=None")
      return shapes_examples(count, size, split)["image"]
    if tf.io.gfile.isdir(source):
      return folder_images(source, count, size, name)
    raise ValueError(f"{name} must be {BUILTIN!r}, a folder of images or an array of "
                     f"images, received {name}={source!r}")
  if source is None:
    raise ValueError(f"{name} is required here, received {name}=None")
  return _array_images(source, count, size, name)


def _array_images(source: Iterable, count, size, name):
  images = []
  for image in source:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
      raise ValueError(f"{name} images must be [H, W, 3], received an image of shape "
                       f"{image.shape} in {name}")
    images.append(resize_uint8(np.clip(np.round(image.astype("float32")), 0, 255)[None],
                               size)[0])
    if count is not None and len(images) >= count:
      break
  if not images:
    raise ValueError(f"{name} holds no images, received {name}={source!r}")
  return np.stack(images)


_SHAPES_PANOPTIC = []


def shapes_panoptic_info():
  """The tfvision_shapes panoptic label scheme, with post-processing settings for it.

  Classes, things, ignore label and divisor are those of tfvision/data/shapes.py. The
  post-processing settings are scaled down from Cityscapes' (nms_kernel 13 and
  stuff_area_limit 2048 at 1025x2049, swidernet.md Sec. 4) to the dataset's small
  images, whose shapes have radii of 10-20 % of the side (6-13 pixels at 64): a 7-pixel
  center suppression window and 32-pixel stuff segments.
  """
  if not _SHAPES_PANOPTIC:  # built on first use: tfvision.data.shapes imports TFDS
    # pylint: disable=import-outside-toplevel
    from tfvision.data import shapes
    from tfvision.data.panoptic import PanopticDatasetInfo
    _SHAPES_PANOPTIC.append(PanopticDatasetInfo(
        name="tfvision_shapes", num_classes=shapes.NUM_CLASSES,
        thing_classes=shapes.THING_IDS, ignore_label=shapes.IGNORE_LABEL,
        label_divisor=shapes.LABEL_DIVISOR, stuff_area_limit=32, nms_kernel=7))
  return _SHAPES_PANOPTIC[0]
