"""Small models for the export tests: the real tiny dense models and a size-picky classifier.

- `tiny_semantic` / `tiny_panoptic`: the registry's tiny DeepLabV3 and Panoptic-DeepLab
  (SWideRNet-(0.25, 0.25, 0.75) layout, a few channels) with the 6 tfvision_shapes
  classes, so that the built-in "shapes" panoptic label scheme applies.
- `fixed_size_classifier`: a classifier that, like window attention, rejects a static
  input size not divisible by `multiple` (the bad `input_size` tests).
"""
import tf_keras

from tfvision.data import shapes
from tfvision.models import get_preset

NUM_CLASSES = shapes.NUM_CLASSES
THING_IDS = shapes.THING_IDS
LABEL_DIVISOR = shapes.LABEL_DIVISOR
SEMANTIC = "deeplabv3_swidernet_0.25_0.25_0.75"
PANOPTIC = "panoptic_deeplab_swidernet_0.25_0.25_0.75"


def tiny_semantic(seed=3):
  tf_keras.utils.set_random_seed(seed)
  return get_preset(SEMANTIC).build_tiny(num_classes=NUM_CLASSES)


def tiny_panoptic(seed=11, head_gain=300.0):
  """Tiny Panoptic-DeepLab whose random centre / offset heads are scaled by `head_gain`.

  At initialisation the centre heatmap is ~1e-3 everywhere, below the 0.1 centre
  threshold, so the post-processing would find no instance at all; scaling the heads'
  final 1x1 kernels gives a few peaks per image and offsets of a few pixels, so the
  instance and panoptic maps the tests compare hold several instances.
  """
  tf_keras.utils.set_random_seed(seed)
  model = get_preset(PANOPTIC).build_tiny(num_classes=NUM_CLASSES)
  for layer in model.submodules:
    if layer.name in ("center_head", "offset_head"):
      kernel, bias = layer.final_conv.get_weights()
      layer.final_conv.set_weights([kernel * head_gain, bias])
  return model


class RequireMultipleOf(tf_keras.layers.Layer):
  """Identity that rejects a static size not divisible by `multiple`."""

  def __init__(self, multiple, **kwargs):
    super().__init__(**kwargs)
    self.multiple = multiple

  def call(self, inputs):
    for side in inputs.shape[1:3]:
      if side is not None and side % self.multiple:
        raise ValueError(f"needs sides divisible by {self.multiple}, got {inputs.shape}")
    return inputs


def fixed_size_classifier(multiple=32):
  """A classifier that only takes sizes divisible by `multiple` (bad input_size tests)."""
  images = tf_keras.Input([None, None, 3], name="image")
  x = RequireMultipleOf(multiple)(images)
  x = tf_keras.layers.Conv2D(4, 3, strides=2)(x)
  x = tf_keras.layers.GlobalAveragePooling2D()(x)
  return tf_keras.Model(images, tf_keras.layers.Dense(5)(x), name="fixed_size_classifier")
