"""The input pipeline shared by the tfvision tasks.

Model Garden's `InputReader` reads files or TFDS (sharding per worker, interleave,
shuffle, batching, prefetch); decoding and parsing run in its `sample_fn` slot through
`tfvision.data.robust.map_skipping_errors`, so a corrupt example is dropped and
counted. Every element comes out as `(pixels, labels)` with `labels` a dict holding
"skipped_examples" (int64, per example: how many were dropped just before it), which
the tasks add to their `skipped_examples` metric.

TFDS training reads repeat the file list and interleave `cycle_length` streams of it;
Model Garden passes `cycle_length=None`, which tf.data turns into the number of CPU cores.
With fewer files than that, several streams read the same file in step and every example
comes out that many times in a row (twice on 2 cores, 16 times on 16: the order depended
on the machine). `interleave_cycle_length` caps the cycle at the number of files each
input pipeline reads, and at TFDS's own default of 16; an explicit `cycle_length` in the
data config is kept.

Padded evaluation (`pad_to_global_batch` in the data config): TPUs need every batch at
its static size, and Model Garden's reader either drops the last partial batch (losing
examples) or emits it short. With padding, each input pipeline appends empty examples
(zero pixels, zero labels, `labels["valid_example"]` 0.0; real examples get 1.0) up to
a multiple of its share of the global batch, so every step is whole and no example is
lost; the tasks weight their metrics by "valid_example" (the dense tasks' padded
examples also have "valid_size" (0, 0)). The count is exact when one input pipeline
reads the whole split (one TPU host) or when every pipeline's shard needs the same
number of steps.
"""
import tensorflow as tf
from official.common import dataset_fn as dataset_fn_lib
from official.vision.dataloaders import input_reader_factory

from tfvision.data import decoders
from tfvision.data import robust


# TFDS's default interleave cycle (tensorflow_datasets/core/reader.py).
TFDS_CYCLE_LENGTH = 16


def interleave_cycle_length(params, input_context=None):
  """The interleave cycle of a TFDS read: the data config's, else min(files, 16).

  Args:
    params: the DataConfig.
    input_context: the distribution input context (files are sharded per pipeline).
  Returns:
    An int, or the config's `cycle_length` (None for non-TFDS or evaluation reads).
  """
  if params.cycle_length is not None or not params.tfds_name or not params.is_training:
    return params.cycle_length
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  builder = tfds.builder(params.tfds_name, data_dir=params.tfds_data_dir or None)
  if not builder.info.splits:
    return params.cycle_length
  files = len(builder.info.splits[params.tfds_split].file_instructions)
  pipelines = input_context.num_input_pipelines if input_context else 1
  # Model Garden shards files per pipeline, or the examples when there are fewer files.
  per_pipeline = files // pipelines if files >= pipelines else files
  return max(1, min(TFDS_CYCLE_LENGTH, per_pipeline))


def pipeline_batch(global_batch_size, input_context=None, key="global_batch_size"):
  """The examples one input pipeline contributes to each global batch."""
  pipelines = input_context.num_input_pipelines if input_context else 1
  if global_batch_size <= 0 or global_batch_size % pipelines:
    raise ValueError(f"{key} must be a positive multiple of the {pipelines} input "
                     f"pipelines, received {key}={global_batch_size!r}")
  return global_batch_size // pipelines


def pad_to_whole_batches(dataset, block):
  """Appends empty examples to `(pixels, labels)` elements up to a multiple of `block`.

  Real examples get `labels["valid_example"]` 1.0, the padding 0.0 (and zeros
  everywhere else). The padding holds `block - 1` copies; grouping by `block` with
  `drop_remainder` keeps exactly ceil(n / block) groups, the last one completed by
  padding, and drops the unused copies.

  Args:
    dataset: unbatched `(pixels, labels dict)` elements of fully defined shapes.
    block: the group size (an input pipeline's share of the global batch).
  """
  def mark(pixels, labels):
    return pixels, dict(labels, valid_example=tf.constant(1.0, tf.float32))

  real = dataset.map(mark)
  for spec in tf.nest.flatten(real.element_spec):
    if not spec.shape.is_fully_defined():
      raise ValueError(f"padded evaluation needs examples of static shape, received an "
                       f"element of shape={spec.shape}")
  empty = tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype),
                                real.element_spec)
  padding = tf.data.Dataset.from_tensors(empty).repeat(block - 1)
  return real.concatenate(padding).batch(block, drop_remainder=True).unbatch()


def _attach_skipped(value, skipped):
  pixels, labels = value
  labels = dict(labels) if isinstance(labels, dict) else {"label": labels}
  labels["skipped_examples"] = skipped
  return pixels, labels


def build_dataset(params, kind, parse_fn, input_context=None, postprocess_fn=None,
                  config_key="task.train_data"):
  """A batched dataset of `(pixels, labels)` from a Model Garden `DataConfig`.

  Args:
    params: the DataConfig (tfds_name or input_path, batch size, shuffle, ...).
    kind: "classification", "semantic" or "panoptic" (picks the decoder).
    parse_fn: decoded example dict -> (pixels, labels).
    input_context: the distribution input context.
    postprocess_fn: applied to batches (e.g. mixup).
    config_key: the config path named in errors.
  """
  decoder = decoders.get_decoder(kind, params.tfds_name, key=f"{config_key}.tfds_name")
  if not params.tfds_name and not params.input_path:
    raise ValueError(f"{config_key} needs tfds_name or input_path, received "
                     f"{config_key}.tfds_name='' and {config_key}.input_path=''")

  def decode_and_parse(raw):
    return parse_fn(decoder(raw))

  pad = bool(getattr(params, "pad_to_global_batch", False)) and not params.is_training
  if pad:
    block = pipeline_batch(params.global_batch_size, input_context,
                           key=f"{config_key}.global_batch_size")
    # Whole batches only: with the padding, nothing is dropped.
    params = params.replace(drop_remainder=True)

  def sample_fn(dataset):
    dataset = robust.map_skipping_errors(dataset, decode_and_parse)
    dataset = dataset.map(_attach_skipped)
    return pad_to_whole_batches(dataset, block) if pad else dataset

  cycle_length = interleave_cycle_length(params, input_context)
  if cycle_length != params.cycle_length:
    params = params.replace(cycle_length=cycle_length)
  reader = input_reader_factory.input_reader_generator(
      params, dataset_fn=dataset_fn_lib.pick_dataset_fn(params.file_type),
      sample_fn=sample_fn, postprocess_fn=postprocess_fn)
  return reader.read(input_context=input_context)
