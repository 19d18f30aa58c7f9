"""End-to-end panoptic inference: uint8 images -> panoptic maps, in one traced function.

`PanopticInference` chains a Panoptic-DeepLab model and the pure-TF post-processing, so
the whole pipeline runs under `tf.function(jit_compile=True)` for any batch size:

    inference = PanopticInference(model, dataset="cityscapes")
    maps = inference(images_uint8)              # {"panoptic", "semantic", "instance"}

The SavedModel of the same pipeline is `tfvision.export.export_saved_model(model, dir,
dataset="cityscapes")` (its post-processor is this class's), the one exporter.
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
