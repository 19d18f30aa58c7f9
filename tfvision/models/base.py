"""Base class of every tfvision model: a functional tf_keras.Model built in __init__.

This is Model Garden's backbone contract (`official.vision.modeling.backbones.ResNet`):
the graph is built functionally inside the constructor, `get_config()` returns the
constructor arguments only, `from_config` calls the constructor, and `output_specs`
maps endpoint names to shapes. With `include_top=False` the output is a dict of
endpoints keyed by log2 of the nominal stride ("2".."5"); with `include_top=True` it is
the [B, num_classes] float32 logits of the shared classification head.
"""
import tensorflow as tf
import tf_keras

from tfvision.layers.activations import get_activation
from tfvision.layers.preprocessing import Normalize
from tfvision.models.heads import ClassificationHead
from tfvision.utils import validation


class VisionModel(tf_keras.Model):
  """Common constructor plumbing: input, normalisation, head, config and output specs.

  Subclasses compute their endpoints in `__init__` between `_make_inputs` and
  `_finish`, and store their constructor arguments in a dict passed to `_finish`.
  """

  @staticmethod
  def _make_inputs(input_shape, mean, std, min_size=1):
    """Returns (inputs, normalised) for an (H, W, 3) `input_shape` (None = any size)."""
    shape = validation.check_input_shape(input_shape, min_size=min_size)
    inputs = tf_keras.Input(shape=shape, name="image")
    return inputs, Normalize(mean, std, name="normalize")(inputs)

  @staticmethod
  def _check_common_args(config):
    """Validates the common keyword arguments before anything is built."""
    validation.check_input_shape(config.get("input_shape"))
    if config.get("include_top", True):
      validation.check_positive("num_classes", config.get("num_classes"), integer=True)
      validation.check_in("pooling", config.get("pooling"), ("avg", "max"))
      get_activation(config.get("classifier_activation"), "classifier_activation")
      validation.check_probability("dropout_rate", config.get("dropout_rate", 0.0))
    validation.check_probability("drop_path_rate", config.get("drop_path_rate", 0.0))

  def _finish(self, config, inputs, endpoints, last_endpoint, include_top, num_classes,
              pooling, classifier_activation, dropout_rate=0.0, name=None):
    """Attaches the head (or not) and initialises the functional model."""
    if include_top:
      outputs = ClassificationHead(
          num_classes, pooling=pooling, dropout_rate=dropout_rate,
          classifier_activation=classifier_activation, name="head")(endpoints[last_endpoint])
      output_specs = {"logits": outputs.shape}
    else:
      outputs = dict(endpoints)
      output_specs = {key: value.shape for key, value in outputs.items()}
    self._output_specs = output_specs
    super().__init__(inputs=inputs, outputs=outputs, name=name)
    self._tfvision_config = dict(config)

  @property
  def output_specs(self):
    """Endpoint name -> tf.TensorShape (the Model Garden backbone contract)."""
    return self._output_specs

  def get_config(self):
    return dict(self._tfvision_config)

  @classmethod
  def from_config(cls, config, custom_objects=None):
    del custom_objects
    return cls(**config)
