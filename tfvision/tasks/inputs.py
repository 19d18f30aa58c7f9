"""The input pipeline shared by the tfvision tasks.

Model Garden's `InputReader` reads files or TFDS (sharding per worker, interleave,
shuffle, batching, prefetch); decoding and parsing run in its `sample_fn` slot through
`tfvision.data.robust.map_skipping_errors`, so a corrupt example is dropped and
counted. Every element comes out as `(pixels, labels)` with `labels` a dict holding
"skipped_examples" (int64, per example: how many were dropped just before it), which
the tasks add to their `skipped_examples` metric.
"""
from official.common import dataset_fn as dataset_fn_lib
from official.vision.dataloaders import input_reader_factory

from tfvision.data import decoders
from tfvision.data import robust


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

  reader = input_reader_factory.input_reader_generator(
      params, dataset_fn=dataset_fn_lib.pick_dataset_fn(params.file_type),
      sample_fn=sample_fn, postprocess_fn=postprocess_fn)
  return reader.read(input_context=input_context)
