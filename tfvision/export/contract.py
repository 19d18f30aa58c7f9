"""The output contract every exported model follows, and the checks of export arguments.

The exporter knows nothing about families: it only reads a model's *task* and the
structure of its outputs. Models take float32 pixels in [0, 255], NHWC, and normalise
internally (DESIGN.md, "Input convention"). Their raw outputs are:

- classification: a [B, num_classes] tensor of logits (or a dict holding "logits");
- semantic: a dict holding "semantic_logits" [B, h, w, num_classes] (a bare 4-D tensor
  is accepted too); h, w may be smaller than the input (any stride): the exporter
  resizes to the input image's size, once, with aligned corners (deeplab2's and the
  models' own convention; offsets rescaled by (out - 1) / (in - 1));
- panoptic: a dict holding "semantic_logits" [B, h, w, num_classes], "center_heatmap"
  [B, h, w, 1] (or [B, h, w]) and "offsets" [B, h, w, 2] ((dy, dx) in pixels of the
  h x w grid, pointing from each pixel to its instance centre), all at one resolution.
  tfvision's `PanopticDeepLab` (tfvision/models/panoptic_deeplab.py) returns exactly
  these, float32 at the input size. The panoptic post-processing (default: the one of
  `tfvision.models.panoptic_inference.PanopticInference`, i.e.
  `tfvision.ops.panoptic_postprocess.PanopticDeepLabPostProcessor` with a dataset's
  settings) turns them into maps (see `PanopticPostprocess`).

Other keys in a model's output dict are ignored by the exporter.
"""
import numbers
from typing import Callable, Dict, Mapping, Optional, Tuple

import tensorflow as tf

TASKS = ("classification", "semantic", "panoptic")

LOGITS = "logits"
SEMANTIC_LOGITS = "semantic_logits"
CENTER_HEATMAP = "center_heatmap"
OFFSETS = "offsets"
SEMANTIC_MAP = "semantic_map"
INSTANCE_MAP = "instance_map"
PANOPTIC_MAP = "panoptic_map"

# The raw model outputs of each task (what TFLite exports and what `verify` compares).
RAW_OUTPUTS = {
    "classification": (LOGITS,),
    "semantic": (SEMANTIC_LOGITS,),
    "panoptic": (SEMANTIC_LOGITS, CENTER_HEATMAP, OFFSETS),
}
# Post-processing outputs (keys of tfvision.models.panoptic_inference.OUTPUT_KEYS, the
# keys `PanopticDeepLabPostProcessor` returns) -> the serving output names.
POSTPROCESS_OUTPUTS = {"semantic": SEMANTIC_MAP, "instance": INSTANCE_MAP,
                       "panoptic": PANOPTIC_MAP}

# A panoptic post-processing function (`PanopticDeepLabPostProcessor` is one):
#   postprocess_fn({"semantic_logits": [B, H, W, C] float32,
#                   "center_heatmap": [B, H, W, 1] float32,
#                   "offsets": [B, H, W, 2] float32})
#   -> {"semantic": [B, H, W] int, "instance": [B, H, W] int,
#       "panoptic": [B, H, W] int (semantic * label_divisor + instance)}
# It must be traceable TensorFlow (it is saved into the SavedModel).
PanopticPostprocess = Callable[[Mapping[str, tf.Tensor]], Mapping[str, tf.Tensor]]


def check_task(task):
  """Returns `task` if it is one of TASKS (None passes through)."""
  if task is not None and task not in TASKS:
    raise ValueError(f"task must be one of {list(TASKS)}, received task={task!r}")
  return task


def infer_task(outputs):
  """Reads the task from the structure of a model's outputs (tensors or specs).

  Args:
    outputs: what the model returns (a tensor or a dict), or its tf.TensorSpec twin.

  Returns:
    "classification", "semantic" or "panoptic".
  """
  if isinstance(outputs, Mapping):
    keys = set(outputs)
    if {SEMANTIC_LOGITS, CENTER_HEATMAP, OFFSETS} <= keys:
      return "panoptic"
    if SEMANTIC_LOGITS in keys:
      return "semantic"
    if LOGITS in keys:
      return "classification"
    raise ValueError(
        "model outputs follow no export contract (need 'logits', 'semantic_logits' or "
        "'semantic_logits' + 'center_heatmap' + 'offsets'), received output "
        f"keys={sorted(keys)!r}")
  rank = outputs.shape.rank
  if rank == 2:
    return "classification"
  if rank == 4:
    return "semantic"
  raise ValueError(
      "a model returning one tensor must return [B, num_classes] logits or "
      f"[B, H, W, num_classes] semantic logits, received output shape={outputs.shape}")


def raw_outputs(outputs, task) -> Dict[str, tf.Tensor]:
  """The task's raw outputs as a dict of float32 tensors (center heatmap [B, h, w, 1]).

  Args:
    outputs: a model's outputs (tensor or dict).
    task: one of TASKS.
  """
  if not isinstance(outputs, Mapping):
    key = LOGITS if task == "classification" else SEMANTIC_LOGITS
    if task == "panoptic":
      raise ValueError("a panoptic model must return a dict with 'semantic_logits', "
                       "'center_heatmap' and 'offsets', received a single tensor of "
                       f"shape={outputs.shape}")
    outputs = {key: outputs}
  missing = [k for k in RAW_OUTPUTS[task] if k not in outputs]
  if missing:
    raise ValueError(f"a {task} model must return {list(RAW_OUTPUTS[task])}; missing "
                     f"{missing}, received output keys={sorted(outputs)!r}")
  result = {k: tf.cast(outputs[k], tf.float32) for k in RAW_OUTPUTS[task]}
  expected_rank = {LOGITS: 2, SEMANTIC_LOGITS: 4, OFFSETS: 4}
  for key, rank in expected_rank.items():
    if key in result and result[key].shape.rank is not None and \
        result[key].shape.rank != rank:
      raise ValueError(f"{key} must have rank {rank}, received {key} "
                       f"shape={result[key].shape}")
  if CENTER_HEATMAP in result and result[CENTER_HEATMAP].shape.rank == 3:
    result[CENTER_HEATMAP] = result[CENTER_HEATMAP][..., None]
  if OFFSETS in result and result[OFFSETS].shape[-1] not in (None, 2):
    raise ValueError(f"offsets must have 2 channels (dy, dx), received offsets "
                     f"shape={result[OFFSETS].shape}")
  return result


def prediction_grid_view(model):
  """The model with its last upsampling of dense predictions removed, when it has one.

  tfvision's dense models end by upsampling their stride-4 predictions to the input
  size (`ResizeToMatch`, corners aligned). Serving restores predictions to each
  image's original size, so it takes them before that upsampling and resizes once
  (`restore_prediction`): at the input size that is exactly the model's own output, at
  another size one resize instead of two. Other models are returned unchanged.
  """
  from tfvision.layers.resize import ResizeToMatch  # pylint: disable=import-outside-toplevel
  if not getattr(model, "_is_graph_network", False):
    return model

  def _before_upsampling(tensor):
    layer = tensor._keras_history.layer  # pylint: disable=protected-access
    return layer.input[0] if isinstance(layer, ResizeToMatch) else tensor

  outputs = tf.nest.map_structure(_before_upsampling, model.output)
  if all(a is b for a, b in zip(tf.nest.flatten(outputs), tf.nest.flatten(model.output))):
    return model
  import tf_keras  # pylint: disable=import-outside-toplevel
  return tf_keras.Model(model.inputs, outputs, name=f"{model.name}_prediction_grid")


def restore_prediction(value, size, offsets=False):
  """Resizes one [h, w, C] prediction to `size` (H, W), corners aligned (the models' own
  upsampling); offsets are rescaled to the new grid first, as `ResizeToMatch` does."""
  from tfvision.layers.resize import rescale_offsets, resize_align_corners  # pylint: disable=import-outside-toplevel
  value = value[None]
  if offsets:
    value = rescale_offsets(value, tf.unstack(tf.shape(value)[1:3]), tf.unstack(size))
  return resize_align_corners(value, size)[0]


def normalize_input_size(input_size) -> Optional[Tuple[int, int]]:
  """None, an int side or (height, width) -> None or (height, width)."""
  if input_size is None:
    return None
  if isinstance(input_size, numbers.Integral) and not isinstance(input_size, bool):
    input_size = (input_size, input_size)
  try:
    height, width = input_size
  except (TypeError, ValueError):
    raise ValueError(f"input_size must be an int or (height, width), received "
                     f"input_size={input_size!r}") from None
  for side in (height, width):
    if not isinstance(side, numbers.Integral) or isinstance(side, bool) or side < 1:
      raise ValueError(f"input_size must hold positive integers, received "
                       f"input_size={input_size!r}")
  return int(height), int(width)


def model_input_size(model) -> Optional[Tuple[int, int]]:
  """The fixed (height, width) a Keras model was built for, or None when it takes any."""
  shape = getattr(model, "input_shape", None)
  if isinstance(shape, list):  # several inputs: not an image model we can export
    raise ValueError(f"the exporter needs a model with one image input, received "
                     f"model input_shape={shape!r}")
  if shape is None or len(shape) != 4:
    return None
  if shape[-1] not in (None, 3):
    raise ValueError(f"the exporter needs RGB input, received model "
                     f"input_shape={shape!r}")
  height, width = shape[1], shape[2]
  if height is None or width is None:
    return None
  return int(height), int(width)


def probe_model(model, input_size=None, require_size=False, name="input_size"):
  """Traces the model once and returns (input_size, task-independent output specs).

  Checks that the model can take `input_size` (None = any size) and turns a failure
  deep inside TensorFlow into a ValueError naming the argument.

  Args:
    model: a tf_keras model taking [B, H, W, 3] float32 pixels.
    input_size: None, int or (height, width).
    require_size: raise when neither `input_size` nor the model fixes the size (TFLite
      needs a fixed size).
    name: the argument's name in error messages.

  Returns:
    (input_size or None, outputs as a structure of tf.TensorSpec).
  """
  size = normalize_input_size(input_size)
  fixed = model_input_size(model)
  if fixed is not None:
    if size is not None and size != fixed:
      raise ValueError(f"the model was built for input size {fixed}; it cannot take "
                       f"{name}={input_size!r}")
    size = fixed
  if size is None and require_size:
    raise ValueError(f"a fixed input size is needed here (the model takes any size): "
                     f"pass {name}, received {name}=None")
  shape = [1, size[0], size[1], 3] if size else [None, None, None, 3]
  traced = tf.function(lambda images: model(images, training=False))
  try:
    concrete = traced.get_concrete_function(tf.TensorSpec(shape, tf.float32))
  except (ValueError, TypeError, tf.errors.OpError) as error:
    what = f"{name}={input_size!r}" if size else f"{name}=None (any size)"
    raise ValueError(f"the model cannot take {what}: {error}") from error
  specs = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype),
                                concrete.structured_outputs)
  return size, specs
