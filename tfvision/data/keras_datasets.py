"""`tf.data` pipelines of the built-in dataset for `model.fit` (the Keras path).

    import tensorflow as tf, tf_keras, tfvision
    from tfvision.data.keras_datasets import shapes_dataset
    from tfvision.losses.panoptic import PanopticDeepLabLoss

    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
      model = tfvision.models.create_model("panoptic_deeplab_swidernet_0.25_0.25_0.75",
                                           num_classes=6)
      model.compile(tf_keras.optimizers.Adam(1e-3), loss=PanopticDeepLabLoss())
    model.fit(shapes_dataset("panoptic", "train", batch_size=8), epochs=3,
              steps_per_epoch=100,
              callbacks=[tf_keras.callbacks.BackupAndRestore("/tmp/backup")])

`shapes_dataset(kind, split)` yields `(pixels, labels)` batches, decoded and parsed by
the same code as the Model Garden tasks (`tfvision.data.decoders`,
`tfvision.data.dense_parsers`); labels are the class id ("classification"), the
semantic map ("semantic") or the Panoptic-DeepLab targets dict ("panoptic").
"""
import tensorflow as tf
import tensorflow_datasets as tfds

from tfvision.data import decoders
from tfvision.data import dense_parsers
from tfvision.data import shapes

KINDS = decoders.KINDS


def shapes_dataset(kind, split="train", size=64, batch_size=8, data_dir=None,
                   is_training=None, shuffle_buffer=1024, repeat=None, seed=None,
                   sigma=3.0, config=None, **parser_kwargs):
  """Batches of the built-in `tfvision_shapes` dataset for `model.fit`.

  Args:
    kind: "classification", "semantic" or "panoptic".
    split: "train" or "validation".
    size: image side: 64, 96 or 128 (the dataset's configurations).
    batch_size: global batch size (a distribution strategy splits it).
    data_dir: TFDS data directory (prepared on first use).
    is_training: shuffle + augment; defaults to split == "train".
    shuffle_buffer: shuffle buffer of the training split.
    repeat: repeat forever (default: when training).
    seed: shuffle seed.
    sigma: center Gaussian sigma of the panoptic targets.
    config: the dataset configuration ("s64", "s96", "s128", "tiny"); default
      f"s{size}". Images are resized / cropped to `size` when it differs.
    **parser_kwargs: other `PanopticParser` / `SemanticParser` arguments.

  Returns:
    A dataset of (float32 [B, size, size, 3] pixels in [0, 255], labels).
  """
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, received kind={kind!r}")
  name = f"tfvision_shapes/{config or f's{size}'}"
  is_training = split == "train" if is_training is None else is_training
  builder = tfds.builder(name, data_dir=data_dir)
  builder.download_and_prepare()
  dataset = builder.as_dataset(split=split, shuffle_files=is_training)
  decoder = decoders.get_decoder(kind, name)
  if kind == "classification":
    def parse(example):
      decoded = decoder(example)
      image = tf.image.resize(tf.cast(decoded["image"], tf.float32), (size, size))
      return image, decoded["label"]
  elif kind == "semantic":
    parser = dense_parsers.SemanticParser((size, size), shapes.IGNORE_LABEL, is_training,
                                          **parser_kwargs)

    def parse(example):
      image, labels = parser(decoder(example))
      return image, labels["semantic"]
  else:
    parser_kwargs.setdefault("small_instance_area", 0)
    parser = dense_parsers.PanopticParser(
        (size, size), shapes.NUM_CLASSES, shapes.THING_IDS, shapes.LABEL_DIVISOR,
        shapes.IGNORE_LABEL, is_training, sigma=sigma, **parser_kwargs)

    def parse(example):
      image, labels = parser(decoder(example))
      return image, {key: labels[key] for key in (
          "semantic", "semantic_weights", "center", "center_weights", "offsets",
          "offset_weights")}
  if is_training:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed)
  if repeat if repeat is not None else is_training:
    dataset = dataset.repeat()
  dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.batch(batch_size, drop_remainder=is_training).prefetch(tf.data.AUTOTUNE)
