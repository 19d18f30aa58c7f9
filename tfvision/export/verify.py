"""`verify`: run an exported artefact against the Keras model and report how close it is.

- SavedModel: the chosen signature of the reloaded SavedModel (TensorFlow) against the
  same serving computation (`serving.ServingComputation`: decode, resize, softmax,
  argmax, restore, post-processing) run eagerly around the in-memory Keras model. Images
  are sent PNG-encoded (lossless) to `image_bytes` / `tf_example`, so every signature
  must reproduce the `image_tensor` reference.
- TFLite: the `ai_edge_litert` interpreter (XNNPACK, `num_threads`) on each image against
  the Keras model's raw outputs.

Both report the max / mean absolute error of every float output, the agreement of the
decisions (top-1 class; per-pixel argmax class; post-processed maps) and, given labels,
the metric of both sides (accuracy or mIoU in points) and its drop.
"""
import dataclasses
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from tfvision.export import contract, serving
from tfvision.export.tflite import INPUT_NAME

IGNORE_LABEL = 255


@dataclasses.dataclass
class ParityReport:
  """Exported artefact vs Keras model on the same images.

  Attributes:
    artifact: what was checked, e.g. "saved_model:image_bytes" or "tflite:int8".
    task: the model's task.
    num_images: images compared.
    max_abs_error: float output name -> max |exported - keras|.
    mean_abs_error: float output name -> mean |exported - keras|.
    reference_scale: float output name -> max |keras| (to judge errors relatively).
    agreement: decision name -> fraction of equal decisions ("top1": images with the same
      top-1 class; "semantic_map": pixels with the same class; "panoptic_map", ...).
    metrics: with labels: "keras_accuracy" / "exported_accuracy" (classification) or
      "keras_miou" / "exported_miou" (dense), in percent, and their "*_drop".
  """
  artifact: str
  task: str
  num_images: int
  max_abs_error: Dict[str, float] = dataclasses.field(default_factory=dict)
  mean_abs_error: Dict[str, float] = dataclasses.field(default_factory=dict)
  reference_scale: Dict[str, float] = dataclasses.field(default_factory=dict)
  agreement: Dict[str, float] = dataclasses.field(default_factory=dict)
  metrics: Dict[str, float] = dataclasses.field(default_factory=dict)

  def primary_error(self):
    """Max abs error of the task's main output (logits or semantic logits)."""
    key = contract.LOGITS if self.task == "classification" else contract.SEMANTIC_LOGITS
    if key in self.max_abs_error:
      return self.max_abs_error[key]
    return max(self.max_abs_error.values()) if self.max_abs_error else 0.0

  def failures(self, max_abs_error: Optional[float] = None,
               min_agreement: Optional[float] = None,
               max_metric_drop: Optional[float] = None) -> List[str]:
    """Human-readable list of the thresholds this report misses (empty: all met).

    `max_abs_error` applies to outputs whose values stay within [-1, 1] and is scaled by
    max |keras output| above that (float32 keeps ~7 significant digits), as the model
    harness does (tests/harness.py `assert_outputs_close`).
    """
    problems = []
    if max_abs_error is not None:
      for key, value in self.max_abs_error.items():
        limit = max_abs_error * max(1.0, self.reference_scale.get(key, 1.0))
        if not value <= limit:
          problems.append(f"{key}: max abs error {value:.3g} > {limit:.3g}")
    if min_agreement is not None:
      for key, value in self.agreement.items():
        if not value >= min_agreement:
          problems.append(f"{key}: agreement {value:.4f} < {min_agreement:g}")
    if max_metric_drop is not None:
      for key, value in self.metrics.items():
        if key.endswith("_drop") and not value <= max_metric_drop:
          problems.append(f"{key} {value:.2f} points > {max_metric_drop:g}")
    return problems

  def to_dict(self):
    return dataclasses.asdict(self)

  def format(self):
    lines = [f"{self.artifact} ({self.task}, {self.num_images} images)"]
    for key in sorted(self.max_abs_error):
      lines.append(f"  {key:18s} max abs error {self.max_abs_error[key]:.3g}  "
                   f"mean {self.mean_abs_error[key]:.3g}")
    for key in sorted(self.agreement):
      lines.append(f"  {key:18s} agreement {100 * self.agreement[key]:.2f}%")
    for key in sorted(self.metrics):
      lines.append(f"  {key:18s} {self.metrics[key]:.2f}")
    return "\n".join(lines)


def mean_iou(predictions, labels, num_classes, ignore_label=IGNORE_LABEL):
  """mIoU in percent over the classes present in predictions or labels."""
  predictions = np.asarray(predictions).reshape(-1).astype("int64")
  labels = np.asarray(labels).reshape(-1).astype("int64")
  valid = labels != ignore_label
  confusion = np.bincount(labels[valid] * num_classes + predictions[valid],
                          minlength=num_classes * num_classes)
  confusion = confusion[:num_classes * num_classes].reshape(num_classes, num_classes)
  intersection = np.diag(confusion).astype("float64")
  union = confusion.sum(0) + confusion.sum(1) - intersection
  present = union > 0
  return float(100.0 * np.mean(intersection[present] / union[present])) if present.any() \
      else 0.0


def _check_images(images):
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] < 1:
    raise ValueError(f"images must be [N, H, W, 3], received images shape={images.shape}")
  if images.dtype != np.uint8:
    raise ValueError(f"images must be uint8 pixels, received images dtype={images.dtype}")
  return images


def _compare(report, exported, reference):
  """Fills errors (float outputs) and agreements (integer outputs) of `report`."""
  for key, want in reference.items():
    if key not in exported:
      raise ValueError(f"the exported artefact has no output {key!r}; it has "
                       f"{sorted(exported)}")
    got = np.asarray(exported[key])
    want = np.asarray(want)
    if got.shape != want.shape:
      raise ValueError(f"output {key}: exported shape {got.shape} != keras {want.shape}")
    if np.issubdtype(want.dtype, np.floating):
      diff = np.abs(got.astype("float64") - want.astype("float64"))
      report.max_abs_error[key] = float(diff.max()) if diff.size else 0.0
      report.mean_abs_error[key] = float(diff.mean()) if diff.size else 0.0
      report.reference_scale[key] = float(np.abs(want).max()) if want.size else 0.0
    elif key != "image_size" and not key.startswith("top_k"):
      report.agreement[key] = float(np.mean(got == want))


def _decisions(report, task, exported, reference, labels, num_classes):
  """Top-1 / argmax agreement and, with labels, the metric of both sides."""
  if task == "classification":
    got = np.argmax(exported[contract.LOGITS], -1)
    want = np.argmax(reference[contract.LOGITS], -1)
    report.agreement["top1"] = float(np.mean(got == want))
    if labels is not None:
      labels = np.asarray(labels).reshape(-1)
      report.metrics["keras_accuracy"] = float(100 * np.mean(want == labels))
      report.metrics["exported_accuracy"] = float(100 * np.mean(got == labels))
      report.metrics["accuracy_drop"] = (report.metrics["keras_accuracy"] -
                                         report.metrics["exported_accuracy"])
    return
  if labels is None:
    return
  labels = np.asarray(labels)
  if labels.ndim == 4:
    labels = labels[..., 0]
  want = reference[contract.SEMANTIC_MAP]
  got = exported[contract.SEMANTIC_MAP]
  if want.shape != labels.shape:
    raise ValueError(f"labels must be [N, H, W] at the images' size {want.shape}, "
                     f"received labels shape={labels.shape}")
  report.metrics["keras_miou"] = mean_iou(want, labels, num_classes)
  report.metrics["exported_miou"] = mean_iou(got, labels, num_classes)
  report.metrics["miou_drop"] = report.metrics["keras_miou"] - report.metrics["exported_miou"]


def encode_png(image: np.ndarray) -> bytes:
  """PNG bytes of a uint8 [H, W, C] image (C = 1, 3 or 4)."""
  return tf.io.encode_png(image).numpy()


def tf_example(encoded: bytes) -> bytes:
  """A serialized tf.train.Example with the image under "image/encoded"."""
  feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))}
  return tf.train.Example(
      features=tf.train.Features(feature=feature)).SerializeToString()


def signature_inputs(images: np.ndarray, signature: str):
  """What `signature` takes for uint8 images [N, H, W, 3]."""
  if signature == "image_tensor":
    return tf.constant(images)
  encoded = [encode_png(image) for image in images]
  if signature == "tf_example":
    encoded = [tf_example(item) for item in encoded]
  return tf.constant(encoded)


def _concat(chunks):
  return {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}


def verify_saved_model(saved_model_dir: str, model, images, *,
                       signature: str = "image_tensor", postprocess_fn=None, labels=None,
                       batch_size: int = 8, loaded=None) -> ParityReport:
  """Runs a SavedModel signature against the Keras model on uint8 images [N, H, W, 3].

  Args:
    saved_model_dir: written by `export_saved_model`.
    model: the Keras model it was exported from.
    images: uint8 [N, H, W, 3].
    signature: one of the exported signatures.
    postprocess_fn: panoptic post-processing used at export; default: the
      `PanopticDeepLabPostProcessor` whose settings the export recorded.
    labels: optional image labels [N] (classification) or semantic maps [N, H, W].
    batch_size: images per call.
    loaded: an already loaded SavedModel (to avoid reloading).
  """
  images = _check_images(images)
  metadata = serving.read_metadata(saved_model_dir)
  if signature not in serving.SIGNATURES:
    raise ValueError(f"signature must be one of {list(serving.SIGNATURES)}, received "
                     f"signature={signature!r}")
  loaded = loaded if loaded is not None else tf.saved_model.load(saved_model_dir)
  if signature not in loaded.signatures:
    raise ValueError(f"the SavedModel has signatures {sorted(loaded.signatures)}, received "
                     f"signature={signature!r}")
  function = loaded.signatures[signature]
  spec = serving.ServingSpec(
      task=metadata["task"], num_classes=metadata["num_classes"], top_k=metadata["top_k"],
      input_size=tuple(metadata["input_size"]) if metadata["input_size"] else None,
      eval_scales=tuple(metadata.get("eval_scales", (1.0,))),
      flip=metadata.get("flip", False))
  postprocess = None
  if spec.task == "panoptic":
    postprocess = postprocess_fn
    if postprocess is None:
      settings = metadata.get("panoptic_postprocess")
      if not settings:
        raise ValueError("the SavedModel was exported with a custom panoptic "
                         "post-processing: pass the same function, received "
                         "postprocess_fn=None")
      postprocess = serving.postprocess_from_settings(settings)
  view = contract.prediction_grid_view(model)
  computation = serving.ServingComputation(lambda x: view(x, training=False), spec,
                                           postprocess)
  # Graph mode for speed (the per-image map_fn of dense outputs is slow eagerly); the
  # Keras side is still the in-memory model object and its variables.
  keras_reference = tf.function(computation.from_image_tensor)
  exported, reference = [], []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    outputs = function(inputs=signature_inputs(chunk, signature))
    exported.append({k: v.numpy() for k, v in outputs.items()})
    reference.append({k: v.numpy() for k, v in keras_reference(tf.constant(chunk)).items()})
  exported, reference = _concat(exported), _concat(reference)
  report = ParityReport(f"saved_model:{signature}", spec.task, len(images))
  _compare(report, exported, reference)
  _decisions(report, spec.task, exported, reference, labels, spec.num_classes)
  return report


def tflite_interpreter(tflite_model, num_threads: int = 2):
  """A LiteRT interpreter (default XNNPACK delegate) from a path or flatbuffer bytes."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  if isinstance(tflite_model, (bytes, bytearray)):
    return Interpreter(model_content=bytes(tflite_model), num_threads=num_threads)
  return Interpreter(model_path=str(tflite_model), num_threads=num_threads)


def run_tflite(tflite_model, images, num_threads: int = 2) -> Dict[str, np.ndarray]:
  """Outputs of a tfvision .tflite (path or bytes) on uint8 images [N, H, W, 3].

  Integer inputs are quantised and integer outputs dequantised with their tensors'
  quantisation parameters, so the result is comparable with the float model.
  """
  images = _check_images(images)
  interpreter = tflite_interpreter(tflite_model, num_threads)
  runner = interpreter.get_signature_runner()
  input_details = runner.get_input_details()[INPUT_NAME]
  height, width = input_details["shape"][1:3]
  if images.shape[1:3] != (height, width):
    raise ValueError(f"the TFLite model takes {height}x{width} images, received images "
                     f"shape={images.shape}")
  output_details = runner.get_output_details()
  chunks = []
  for image in images:
    x = image[None].astype("float32")
    dtype = input_details["dtype"]
    if np.issubdtype(dtype, np.integer):
      scale, zero_point = input_details["quantization"]
      info = np.iinfo(dtype)
      x = np.clip(np.round(x / scale + zero_point), info.min, info.max)
    outputs = runner(**{INPUT_NAME: x.astype(dtype)})
    result = {}
    for key, value in outputs.items():
      if np.issubdtype(value.dtype, np.integer):
        scale, zero_point = output_details[key]["quantization"]
        value = (value.astype("float32") - zero_point) * scale
      result[key] = value
    chunks.append(result)
  return _concat(chunks)


def verify_tflite(tflite_model, model, images, *, labels=None, num_threads: int = 2,
                  postprocess_fn=None, dataset=None,
                  artifact: Optional[str] = None) -> ParityReport:
  """Runs a .tflite (path or bytes) against the Keras model on uint8 images [N, H, W, 3].

  Args:
    tflite_model: path or flatbuffer written by `export_tflite`.
    model: the Keras model it was converted from.
    images: uint8 [N, H, W, 3] at the TFLite input size.
    labels: optional image labels [N] or semantic maps [N, H, W].
    num_threads: interpreter threads.
    postprocess_fn: panoptic post-processing; with it, or with a `dataset` (or a
      built-in label scheme matching the class count: 19 cityscapes, 134 coco), the
      post-processed maps of both sides are compared too (`PanopticInference`'s
      post-processor, as the SavedModel export uses).
    dataset: panoptic label scheme, as `export_saved_model`'s.
    artifact: label of the report (default "tflite").
  """
  images = _check_images(images)
  exported = run_tflite(tflite_model, images, num_threads)
  task = contract.infer_task(exported)
  reference = {k: [] for k in contract.RAW_OUTPUTS[task]}
  for start in range(0, len(images), 8):
    outputs = contract.raw_outputs(
        model(tf.constant(images[start:start + 8], tf.float32), training=False), task)
    for key in reference:
      reference[key].append(outputs[key].numpy())
  reference = {k: np.concatenate(v) for k, v in reference.items()}
  report = ParityReport(artifact or "tflite", task, len(images))
  _compare(report, exported, reference)
  if task == "classification":
    _decisions(report, task, exported, reference, labels, exported[contract.LOGITS].shape[-1])
    return report
  size = images.shape[1:3]
  exported_maps = _dense_maps(exported, size)
  reference_maps = _dense_maps(reference, size)
  report.agreement[contract.SEMANTIC_MAP] = float(
      np.mean(exported_maps[contract.SEMANTIC_MAP] == reference_maps[contract.SEMANTIC_MAP]))
  num_classes = exported[contract.SEMANTIC_LOGITS].shape[-1]
  if task == "panoptic" and (postprocess_fn is not None or dataset is not None or
                             num_classes in serving.DATASETS_BY_CLASSES):
    postprocess, _ = serving.resolve_postprocess(model, task, postprocess_fn, dataset,
                                                 num_classes)
    got = _postprocessed(postprocess, exported, size)
    want = _postprocessed(postprocess, reference, size)
    for key in contract.POSTPROCESS_OUTPUTS.values():
      report.agreement[key] = float(np.mean(got[key] == want[key]))
  _decisions(report, task, exported_maps, reference_maps, labels, num_classes)
  return report


def _dense_maps(raw, size):
  """Argmax class map of semantic logits restored to the image size (as serving does)."""
  logits = tf.map_fn(lambda value: contract.restore_prediction(value, size),
                     tf.constant(raw[contract.SEMANTIC_LOGITS]))
  return {contract.SEMANTIC_MAP: tf.argmax(logits, -1, output_type=tf.int32).numpy()}


def _postprocessed(postprocess, raw, size):
  """Post-processed maps of raw panoptic outputs restored to the image size."""
  spec = serving.ServingSpec(task="panoptic", input_size=None,
                             num_classes=raw[contract.SEMANTIC_LOGITS].shape[-1])

  @tf.function
  def _run(tensors, sizes):
    computation = serving.ServingComputation(lambda _: tensors, spec, postprocess)
    return computation.run(None, sizes)

  sizes = tf.tile(tf.constant([list(size)], tf.int32), [len(raw[contract.SEMANTIC_LOGITS]), 1])
  outputs = _run({k: tf.constant(v) for k, v in raw.items()}, sizes)
  return {k: outputs[k].numpy() for k in contract.POSTPROCESS_OUTPUTS.values()}
