"""Models to export: a registry model restored from a Model Garden checkpoint, or a file.

A Model Garden `model_dir` holds `tf.train.Checkpoint` files whose model is stored under
the item `model` (Model Garden's trainer: `tf.train.Checkpoint(model=..., optimizer=...)`;
`official.core.export_base.export` reads it the same way). `restore_checkpoint` reads
only the model, so optimizer slots and step counters in the checkpoint are fine, but
every model variable must be found there: a checkpoint of another architecture or width
is an error, not a silent partial restore.
"""
import json
from typing import Mapping, Optional

import tensorflow as tf
import tf_keras

from tfvision.models import get_preset


def checkpoint_path(checkpoint: str) -> str:
  """The checkpoint prefix of a file prefix or of a directory's latest checkpoint."""
  if not isinstance(checkpoint, str) or not checkpoint:
    raise ValueError(f"checkpoint must be a checkpoint prefix or a model_dir, received "
                     f"checkpoint={checkpoint!r}")
  if tf.io.gfile.isdir(checkpoint):
    latest = tf.train.latest_checkpoint(checkpoint)
    if latest is None:
      raise ValueError(f"no checkpoint in the directory, received checkpoint={checkpoint!r}")
    return latest
  if not tf.io.gfile.exists(checkpoint + ".index"):
    raise ValueError(f"no checkpoint at this prefix (no {checkpoint}.index), received "
                     f"checkpoint={checkpoint!r}")
  return checkpoint


def restore_checkpoint(model, checkpoint: str, item: str = "model") -> str:
  """Restores `model`'s variables from a tf.train.Checkpoint; returns the prefix read.

  Args:
    model: a built tf_keras model.
    checkpoint: checkpoint prefix, or a directory (its latest checkpoint is used).
    item: the name the model was saved under (`tf.train.Checkpoint(model=model)`).
  """
  path = checkpoint_path(checkpoint)
  keys = {name for name, _ in tf.train.list_variables(path)}
  if not any(key.startswith(f"{item}/") for key in keys):
    raise ValueError(f"the checkpoint holds no '{item}' item (items: "
                     f"{sorted({k.split('/')[0] for k in keys})}), received "
                     f"checkpoint={checkpoint!r}")
  # Object-based checkpoints store each variable once; optimizer slots hang off them.
  stored = sum(1 for key in keys if key.startswith(f"{item}/") and
               key.endswith("/.ATTRIBUTES/VARIABLE_VALUE") and "/.OPTIMIZER_SLOT/" not in key)
  status = None
  try:
    status = tf.train.Checkpoint(**{item: model}).read(path)
    status.assert_existing_objects_matched()
    if stored != len(model.variables):
      raise ValueError(f"the checkpoint's model has {stored} variables, this model "
                       f"{len(model.variables)}: another architecture or configuration")
  except (AssertionError, ValueError) as error:
    if status is not None:
      status.expect_partial()  # no warnings about the values we did not use
    detail = str(error)
    detail = detail if len(detail) <= 400 else detail[:400] + " ..."
    raise ValueError(f"the checkpoint does not match the model ({detail}), received "
                     f"checkpoint={checkpoint!r}") from error
  status.expect_partial()
  return path


def parse_model_kwargs(model_kwargs) -> dict:
  """A dict, a JSON object string or None -> dict."""
  if model_kwargs is None:
    return {}
  if isinstance(model_kwargs, Mapping):
    return dict(model_kwargs)
  try:
    parsed = json.loads(model_kwargs)
  except (TypeError, json.JSONDecodeError) as error:
    raise ValueError(f"model_kwargs must be a JSON object, received "
                     f"model_kwargs={model_kwargs!r}") from error
  if not isinstance(parsed, dict):
    raise ValueError(f"model_kwargs must be a JSON object, received "
                     f"model_kwargs={model_kwargs!r}")
  return parsed


def build_model(name: str, model_kwargs=None, tiny: bool = False):
  """Builds the registry model `name` (tiny configuration when `tiny`)."""
  entry = get_preset(name)
  kwargs = parse_model_kwargs(model_kwargs)
  return entry.build_tiny(**kwargs) if tiny else entry.build(**kwargs)


def load_model(name: Optional[str] = None, *, model_kwargs=None,
               checkpoint: Optional[str] = None, keras_file: Optional[str] = None,
               tiny: bool = False, allow_random_weights: bool = False):
  """The model to export: registry `name` + `checkpoint`, or a saved `keras_file`.

  Args:
    name: registry name (tfvision.models.list_models()).
    model_kwargs: constructor overrides (dict or JSON), e.g. {"num_classes": 10}; they
      must match the checkpoint's model.
    checkpoint: Model Garden model_dir or checkpoint prefix (item `model`).
    keras_file: a `.keras` / `.h5` file or Keras SavedModel directory instead of `name`.
    tiny: build the registry entry's tiny configuration.
    allow_random_weights: export freshly initialised weights (smoke tests) when no
      checkpoint is given.
  """
  if keras_file is not None:
    if name is not None or checkpoint is not None:
      raise ValueError(f"keras_file holds its own architecture and weights; pass either "
                       f"keras_file or name + checkpoint, received name={name!r}, "
                       f"checkpoint={checkpoint!r}")
    if not tf.io.gfile.exists(keras_file):
      raise ValueError(f"no such file, received keras_file={keras_file!r}")
    return tf_keras.models.load_model(keras_file, compile=False)
  if name is None:
    raise ValueError("pass a registry model name (with a checkpoint) or a keras_file, "
                     "received name=None")
  model = build_model(name, model_kwargs, tiny)
  if checkpoint is not None:
    restore_checkpoint(model, checkpoint)
  elif not allow_random_weights:
    raise ValueError("no weights to export: pass checkpoint (a Model Garden model_dir) or "
                     "allow random weights explicitly, received checkpoint=None")
  return model
