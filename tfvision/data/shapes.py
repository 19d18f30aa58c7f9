"""`tfvision_shapes`: a built-in TFDS dataset of textured "stuff" with "thing" shapes.

Every example is generated deterministically from a seed (no download), and goes through
the real TFDS path: PNG encoding when the dataset is prepared, `tfds.load` and decoding
when it is read. Each image has

- two "stuff" regions split by a wavy boundary, each with a procedural texture of one of
  three stuff classes (stripes, checker, speckle),
- one to four "thing" instances (disk, square, triangle), each with its class's colour
  family and random shade, possibly overlapping (later shapes occlude earlier ones),

and panoptic labels: a semantic map, an instance map (0 for stuff, 1..N for things),
per-object boxes and classes, and an image-level class (the class of the largest thing)
for classification experiments.

    import tfvision.data.shapes  # registers the builder
    ds = tfds.load("tfvision_shapes/s96", split="train", data_dir=...)
"""
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

STUFF_CLASSES = ("stripes", "checker", "speckle")
THING_CLASSES = ("disk", "square", "triangle")
# Semantic ids: stuff first, then things (as Cityscapes / COCO panoptic order them).
CLASS_NAMES = STUFF_CLASSES + THING_CLASSES
THING_IDS = tuple(range(len(STUFF_CLASSES), len(CLASS_NAMES)))
NUM_CLASSES = len(CLASS_NAMES)
LABEL_DIVISOR = 256
IGNORE_LABEL = 255
# Hue families per thing class (RGB anchors): things are recognisable by colour and shape.
_THING_COLOURS = ((220, 40, 40), (40, 200, 60), (50, 80, 230))
_MIN_VISIBLE_PIXELS = 12


def _stuff_texture(kind, rng, size):
  yy, xx = np.mgrid[0:size, 0:size].astype("float32")
  base = rng.uniform(70, 190, 3)
  if kind == 0:  # stripes
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(5, 9)
    wave = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period)
    pattern = 40 * wave[..., None]
  elif kind == 1:  # checker
    cell = int(rng.randint(4, 8))
    checks = ((yy // cell + xx // cell) % 2) * 2 - 1
    pattern = 35 * checks[..., None]
  else:  # speckle
    pattern = rng.normal(0, 30, (size, size, 1))
  return base + pattern


def _thing_mask(kind, size, cy, cx, radius):
  yy, xx = np.mgrid[0:size, 0:size].astype("float32")
  if kind == 0:
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
  if kind == 1:
    return (np.abs(yy - cy) <= radius) & (np.abs(xx - cx) <= radius)
  top = cy - radius
  rows = (yy >= top) & (yy <= cy + radius)
  return rows & (np.abs(xx - cx) <= (yy - top) / 2.0)


def generate_example(seed, size):
  """One example as numpy arrays (no TFDS needed).

  Args:
    seed: integer seed; the same seed always gives the same example.
    size: image side in pixels (>= 32).

  Returns:
    dict with image [size, size, 3] uint8, semantic [size, size, 1] uint8, instance
    [size, size, 1] uint8, objects (lists of label, bbox (ymin, xmin, ymax, xmax) in
    [0, 1], area) and label (image-level class index into THING_CLASSES).
  """
  if size < 32:
    raise ValueError(f"size must be >= 32, received size={size!r}")
  rng = np.random.RandomState(seed)
  yy, xx = np.mgrid[0:size, 0:size].astype("float32")
  # Stuff: two regions separated by a wavy horizontal-ish boundary.
  kinds = rng.choice(len(STUFF_CLASSES), 2, replace=False)
  boundary = (size * rng.uniform(0.3, 0.7) +
              size * 0.08 * np.sin(2 * np.pi * xx / size * rng.uniform(0.5, 2.0) +
                                    rng.uniform(0, 2 * np.pi)))
  upper = yy < boundary
  image = np.where(upper[..., None], _stuff_texture(kinds[0], rng, size),
                   _stuff_texture(kinds[1], rng, size))
  semantic = np.where(upper, kinds[0], kinds[1]).astype("uint8")
  instance = np.zeros((size, size), "uint8")

  count = rng.randint(1, 5)
  things = []
  for _ in range(count):
    kind = rng.randint(len(THING_CLASSES))
    radius = rng.uniform(0.1, 0.2) * size
    cy, cx = rng.uniform(radius, size - radius, 2)
    mask = _thing_mask(kind, size, cy, cx, radius)
    shade = rng.uniform(0.75, 1.15)
    colour = np.clip(np.array(_THING_COLOURS[kind]) * shade + rng.normal(0, 8, 3), 0, 255)
    image[mask] = colour + rng.normal(0, 4, (int(mask.sum()), 3))
    instance_id = len(things) + 1
    semantic[mask] = THING_IDS[kind]
    instance[mask] = instance_id
    things.append((instance_id, kind))

  # Occluded instances may have disappeared or shrunk to a sliver: drop those.
  objects = {"label": [], "bbox": [], "area": []}
  areas = []
  kept = 0
  for instance_id, kind in things:
    visible = instance == instance_id
    area = int(visible.sum())
    if area < _MIN_VISIBLE_PIXELS:
      # Too small to be a fair target: becomes "void" (ignored) in both maps.
      semantic[visible] = IGNORE_LABEL
      instance[visible] = 0
      continue
    kept += 1
    instance[visible] = kept
    rows, cols = np.nonzero(visible)
    objects["label"].append(kind)
    objects["bbox"].append([rows.min() / size, cols.min() / size,
                            (rows.max() + 1) / size, (cols.max() + 1) / size])
    objects["area"].append(area)
    areas.append((area, kind))
  label = max(areas)[1] if areas else 0
  return {
      "image": np.clip(image, 0, 255).astype("uint8"),
      "semantic": semantic[..., None],
      "instance": instance[..., None],
      "objects": objects,
      "label": label,
  }


class ShapesConfig(tfds.core.BuilderConfig):
  """Image size and split sizes of one `tfvision_shapes` configuration."""

  def __init__(self, *, size, train_examples, validation_examples, **kwargs):
    super().__init__(version=tfds.core.Version("1.0.0"), **kwargs)
    self.size = size
    self.train_examples = train_examples
    self.validation_examples = validation_examples


class TfvisionShapes(tfds.core.GeneratorBasedBuilder):
  """Built-in panoptic / classification dataset generated from a seed."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      ShapesConfig(name="s64", size=64, train_examples=1024, validation_examples=128,
                   description="64x64 images"),
      ShapesConfig(name="s96", size=96, train_examples=1536, validation_examples=128,
                   description="96x96 images (the `make demo` setting)"),
      ShapesConfig(name="s128", size=128, train_examples=2048, validation_examples=256,
                   description="128x128 images"),
      ShapesConfig(name="tiny", size=64, train_examples=64, validation_examples=16,
                   description="64x64 images, 64 + 16 of them: tests and smoke runs"),
  ]
  DEFAULT_CONFIG_NAME = "s96"

  def _info(self):
    size = self.builder_config.size
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3)),
            "semantic": tfds.features.Image(shape=(size, size, 1)),
            "instance": tfds.features.Image(shape=(size, size, 1)),
            "label": tfds.features.ClassLabel(names=THING_CLASSES),
            "objects": tfds.features.Sequence({
                "label": tfds.features.ClassLabel(names=THING_CLASSES),
                "bbox": tfds.features.BBoxFeature(),
                "area": tf.int64,
            }),
            "image/id": tf.int64,
        }),
        supervised_keys=("image", "label"),
        homepage="https://github.com/tfvision/tfvision",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is generated: nothing to download
    config = self.builder_config
    return {
        "train": self._generate_examples(0, config.train_examples),
        "validation": self._generate_examples(1_000_000, config.validation_examples),
    }

  def _generate_examples(self, first_seed, count):
    size = self.builder_config.size
    for index in range(count):
      seed = first_seed + index
      example = generate_example(seed, size)
      objects = example.pop("objects")
      example["objects"] = [
          {"label": label, "bbox": tfds.features.BBox(*bbox), "area": area}
          for label, bbox, area in zip(objects["label"], objects["bbox"], objects["area"])]
      example["image/id"] = seed
      yield seed, example


def panoptic_label(semantic, instance, label_divisor=LABEL_DIVISOR):
  """semantic * label_divisor + instance (stuff and void keep instance 0)."""
  semantic = tf.cast(semantic, tf.int32)
  instance = tf.cast(instance, tf.int32)
  return semantic * label_divisor + instance
