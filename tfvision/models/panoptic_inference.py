"""End-to-end panoptic inference (uint8 image -> panoptic map) and its SavedModel export.

`PanopticInference` chains a Panoptic-DeepLab model and the pure-TF post-processing in one
traced function, so the whole pipeline runs under `tf.function(jit_compile=True)` for
any batch size and exports as a single SavedModel whose serving signature takes uint8
pixels and returns int32 maps:

    inference = PanopticInference(model, dataset="cityscapes")
    maps = inference(images_uint8)              # {"panoptic", "semantic", "instance"}
    export_panoptic_saved_model(model, "/tmp/panoptic", dataset="cityscapes")
    served = tf.saved_model.load("/tmp/panoptic").signatures["serving_default"]
"""
import tensorflow as tf

from tfvision.data.panoptic import get_dataset_info
from tfvision.ops.panoptic_postprocess import PanopticDeepLabPostProcessor

OUTPUT_KEYS = ("panoptic", "semantic", "instance")


class PanopticInference(tf.Module):
  """Model + post-processing: [B, H, W, 3] uint8 (or float) pixels -> int32 [B, H, W] maps.

  Args:
    model: a PanopticDeepLab model (outputs semantic_logits, center_heatmap, offsets).
    postprocessor: a `PanopticDeepLabPostProcessor`; None uses `dataset`'s settings.
    dataset: "cityscapes", "coco" or a `PanopticDatasetInfo` (when no postprocessor).
  """

  def __init__(self, model, postprocessor=None, dataset="cityscapes", name=None):
    super().__init__(name=name)
    self.model = model
    if postprocessor is None:
      postprocessor = PanopticDeepLabPostProcessor(**get_dataset_info(dataset)
                                                   .postprocess_kwargs())
    self.postprocessor = postprocessor

  def __call__(self, images):
    outputs = self.model(tf.cast(images, tf.float32), training=False)
    maps = self.postprocessor(outputs)
    return {key: maps[key] for key in OUTPUT_KEYS}


def export_panoptic_saved_model(model, export_dir, postprocessor=None, dataset="cityscapes",
                                input_size=None, jit_compile=False):
  """Writes model + post-processing as one SavedModel (uint8 image in, panoptic map out).

  Args:
    model: a PanopticDeepLab model.
    export_dir: output directory.
    postprocessor: a `PanopticDeepLabPostProcessor` or None for `dataset`'s settings.
    dataset: dataset name or info used when `postprocessor` is None.
    input_size: (H, W) to fix the serving input size, or None for any size.
    jit_compile: XLA-compile the serving function.

  Returns:
    The `PanopticInference` module that was saved.
  """
  inference = PanopticInference(model, postprocessor, dataset)
  height, width = (None, None) if input_size is None else tuple(input_size)
  spec = tf.TensorSpec([None, height, width, 3], tf.uint8, name="image")
  # The saved module holds the variables and the one serving function only: saving the
  # Keras model object itself would also trace every layer's call for Keras' own
  # SavedModel metadata, which the serving signature does not need.
  module = tf.Module()
  module.variables_ = list(model.variables)
  module.serve = tf.function(inference.__call__, input_signature=[spec],
                             jit_compile=jit_compile)
  tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})
  return inference
