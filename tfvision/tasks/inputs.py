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
"""
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

  def sample_fn(dataset):
    dataset = robust.map_skipping_errors(dataset, decode_and_parse)
    return dataset.map(_attach_skipped)

  cycle_length = interleave_cycle_length(params, input_context)
  if cycle_length != params.cycle_length:
    params = params.replace(cycle_length=cycle_length)
  reader = input_reader_factory.input_reader_generator(
      params, dataset_fn=dataset_fn_lib.pick_dataset_fn(params.file_type),
      sample_fn=sample_fn, postprocess_fn=postprocess_fn)
  return reader.read(input_context=input_context)
