"""Small dense-prediction models following the export contract, for the export tests.

The real semantic (DeepLabV3/V3+) and Panoptic-DeepLab models come from the
dense-prediction issue; these stand-ins follow the contract the exporter assumes
(tfvision/export/contract.py) so that every export path is exercised now:

- `semantic_standin`: tiny SWideRNet backbone, 1x1 classifier on the stride-8 endpoint,
  bilinear upsampling to the input size: {"semantic_logits": [B, H, W, C]}.
- `panoptic_standin`: same backbone; semantic, center (sigmoid) and offset heads on the
  stride-4 endpoint, *not* upsampled ([B, H/4, W/4, ...]), so that the exporter's
  resizing and offset rescaling are exercised; `model.postprocess` is
  `standin_postprocess`.
- `standin_postprocess`: a compact Panoptic-DeepLab-style grouping (centre NMS by max
  pooling, top-k centres, each thing pixel joins the nearest predicted centre).
"""
import tensorflow as tf
import tf_keras

from tfvision.models import create_model

NUM_CLASSES = 6
THING_IDS = (3, 4, 5)
LABEL_DIVISOR = 256


class ResizeToInput(tf_keras.layers.Layer):
  """Bilinear resize of [B, h, w, C] to the spatial size of a reference tensor."""

  def call(self, inputs):
    features, reference = inputs
    return tf.image.resize(features, tf.shape(reference)[1:3], method="bilinear")


class RequireMultipleOf(tf_keras.layers.Layer):
  """Identity that, like window attention, rejects a static size not divisible by `multiple`."""

  def __init__(self, multiple, **kwargs):
    super().__init__(**kwargs)
    self.multiple = multiple

  def call(self, inputs):
    for side in inputs.shape[1:3]:
      if side is not None and side % self.multiple:
        raise ValueError(f"needs sides divisible by {self.multiple}, got {inputs.shape}")
    return inputs


def _backbone():
  return create_model("swidernet_0.25_0.25_0.75", include_top=False, w1=1 / 16, w2=1 / 16,
                      drop_path_rate=0.0)


def semantic_standin(num_classes=NUM_CLASSES):
  backbone = _backbone()
  images = tf_keras.Input([None, None, 3], name="image")
  features = backbone(images)["3"]
  logits = tf_keras.layers.Conv2D(num_classes, 1, name="classifier")(features)
  logits = ResizeToInput(name="upsample")([logits, images])
  return tf_keras.Model(images, {"semantic_logits": logits}, name="semantic_standin")


def panoptic_standin(num_classes=NUM_CLASSES, with_postprocess=True):
  backbone = _backbone()
  images = tf_keras.Input([None, None, 3], name="image")
  features = backbone(images)["2"]
  semantic = tf_keras.layers.Conv2D(num_classes, 1, name="semantic")(features)
  center = tf_keras.layers.Conv2D(1, 1, activation="sigmoid", name="center")(features)
  offsets = tf_keras.layers.Conv2D(2, 1, name="offsets")(features)
  model = tf_keras.Model(images, {"semantic_logits": semantic, "center_heatmap": center,
                                  "offsets": offsets}, name="panoptic_standin")
  if with_postprocess:
    model.postprocess = standin_postprocess
  return model


def fixed_size_classifier(multiple=32):
  """A classifier that only takes sizes divisible by `multiple` (bad input_size tests)."""
  images = tf_keras.Input([None, None, 3], name="image")
  x = RequireMultipleOf(multiple)(images)
  x = tf_keras.layers.Conv2D(4, 3, strides=2)(x)
  x = tf_keras.layers.GlobalAveragePooling2D()(x)
  return tf_keras.Model(images, tf_keras.layers.Dense(5)(x), name="fixed_size_classifier")


def standin_postprocess(outputs, threshold=0.1, nms_kernel=3, top_k=8):
  """Semantic, instance and panoptic maps from Panoptic-DeepLab-style raw outputs.

  Args:
    outputs: "semantic_logits" [B, H, W, C], "center_heatmap" [B, H, W, 1], "offsets"
      [B, H, W, 2] ((dy, dx) in pixels), all at one resolution.
  Returns:
    "semantic_map", "instance_map", "panoptic_map": int32 [B, H, W].
  """
  semantic = tf.argmax(outputs["semantic_logits"], -1, output_type=tf.int32)
  heatmap = outputs["center_heatmap"][..., 0]
  offsets = outputs["offsets"]
  height, width = tf.shape(heatmap)[1], tf.shape(heatmap)[2]
  pooled = tf.nn.max_pool2d(heatmap[..., None], nms_kernel, 1, "SAME")[..., 0]
  peaks = tf.where((heatmap >= pooled) & (heatmap > threshold), heatmap, 0.0)
  flat = tf.reshape(peaks, [tf.shape(peaks)[0], -1])
  k = tf.minimum(top_k, tf.shape(flat)[1])
  scores, indices = tf.math.top_k(flat, k=k)
  centers = tf.cast(tf.stack([indices // width, indices % width], -1), tf.float32)
  rows = tf.cast(tf.range(height), tf.float32)
  cols = tf.cast(tf.range(width), tf.float32)
  grid = tf.stack(tf.meshgrid(rows, cols, indexing="ij"), -1)
  voted = grid[None] + offsets                                   # [B, H, W, 2]
  distance = tf.reduce_sum(
      tf.square(voted[:, :, :, None, :] - centers[:, None, None, :, :]), -1)
  distance = tf.where(scores[:, None, None, :] > 0, distance, float("inf"))
  nearest = tf.argmin(distance, -1, output_type=tf.int32) + 1
  has_center = tf.reduce_any(scores > 0, -1)[:, None, None]
  is_thing = tf.reduce_any(semantic[..., None] == tf.constant(THING_IDS, tf.int32), -1)
  instance = tf.where(is_thing & has_center, nearest, 0)
  return {"semantic_map": semantic, "instance_map": instance,
          "panoptic_map": semantic * LABEL_DIVISOR + instance}
