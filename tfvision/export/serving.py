"""SavedModel export with `image_tensor`, `image_bytes` and `tf_example` serving signatures.

    from tfvision.export import export_saved_model
    export_saved_model(model, "/tmp/sm", input_size=224)
    loaded = tf.saved_model.load("/tmp/sm")
    loaded.signatures["image_bytes"](inputs=tf.constant([jpeg_bytes]))["probs"]

Every signature takes one argument, `inputs` (Model Garden's convention):

- `image_tensor`: uint8 [B, H, W, 3];
- `image_bytes`: string [B] of encoded JPEG / PNG / GIF / BMP / WebP images; grayscale
  becomes RGB, an alpha channel is dropped, an animation gives its first frame;
- `tf_example`: string [B] of serialized tf.train.Example with the encoded image under
  "image/encoded" (Model Garden's key).

Images are resized (bilinear, aspect ratio not kept) to the export `input_size` when one
is given; without one, the model runs at each batch's own size (then the images of one
`image_bytes` / `tf_example` request must share their size). Outputs:

- classification: `logits`, `probs` (softmax) [B, C]; `top_k_classes` int32 and
  `top_k_probs` [B, k];
- semantic: `semantic_logits`, `semantic_probs` [B, H, W, C], `semantic_map` int32
  [B, H, W] (argmax of the resized logits), `image_size` int32 [B, 2];
- panoptic: `semantic_map`, `instance_map`, `panoptic_map` int32 [B, H, W],
  `center_heatmap` [B, H, W], `offsets` [B, H, W, 2], `semantic_probs` [B, H, W, C],
  `image_size` int32 [B, 2]. The maps come from `PanopticInference`'s post-processor
  (`PanopticDeepLabPostProcessor`, tfvision/models/panoptic_inference.py) with the
  settings of the export's `dataset` ("cityscapes", "coco", "shapes"); `instance_map` is
  its class-agnostic instance index (0 for stuff), `panoptic_map` is
  `semantic * label_divisor + instance-within-class`.

Test-time augmentation (semantic and panoptic): with `eval_scales` other than (1.0,) or
`flip=True`, the model runs at each scale (and mirrored) and the predictions are
averaged before everything below, by `tfvision.models.panoptic_inference.
multi_scale_predictions` (the same function `PanopticInference` and the evaluation
use); `semantic_logits` then holds the log of the averaged probabilities. The export
metadata records the scales, and `verify` repeats them on the Keras side.

Dense outputs are restored to each image's original size, resized once: the model's
predictions are taken before its own final upsampling (`contract.prediction_grid_view`)
and resized bilinearly, corners aligned as the models upsample, straight to the image's
size (offsets rescaled to its pixels), before the argmax and the panoptic
post-processing, as deeplab2 resizes predictions before post-processing
(`model/deeplab.py`, `_resize_predictions`). When the images of one request differ in
size, maps are padded at the bottom / right to the largest (float outputs with 0, integer
maps with -1) and `image_size` gives each image's valid (height, width).

Model Garden reuse and why not more of it: `ServingModule` subclasses
`official.vision.serving.export_base.ExportModule` (its signature dispatch and
tf.Example parsing) and the SavedModel is written by `official.core.export_base.export`.
`official.vision.serving.export_saved_model_lib` and the task modules
(`image_classification.ClassificationModule`, `semantic_segmentation.SegmentationModule`)
do not fit: they build the model from a Model Garden `ExperimentConfig`, normalise
pixels outside the model (ours normalise inside), stack decoded images (so the original
size of each image is lost) and have no panoptic path. The module also holds the model's
variables, not the Keras model object: saving a tracked tf_keras model traces every
layer's call function, which made a tiny model's export 6x slower (29 s vs 6 s).
"""
import dataclasses
import json
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras
from official.core import export_base as core_export_base
from official.vision.serving import export_base as vision_export_base

from tfvision.data.panoptic import DATASETS, PanopticDatasetInfo
from tfvision.export import contract
from tfvision.export.data import shapes_panoptic_info
from tfvision.models.panoptic_inference import (PanopticInference, check_eval_scales,
                                                 check_flip, is_augmented,
                                                 multi_scale_predictions)
from tfvision.ops.panoptic_postprocess import PanopticDeepLabPostProcessor

SIGNATURES = ("image_tensor", "image_bytes", "tf_example")
METADATA_FILE = "tfvision_export.json"
_INT_PAD = -1


def check_signatures(signatures) -> Tuple[str, ...]:
  """Validates a signature name or list of names; returns them as a tuple."""
  if isinstance(signatures, str):
    signatures = (signatures,)
  try:
    names = tuple(signatures)
  except TypeError:
    names = (signatures,)
  unknown = [name for name in names if name not in SIGNATURES]
  if unknown or not names:
    raise ValueError(f"signatures must be a non-empty list of {list(SIGNATURES)}; unknown "
                     f"{unknown}, received signatures={signatures!r}")
  if len(set(names)) != len(names):
    raise ValueError(f"signatures must not repeat a name, received signatures={signatures!r}")
  return names


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
  """uint8 [h, w, 3] from one encoded image (JPEG, PNG, GIF, BMP, WebP).

  `channels=3` makes the decoders turn grayscale into RGB and drop alpha;
  `expand_animations=False` keeps a GIF to its first frame, so the rank is always 3. A
  corrupt or unknown image raises `tf.errors.InvalidArgumentError` (e.g. "jpeg::Uncompress
  failed. Invalid JPEG data", "Unknown image file format") from the decode op: the
  serving process reports the error for that request and keeps serving.
  """
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


@dataclasses.dataclass(frozen=True)
class ServingSpec:
  """What the serving computation needs to know about the model.

  Attributes:
    task: "classification", "semantic" or "panoptic".
    input_size: (height, width) the model runs at, or None for each batch's own size.
    num_classes: classes of the logits.
    top_k: k of `top_k_classes` (classification; clipped to num_classes).
    eval_scales: test-time scales whose predictions are averaged (dense tasks).
    flip: also average the mirrored image's predictions (dense tasks).
  """
  task: str
  input_size: Optional[Tuple[int, int]]
  num_classes: int
  top_k: int = 5
  eval_scales: Tuple[float, ...] = (1.0,)
  flip: bool = False


class ServingComputation:
  """The TensorFlow computation around the model, shared by the export and `verify`.

  The same code runs traced inside the SavedModel and eagerly around the in-memory Keras
  model when verifying, so a mismatch can only come from the export itself.

  Args:
    model_fn: images [B, h, w, 3] float32 in [0, 255] -> the model's raw outputs.
    spec: a ServingSpec.
    postprocess_fn: panoptic post-processing (contract.PanopticPostprocess).
  """

  def __init__(self, model_fn: Callable, spec: ServingSpec,
               postprocess_fn: Optional[contract.PanopticPostprocess] = None):
    self.model_fn = model_fn
    self.spec = spec
    self.postprocess_fn = postprocess_fn

  # ---- inputs -------------------------------------------------------------------------
  def _resize(self, images):
    if self.spec.input_size is None:
      return images
    return tf.image.resize(images, self.spec.input_size, method="bilinear")

  def from_image_tensor(self, images):
    """Outputs for a uint8 (or float) [B, H, W, 3] batch."""
    batch = tf.shape(images)[0]
    sizes = tf.tile(tf.shape(images)[1:3][None], [batch, 1])
    return self.run(self._resize(tf.cast(images, tf.float32)), sizes)

  def from_encoded(self, encoded, decode_fn=decode_image):
    """Outputs for a string [B] batch; `decode_fn` maps one string to uint8 [h, w, 3]."""
    if self.spec.input_size is not None:
      def _decode(item):
        image = decode_fn(item)
        size = tf.shape(image)[:2]
        resized = tf.image.resize(tf.cast(image, tf.float32)[None], self.spec.input_size,
                                  method="bilinear")[0]
        return resized, size
      images, sizes = tf.map_fn(
          _decode, encoded,
          fn_output_signature=(tf.TensorSpec(list(self.spec.input_size) + [3], tf.float32),
                               tf.TensorSpec([2], tf.int32)))
      return self.run(images, sizes)

    def _decode_ragged(item):
      image = decode_fn(item)
      return tf.RaggedTensor.from_tensor(image, ragged_rank=1), tf.shape(image)[:2]
    ragged, sizes = tf.map_fn(
        _decode_ragged, encoded,
        fn_output_signature=(tf.RaggedTensorSpec([None, None, 3], tf.uint8, ragged_rank=1),
                             tf.TensorSpec([2], tf.int32)))
    same = tf.reduce_all(tf.equal(sizes, sizes[:1]))
    check = tf.debugging.Assert(same, [
        "the images of one request must share their size when the model was exported "
        "without input_size; sizes:", sizes])
    with tf.control_dependencies([check]):
      images = tf.cast(ragged.to_tensor(), tf.float32)
    return self.run(images, sizes)

  # ---- model and outputs --------------------------------------------------------------
  def run(self, images, sizes):
    """Model on float images [B, h, w, 3]; `sizes` [B, 2] are the original sizes."""
    task = self.spec.task

    def model_fn(x):
      return contract.raw_outputs(self.model_fn(x), task)

    if task == "classification":
      return self._classification(model_fn(images)[contract.LOGITS])
    raw = multi_scale_predictions(model_fn, images, self.spec.eval_scales, self.spec.flip)
    return self._dense(raw, tf.cast(sizes, tf.int32))

  def _classification(self, logits):
    probs = tf.nn.softmax(logits, axis=-1)
    k = min(self.spec.top_k, self.spec.num_classes)
    top_probs, top_classes = tf.math.top_k(probs, k=k)
    return {"logits": logits, "probs": probs, "top_k_classes": top_classes,
            "top_k_probs": top_probs}

  def _dense(self, raw, sizes):
    canvas = tf.reduce_max(sizes, axis=0)
    num_classes = self.spec.num_classes
    panoptic = self.spec.task == "panoptic"

    def _restore(args):
      outputs, size = args
      restored = {key: contract.restore_prediction(value, size, key == contract.OFFSETS)
                  for key, value in outputs.items()}
      logits = restored[contract.SEMANTIC_LOGITS]
      result = {"semantic_probs": tf.nn.softmax(logits, axis=-1)}
      if panoptic:
        maps = self.postprocess_fn({k: v[None] for k, v in restored.items()})
        missing = [k for k in contract.POSTPROCESS_OUTPUTS if k not in maps]
        if missing:
          raise ValueError(f"postprocess_fn must return {list(contract.POSTPROCESS_OUTPUTS)}, "
                           f"missing {missing}, received keys={sorted(maps)!r}")
        for key, name in contract.POSTPROCESS_OUTPUTS.items():
          result[name] = tf.cast(tf.reshape(maps[key], size), tf.int32)
        result["center_heatmap"] = restored[contract.CENTER_HEATMAP][..., 0]
        result["offsets"] = restored[contract.OFFSETS]
      else:
        result["semantic_logits"] = logits
        result["semantic_map"] = tf.argmax(logits, axis=-1, output_type=tf.int32)
      return {key: _pad(value, canvas) for key, value in result.items()}

    specs = {"semantic_probs": tf.TensorSpec([None, None, num_classes], tf.float32)}
    if panoptic:
      for name in contract.POSTPROCESS_OUTPUTS.values():
        specs[name] = tf.TensorSpec([None, None], tf.int32)
      specs["center_heatmap"] = tf.TensorSpec([None, None], tf.float32)
      specs["offsets"] = tf.TensorSpec([None, None, 2], tf.float32)
    else:
      specs["semantic_logits"] = tf.TensorSpec([None, None, num_classes], tf.float32)
      specs["semantic_map"] = tf.TensorSpec([None, None], tf.int32)
    outputs = tf.map_fn(_restore, (raw, sizes), fn_output_signature=specs)
    outputs["image_size"] = sizes
    return outputs


def _pad(value, canvas):
  """Pads [h, w, ...] at the bottom / right to `canvas` (ints with -1, floats with 0)."""
  size = tf.shape(value)[:2]
  paddings = [[0, canvas[0] - size[0]], [0, canvas[1] - size[1]]]
  paddings += [[0, 0]] * (value.shape.rank - 2)
  fill = _INT_PAD if value.dtype.is_integer else 0
  return tf.pad(value, paddings, constant_values=tf.cast(fill, value.dtype))


class _ModelVariables(tf.Module):
  """Holds a Keras model's variables and calls it, without tracking the Keras object.

  Tracking the tf_keras model would make `tf.saved_model.save` trace every layer's
  call function (slow and not needed for serving); the variables are what the
  SavedModel must hold.
  """

  def __init__(self, model):
    super().__init__(name=None)
    self.model_variables = list(model.variables)
    self._call = lambda images: model(images, training=False)

  def __call__(self, images, training=False):
    del training  # always inference
    return self._call(images)


class ServingModule(vision_export_base.ExportModule):
  """Model Garden export module serving a tfvision model (see the module docstring).

  Args:
    model: a tf_keras model following the export contract.
    spec: a ServingSpec.
    postprocess_fn: panoptic post-processing, required for the panoptic task.
    batch_size: fixed batch size of the signatures, or None.
  """

  def __init__(self, model, spec: ServingSpec, postprocess_fn=None,
               batch_size: Optional[int] = None):
    size = list(spec.input_size) if spec.input_size else [None, None]
    super().__init__(params=None, batch_size=batch_size, input_image_size=size,
                     input_type="image_tensor", num_channels=3,
                     model=_ModelVariables(contract.prediction_grid_view(model)))
    self.computation = ServingComputation(self.inference_step, spec, postprocess_fn)

  def _decode_image(self, encoded_image_bytes):
    # Model Garden's `_decode_tf_example` calls this for the "image/encoded" feature.
    return decode_image(encoded_image_bytes)

  def serve(self, images):
    return self.computation.from_image_tensor(images)

  @tf.function
  def inference_from_image_bytes(self, inputs):
    with tf.device("cpu:0"):
      return self.computation.from_encoded(inputs, decode_image)

  @tf.function
  def inference_from_tf_example(self, inputs):
    with tf.device("cpu:0"):
      return self.computation.from_encoded(inputs, self._decode_tf_example)

  def get_inference_signatures(self, function_keys):
    """Model Garden's signatures plus `serving_default` (the first one requested)."""
    signatures = super().get_inference_signatures(function_keys)
    first = next(iter(function_keys.values()))
    signatures[tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY] = signatures[first]
    return signatures


# Built-in panoptic label schemes by the model's class count, used when no `dataset` is
# given (tfvision.data.panoptic.DATASETS).
DATASETS_BY_CLASSES = {19: "cityscapes", 134: "coco"}


def panoptic_dataset_info(dataset, num_classes):
  """The PanopticDatasetInfo whose post-processing settings a panoptic export uses.

  Args:
    dataset: "cityscapes", "coco", "shapes" (the built-in tfvision_shapes scheme), a
      `tfvision.data.panoptic.PanopticDatasetInfo`, or None for the built-in scheme with
      the model's number of classes (19: cityscapes, 134: coco).
    num_classes: semantic classes of the model.
  """
  if dataset is None:
    if num_classes not in DATASETS_BY_CLASSES:
      raise ValueError(
          f"a panoptic model with {num_classes} classes matches no built-in label scheme "
          f"({DATASETS_BY_CLASSES}): pass dataset (a name out of "
          f"{sorted(DATASETS) + ['shapes']} or a PanopticDatasetInfo), received dataset=None")
    dataset = DATASETS_BY_CLASSES[num_classes]
  if isinstance(dataset, PanopticDatasetInfo):
    info = dataset
  elif dataset == "shapes":
    info = shapes_panoptic_info()
  elif dataset in DATASETS:
    info = DATASETS[dataset]
  else:
    raise ValueError(f"dataset must be one of {sorted(DATASETS) + ['shapes']} or a "
                     f"PanopticDatasetInfo, received dataset={dataset!r}")
  if info.num_classes != num_classes:
    raise ValueError(f"the model predicts {num_classes} classes but the label scheme has "
                     f"{info.num_classes}, received dataset={dataset!r}")
  return info


def resolve_postprocess(model, task, postprocess_fn=None, dataset=None, num_classes=None):
  """The panoptic post-processing function and its settings (None for other tasks).

  Without `postprocess_fn` this is the post-processor of
  `tfvision.models.panoptic_inference.PanopticInference` for `dataset` (a
  `PanopticDeepLabPostProcessor`): the exporter adds no post-processing of its own.

  Returns:
    (callable or None, JSON-able post-processor settings or None when `postprocess_fn`
    is a custom function).
  """
  if task != "panoptic":
    return None, None
  if postprocess_fn is None:
    info = panoptic_dataset_info(dataset, num_classes)
    postprocess_fn = PanopticInference(model, dataset=info).postprocessor
  elif not callable(postprocess_fn):
    raise ValueError(f"postprocess_fn must be callable (see contract.PanopticPostprocess), "
                     f"received postprocess_fn={postprocess_fn!r}")
  settings = None
  if isinstance(postprocess_fn, PanopticDeepLabPostProcessor):
    config = postprocess_fn.get_config()
    settings = {key: config[key] for key in (
        "thing_classes", "label_divisor", "void_label", "center_threshold", "nms_kernel",
        "keep_k_centers", "stuff_area_limit")}
  return postprocess_fn, settings


def postprocess_from_settings(settings):
  """The `PanopticDeepLabPostProcessor` of settings written by `resolve_postprocess`."""
  return PanopticDeepLabPostProcessor(**settings)


def serving_spec(model, *, task=None, input_size=None, top_k=5, require_size=False,
                 eval_scales=(1.0,), flip=False):
  """Checks the arguments against the model and returns a ServingSpec."""
  contract.check_task(task)
  eval_scales = check_eval_scales(eval_scales)
  check_flip(flip)
  if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
    raise ValueError(f"top_k must be a positive integer, received top_k={top_k!r}")
  size, specs = contract.probe_model(model, input_size, require_size=require_size)
  inferred = contract.infer_task(specs)
  if task is not None and task != inferred:
    raise ValueError(f"the model's outputs are those of a {inferred} model, received "
                     f"task={task!r}")
  raw = contract.raw_outputs(tf.nest.map_structure(
      lambda s: tf.zeros([d or 1 for d in s.shape], s.dtype), specs), inferred)
  key = contract.LOGITS if inferred == "classification" else contract.SEMANTIC_LOGITS
  if inferred == "classification" and is_augmented(eval_scales, flip):
    raise ValueError(f"test-time augmentation is for dense (semantic, panoptic) models, "
                     f"not a classification model; received eval_scales={eval_scales!r}, "
                     f"flip={flip!r}")
  return ServingSpec(task=inferred, input_size=size, num_classes=int(raw[key].shape[-1]),
                     top_k=top_k, eval_scales=eval_scales, flip=flip)


def export_saved_model(model, export_dir: str, *, input_size=None,
                       signatures: Sequence[str] = SIGNATURES, task: Optional[str] = None,
                       postprocess_fn=None, dataset=None, top_k: int = 5,
                       batch_size: Optional[int] = None, eval_scales=(1.0,),
                       flip: bool = False) -> str:
  """Exports a Keras model as a SavedModel with serving signatures.

  Args:
    model: tf_keras model following the export contract (tfvision/export/contract.py).
    export_dir: directory to write (created; an existing SavedModel there is replaced).
    input_size: int or (height, width) the model runs at; None runs at each batch's
      own size (models with a fixed input shape use theirs).
    signatures: names out of SIGNATURES; the first is also `serving_default`.
    task: "classification", "semantic" or "panoptic"; None reads it from the outputs.
    postprocess_fn: panoptic post-processing (contract.PanopticPostprocess); default:
      `PanopticInference`'s post-processor with `dataset`'s settings.
    dataset: panoptic label scheme of the default post-processing: "cityscapes",
      "coco", "shapes" or a PanopticDatasetInfo; None picks it by the class count.
    top_k: k of the classification `top_k_*` outputs.
    batch_size: fixed batch size of every signature, or None for any.
    eval_scales: test-time scales whose predictions are averaged (semantic and panoptic
      models; e.g. `panoptic_inference.PAPER_EVAL_SCALES`); (1.0,): no augmentation.
    flip: also average the predictions of the mirrored image.

  Returns:
    `export_dir`.
  """
  if not isinstance(model, tf_keras.Model):
    raise ValueError(f"model must be a tf_keras.Model, received model={type(model)!r}")
  names = check_signatures(signatures)
  if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
    raise ValueError(f"batch_size must be None or a positive integer, received "
                     f"batch_size={batch_size!r}")
  spec = serving_spec(model, task=task, input_size=input_size, top_k=top_k,
                      eval_scales=eval_scales, flip=flip)
  postprocess, settings = resolve_postprocess(model, spec.task, postprocess_fn, dataset,
                                              spec.num_classes)
  module = ServingModule(model, spec, postprocess, batch_size=batch_size)
  core_export_base.export(module, {name: name for name in names}, export_dir,
                          timestamped=False)
  write_metadata(export_dir, model, spec, names, settings)
  return export_dir


def write_metadata(export_dir, model, spec, signatures, postprocess_settings=None):
  """Writes what `verify` and the CLI need into assets.extra (TF Serving ignores it)."""
  extra = os.path.join(export_dir, "assets.extra")
  tf.io.gfile.makedirs(extra)
  metadata = {
      "format": "tfvision-saved-model/1",
      "task": spec.task,
      "input_size": list(spec.input_size) if spec.input_size else None,
      "num_classes": spec.num_classes,
      "top_k": spec.top_k,
      "eval_scales": list(spec.eval_scales),
      "flip": spec.flip,
      "signatures": list(signatures),
      "model_name": model.name,
      "model_class": type(model).__name__,
      # PanopticDeepLabPostProcessor arguments (None: a custom postprocess_fn).
      "panoptic_postprocess": postprocess_settings,
  }
  with tf.io.gfile.GFile(os.path.join(extra, METADATA_FILE), "w") as f:
    json.dump(metadata, f, indent=2)


def read_metadata(export_dir) -> Dict:
  """The metadata `export_saved_model` wrote, or a ValueError naming the directory."""
  path = os.path.join(export_dir, "assets.extra", METADATA_FILE)
  if not tf.io.gfile.exists(path):
    raise ValueError(f"not a tfvision SavedModel (no assets.extra/{METADATA_FILE}), "
                     f"received saved_model_dir={export_dir!r}")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)
