"""In-model input normalisation, so exported models take raw [0, 255] pixels."""
import tensorflow as tf
import tf_keras

# Normalisations used by the papers' released code.
IMAGENET_MEAN_RGB = (0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0)
IMAGENET_STD_RGB = (0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0)
# deeplab2 (`model/deeplab.py`): x / 127.5 - 1.
DEEPLAB_MEAN_RGB = (127.5, 127.5, 127.5)
DEEPLAB_STD_RGB = (127.5, 127.5, 127.5)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class Normalize(tf_keras.layers.Layer):
  """(x - mean) / std per channel, with fixed constants (no weights).

  Args:
    mean: per-channel means in pixel units.
    std: per-channel standard deviations in pixel units.
  Input: [B, H, W, C] in [0, 255]; output: same shape, normalised.
  """

  def __init__(self, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB, **kwargs):
    # Normalise in float32 even under a mixed policy: no early rounding of the pixels.
    kwargs.setdefault("autocast", False)
    super().__init__(**kwargs)
    if len(mean) != len(std):
      raise ValueError(f"mean and std must have the same length, received mean={mean!r}, "
                       f"std={std!r}")
    if any(s <= 0 for s in std):
      raise ValueError(f"std must be positive, received std={std!r}")
    self.mean = tuple(float(m) for m in mean)
    self.std = tuple(float(s) for s in std)

  def call(self, inputs):
    x = tf.cast(inputs, tf.float32)
    x = (x - tf.constant(self.mean)) * tf.constant([1.0 / s for s in self.std])
    return tf.cast(x, self.compute_dtype)

  def get_config(self):
    config = super().get_config()
    config.update(mean=self.mean, std=self.std)
    return config
