"""Decoders from TFDS examples or TFRecords to the tensors the tfvision tasks parse.

Every decoder returns a dict with "image" (uint8 [H, W, 3]) and, by task kind:

- "classification": "label" (int32 scalar);
- "semantic": "semantic" (int32 [H, W], the dataset's train ids, ignore label for void);
- "panoptic": "panoptic" (int32 [H, W], semantic * label_divisor + instance).

Images may arrive decoded (TFDS' default) or encoded (TFRecords, or TFDS with
`tfds_skip_decoding_feature`); encoded ones are decoded here, inside the input
pipeline's error-tolerant stage (`tfvision.data.robust`), so a corrupt image is
counted and skipped instead of stopping training.

TFDS names (`DataConfig.tfds_name`) are matched exactly or by their builder name (the
part before "/"): `imagenet2012`, `coco/2017_panoptic`, `cityscapes`,
`scene_parse150` (ADE20K), `tfvision_shapes/*`. Without a TFDS name the task reads
TFRecords in Model Garden's layout (classification, semantic) or deeplab2's
(panoptic: "image/segmentation/class/encoded" holding raw int32 bytes or a PNG).
"""
import numpy as np
import tensorflow as tf

KINDS = ("classification", "semantic", "panoptic")


def decode_image(value, channels=3):
  """uint8 [H, W, channels] from an encoded string or an already decoded tensor."""
  if value.dtype == tf.string:
    image = tf.io.decode_image(value, channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    return image
  return tf.cast(value, tf.uint8)


def _squeeze_map(value, dtype=tf.int32):
  """[H, W] from a decoded [H, W, 1] (or [H, W]) label image."""
  value = tf.convert_to_tensor(value)
  if value.shape.rank == 3:
    value = value[..., 0]
  return tf.cast(value, dtype)


def _decode_label_png(value):
  if value.dtype == tf.string:
    return _squeeze_map(tf.io.decode_png(value, channels=1, dtype=tf.uint16))
  return _squeeze_map(value)


# --- TFDS ------------------------------------------------------------------------------

def _imagenet_classification(example):
  return {"image": decode_image(example["image"]),
          "label": tf.cast(example["label"], tf.int32)}


def _shapes_classification(example):
  return _imagenet_classification(example)


def _shapes_semantic(example):
  return {"image": decode_image(example["image"]),
          "semantic": _decode_label_png(example["semantic"])}


def _shapes_panoptic(example):
  # The builder's label divisor (tfvision.data.shapes.LABEL_DIVISOR); void pixels keep
  # semantic 255 with instance 0.
  semantic = _decode_label_png(example["semantic"])
  instance = _decode_label_png(example["instance"])
  return {"image": decode_image(example["image"]), "panoptic": semantic * 256 + instance}


# Cityscapes label ids (-1..33) to the 19 train ids, 255 elsewhere (cityscapesScripts'
# `labels.py`; the same table as Model Garden's TFDS Cityscapes decoder).
_CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
                         23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17,
                         33: 18}


def cityscapes_train_ids(label_ids):
  """Maps Cityscapes label ids to train ids (255 for ignored and unknown ids)."""
  table = np.full([256], 255, np.int32)
  for label_id, train_id in _CITYSCAPES_TRAIN_IDS.items():
    table[label_id] = train_id
  ids = tf.cast(label_ids, tf.int32)
  return tf.where((ids >= 0) & (ids < 256), tf.gather(table, tf.clip_by_value(ids, 0, 255)),
                  255)


def _cityscapes_semantic(example):
  return {"image": decode_image(example["image_left"]),
          "semantic": cityscapes_train_ids(_decode_label_png(example["segmentation_label"]))}


def _ade20k_semantic(example):
  # scene_parse150 annotations: 0 = "other" (ignored), 1..150 the classes.
  label = _decode_label_png(example["annotation"])
  return {"image": decode_image(example["image"]),
          "semantic": tf.where(label == 0, 255, label - 1)}


def _coco_panoptic(example):
  """deeplab2's COCO layout: semantic 1..133 (0 void), label divisor 256.

  TFDS' `coco/2017_panoptic` stores the PNG segment ids (R + 256 G + 256^2 B) and, per
  segment, its id, a 0-based class label in category-id order (deeplab2's contiguous
  ids minus one) and the crowd flag. Thing segments (the first 80 classes) get
  instance ids 1, 2, ... in segment order; crowd regions instance 0.
  """
  rgb = tf.cast(decode_image(example["panoptic_image"]), tf.int32)
  segment_ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
  objects = example["panoptic_objects"]
  ids = tf.cast(objects["id"], tf.int32)
  semantic = tf.cast(objects["label"], tf.int32) + 1
  is_thing = (semantic <= 80) & ~tf.cast(objects["is_crowd"], tf.bool)
  instance = tf.cumsum(tf.cast(is_thing, tf.int32)) * tf.cast(is_thing, tf.int32)
  panoptic_of_segment = semantic * 256 + instance
  # Look each pixel's segment id up among the segments: sorted ids plus a sentinel
  # larger than any id, so searchsorted always lands on a valid slot.
  order = tf.argsort(ids)
  sorted_ids = tf.concat([tf.gather(ids, order), [np.iinfo(np.int32).max]], axis=0)
  values = tf.concat([tf.gather(panoptic_of_segment, order), [0]], axis=0)
  flat = tf.reshape(segment_ids, [-1])
  position = tf.searchsorted(sorted_ids, flat)
  match = tf.equal(tf.gather(sorted_ids, position), flat)
  # Pixels of no listed segment (id 0 in COCO's PNGs) are void: semantic 0.
  panoptic = tf.reshape(tf.where(match, tf.gather(values, position), 0),
                        tf.shape(segment_ids))
  return {"image": decode_image(example["image"]), "panoptic": panoptic}


TFDS_DECODERS = {
    "classification": {"imagenet2012": _imagenet_classification,
                       "tfvision_shapes": _shapes_classification},
    "semantic": {"cityscapes": _cityscapes_semantic,
                 "scene_parse150": _ade20k_semantic,
                 "tfvision_shapes": _shapes_semantic},
    "panoptic": {"coco/2017_panoptic": _coco_panoptic,
                 "tfvision_shapes": _shapes_panoptic},
}


# --- TFRecords --------------------------------------------------------------------------

def _parse(serialized, features):
  return tf.io.parse_single_example(serialized, features)


def _tfrecord_classification(serialized):
  example = _parse(serialized, {
      "image/encoded": tf.io.FixedLenFeature((), tf.string),
      "image/class/label": tf.io.FixedLenFeature((), tf.int64)})
  return {"image": decode_image(example["image/encoded"]),
          "label": tf.cast(example["image/class/label"], tf.int32)}


def _tfrecord_semantic(serialized):
  example = _parse(serialized, {
      "image/encoded": tf.io.FixedLenFeature((), tf.string),
      "image/segmentation/class/encoded": tf.io.FixedLenFeature((), tf.string)})
  return {"image": decode_image(example["image/encoded"]),
          "semantic": _decode_label_png(example["image/segmentation/class/encoded"])}


def _tfrecord_panoptic(serialized):
  example = _parse(serialized, {
      "image/encoded": tf.io.FixedLenFeature((), tf.string),
      "image/segmentation/class/encoded": tf.io.FixedLenFeature((), tf.string),
      "image/segmentation/class/format": tf.io.FixedLenFeature((), tf.string, "raw")})
  image = decode_image(example["image/encoded"])
  label = example["image/segmentation/class/encoded"]

  def raw():
    # deeplab2's `build_*_data.py` write the int32 panoptic map's bytes.
    return tf.reshape(tf.io.decode_raw(label, tf.int32), tf.shape(image)[:2])

  panoptic = tf.cond(tf.equal(example["image/segmentation/class/format"], "raw"), raw,
                     lambda: _decode_label_png(label))
  return {"image": image, "panoptic": panoptic}


TFRECORD_DECODERS = {"classification": _tfrecord_classification,
                     "semantic": _tfrecord_semantic,
                     "panoptic": _tfrecord_panoptic}


def tfds_decoder_names(kind):
  """The TFDS names with a decoder for `kind` (builder names match any config)."""
  return sorted(TFDS_DECODERS[kind])


def get_decoder(kind, tfds_name="", key="tfds_name"):
  """The decoder function of a task kind and data source.

  Args:
    kind: "classification", "semantic" or "panoptic".
    tfds_name: a TFDS name, or "" for TFRecords.
    key: the config key holding `tfds_name`, named in the error.

  Raises:
    ValueError: an unknown kind, or a TFDS name without a decoder for that kind.
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, received kind={kind!r}")
  if not tfds_name:
    return TFRECORD_DECODERS[kind]
  table = TFDS_DECODERS[kind]
  if tfds_name in table:
    return table[tfds_name]
  builder = tfds_name.split("/")[0].split(":")[0]
  if builder in table:
    return table[builder]
  raise ValueError(f"no {kind} decoder for the TFDS dataset, received {key}={tfds_name!r}; "
                   f"datasets with a {kind} decoder: {tfds_decoder_names(kind)}")
