"""Checks that an experiment runs on a TPU slice of a given number of cores.

Model Garden's input reader (`official.core.input_reader.InputReader`) reads one
dataset per host and batches it at the per-replica size,
`InputContext.get_per_replica_batch_size(global_batch_size)`, which requires the
global batch to divide over the replicas; TPUs compile static shapes, so a batch may
not come out short (`drop_remainder`, or `pad_to_global_batch` for evaluation, which
`tfvision.tasks.inputs` pads per host); orbit requires `summary_interval` to be a
multiple of `steps_per_loop`. `check_tpu_config` checks these for one core count and
raises a ValueError naming the experiment and the key.

The `*_tpu.yaml` files document the core counts they support in a header line
`# TPU cores: 8, 16, 32` (`TPU_CORES_HEADER`); tests/test_tpu_configs.py checks every
file against it.
"""
import re

import tensorflow as tf

# Cores per TPU host (v2 / v3 / v4 boards): one input pipeline per host.
CORES_PER_HOST = 8
# The smallest slice every TPU YAML must support.
MIN_CORES = 8
TPU_CORES_HEADER = re.compile(r"^# TPU cores: (\d+(?:, \d+)*)$", re.M)

# Validation examples of the datasets the experiments evaluate on, by TFDS name and
# split or by a pattern of the TFRecord path.
VALIDATION_EXAMPLES = {
    ("imagenet2012", "validation"): 50000,
    ("coco/2017_panoptic", "validation"): 5000,
    ("scene_parse150", "test"): 2000,  # ADE20K's validation set
    ("cityscapes/semantic_segmentation", "validation"): 500,
}
VALIDATION_PATHS = ((r"(^|/)cityscapes/.*val", 500),)


def validation_examples(data):
  """The number of examples of an evaluation data config, or None when unknown."""
  if data.tfds_name:
    return VALIDATION_EXAMPLES.get((data.tfds_name, data.tfds_split))
  for pattern, count in VALIDATION_PATHS:
    if re.search(pattern, str(data.input_path)):
      return count
  return None


def supported_cores(params, candidates=(8, 16, 32, 64, 128, 256, 512, 1024)):
  """The core counts among `candidates` whose slices the experiment runs on."""
  supported = []
  for cores in candidates:
    try:
      check_tpu_config("experiment", params, cores)
    except ValueError:
      continue
    supported.append(cores)
  return supported


def header_cores(text):
  """The core counts of a YAML file's `# TPU cores: ...` line, or None."""
  match = TPU_CORES_HEADER.search(text)
  return [int(v) for v in match.group(1).split(", ")] if match else None


def check_tpu_config(name, params, cores):
  """Raises ValueError unless experiment `name` (config `params`) runs on `cores` cores.

  Args:
    name: the experiment (or YAML file) named in errors.
    params: its ExperimentConfig.
    cores: TPU cores of the slice (replicas); one input pipeline per 8 cores.
  """
  if not isinstance(cores, int) or cores < MIN_CORES or cores % CORES_PER_HOST:
    raise ValueError(f"experiment {name!r}: TPU slices have a multiple of "
                     f"{CORES_PER_HOST} cores, received cores={cores!r}")
  context = tf.distribute.InputContext(
      num_input_pipelines=cores // CORES_PER_HOST, input_pipeline_id=0,
      num_replicas_in_sync=cores)
  for key in ("train_data", "validation_data"):
    data = getattr(params.task, key)
    batch = data.global_batch_size
    path = f"task.{key}.global_batch_size"
    if batch <= 0 or batch % cores:
      raise ValueError(f"experiment {name!r}: {path}={batch!r} does not divide over "
                       f"{cores} TPU cores")
    try:
      context.get_per_replica_batch_size(batch)
    except ValueError as error:
      raise ValueError(f"experiment {name!r}: {path}={batch!r}: {error}") from None
  train = params.task.train_data
  if not train.drop_remainder:
    raise ValueError(f"experiment {name!r}: TPU training needs whole batches, received "
                     f"task.train_data.drop_remainder={train.drop_remainder!r}")
  evaluation = params.task.validation_data
  padded = bool(getattr(evaluation, "pad_to_global_batch", False))
  examples = validation_examples(evaluation)
  if not padded and (examples is None or examples % evaluation.global_batch_size):
    raise ValueError(
        f"experiment {name!r}: {examples or 'an unknown number of'} validation examples "
        f"do not fill whole global batches of {evaluation.global_batch_size}; TPUs need "
        f"task.validation_data.pad_to_global_batch=True, received "
        f"task.validation_data.pad_to_global_batch={padded!r}")
  trainer = params.trainer
  if trainer.summary_interval % trainer.steps_per_loop:
    raise ValueError(f"experiment {name!r}: trainer.summary_interval must be a multiple "
                     f"of trainer.steps_per_loop={trainer.steps_per_loop}, received "
                     f"trainer.summary_interval={trainer.summary_interval!r}")
