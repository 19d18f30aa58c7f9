"""Base class of every tfvision model: a functional tf_keras.Model built from its spec.

This is Model Garden's backbone contract (`official.vision.modeling.backbones.ResNet`):
the graph is built functionally inside the constructor, `get_config()` returns the
constructor arguments only, `from_config` calls the constructor, and `output_specs`
maps endpoint names to shapes.

What a subclass declares (class attributes), and nothing else restates:

- `ARCH`: its family's architecture spec (`tfvision.models.spec.Spec` dataclass);
- `COMMON`: the spec of the shared arguments (`ModelSpec` for backbones), with the
  family's defaults for them in `COMMON_DEFAULTS` (its paper's normalisation, ...);
- `POSITIONAL`: the arguments that may be passed by position (`SWideRNet(0.25, 0.5, 1)`);
- `TINY`, `TINY_SIZE`: the arguments and input side of the family's tiny test model;
- `MEAN_RGB`, `STD_RGB`: the input normalisation of its paper's code;
- `build_network(arch, common)`: returns (inputs, endpoints).

Endpoints are the same in every family and with or without the head: a dict keyed by log2
of the stride ("2".."5"), each the output of the stage at that stride as the next stage
(or the head) consumes it; the head, when attached, reads endpoint "5".
"""
import tensorflow as tf
import tf_keras
from official.vision.ops import preprocess_ops

from tfvision.layers.preprocessing import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, Normalize
from tfvision.models.heads import ClassificationHead
from tfvision.models.spec import ModelSpec, describe, split_arguments
from tfvision.utils import validation

# Model Garden's parsers compute (x - MEAN_RGB) / STDDEV_RGB.
MODEL_GARDEN_MEAN_RGB = tuple(float(m) for m in preprocess_ops.MEAN_RGB)
MODEL_GARDEN_STD_RGB = tuple(float(s) for s in preprocess_ops.STDDEV_RGB)


def _keras3(value):
  """Whether `value` is a Keras 3 object (`tf.keras` in TF 2.20), not a tf_keras one."""
  return type(value).__module__.split(".", 1)[0] == "keras"


_TF_KERAS_NAMES = {"tensor": "tf_keras.Input", "optimizer": "tf_keras.optimizers.Adam",
                   "loss": "tf_keras.losses", "metric": "tf_keras.metrics"}


def _keras3_error(what, value):
  return ValueError(
      f"tfvision models are tf_keras models (Keras 2, what Model Garden uses); "
      f"received a Keras 3 {what} ({type(value).__module__}.{type(value).__name__}). "
      f"With TensorFlow 2.20 `tf.keras` is Keras 3: `import tf_keras` and use "
      f"{_TF_KERAS_NAMES[what]}..., or set TF_USE_LEGACY_KERAS=1 before importing "
      f"TensorFlow so that tf.keras is tf_keras")


class VisionModel(tf_keras.Model):
  """A model built from its family spec (see the module docstring)."""

  ARCH = None
  COMMON = ModelSpec
  COMMON_DEFAULTS = {}
  POSITIONAL = ()
  TINY = {}
  TINY_SIZE = 64
  MEAN_RGB = IMAGENET_MEAN_RGB
  STD_RGB = IMAGENET_STD_RGB
  FAMILY = "model"
  DEFAULT_NAME = None

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if cls.__dict__.get("ARCH") is not None:
      cls.FAMILY = cls.ARCH.FAMILY
      # The Args section is generated from the specs, so it cannot drift from them.
      cls.__doc__ = "\n\n".join([
          (cls.__doc__ or "").rstrip(), describe(cls.ARCH, "Architecture arguments"),
          describe(cls.COMMON, "Shared arguments")])

  @classmethod
  def resolve_arguments(cls, args, kwargs):
    """(arch spec, common spec) from constructor arguments; bad ones raise ValueError."""
    where = f"the {cls.FAMILY} family ({cls.__name__})"
    arch_values, common_values = split_arguments(args, kwargs, cls.POSITIONAL,
                                                 (cls.ARCH, cls.COMMON), where)
    defaults = cls.COMMON.create(cls.COMMON_DEFAULTS)
    common = cls.COMMON.create(common_values, base=defaults, where=where)
    arch = cls.ARCH.create(arch_values, where=where)
    cls.check_arguments(arch, common)
    return arch, common

  @classmethod
  def check_arguments(cls, arch, common):
    """Checks across the two specs (subclasses)."""

  def __init__(self, *args, **kwargs):
    arch, common = self.resolve_arguments(args, kwargs)
    inputs, outputs = self.build_network(arch, common)
    self._output_specs = ({key: value.shape for key, value in outputs.items()}
                          if isinstance(outputs, dict) else {"logits": outputs.shape})
    super().__init__(inputs=inputs, outputs=outputs,
                     name=common.name or self.default_name(arch))
    self.arch_spec = arch
    self.model_spec = common

  def build_network(self, arch, common):
    """(inputs, outputs): a backbone's endpoints, then the head (subclasses override
    `build_backbone`; meta-architectures override this)."""
    inputs, endpoints = self.build_backbone(arch, common)
    if not common.include_top:
      return inputs, dict(endpoints)
    dropout = common.dropout_rate
    if dropout is None:
      dropout = self.default_dropout_rate(arch)
    logits = ClassificationHead(
        common.num_classes, pooling=common.pooling, dropout_rate=dropout,
        classifier_activation=common.classifier_activation, name="head")(endpoints["5"])
    return inputs, logits

  def build_backbone(self, arch, common):
    raise TypeError(f"{type(self).__name__} must define build_backbone")

  @classmethod
  def default_name(cls, arch):
    """The model name when `name` is '' (presets pass their own)."""
    del arch
    return cls.DEFAULT_NAME or cls.FAMILY

  @classmethod
  def default_dropout_rate(cls, arch):
    """Classifier dropout when `dropout_rate` is None (0 unless the family says)."""
    del arch
    return 0.0

  def image_input(self, common, min_size=1):
    """(inputs, normalised): the image input and the family's input normalisation.

    With `input_normalization="model_garden"` the input is already normalised with
    Model Garden's ImageNet mean / std; one Normalize layer maps it to the family's
    normalisation (the identity for families that use the ImageNet statistics).
    """
    shape = validation.check_input_shape(common.input_shape, min_size=min_size)
    inputs = tf_keras.Input(shape=shape, name="image")
    mean, std = self.MEAN_RGB, self.STD_RGB
    if common.input_normalization == "model_garden":
      # x_pixels = x * s_g + m_g; (x_pixels - m) / s = (x - (m - m_g) / s_g) / (s / s_g).
      mean = [(m - m_g) / s_g for m, m_g, s_g in zip(mean, MODEL_GARDEN_MEAN_RGB,
                                                      MODEL_GARDEN_STD_RGB)]
      std = [s / s_g for s, s_g in zip(std, MODEL_GARDEN_STD_RGB)]
    return inputs, Normalize(mean, std, name="normalize")(inputs)

  @property
  def output_specs(self):
    """Endpoint name -> tf.TensorShape (the Model Garden backbone contract)."""
    return self._output_specs

  @property
  def output_stride(self):
    """The stride of the deepest endpoint, as built."""
    return getattr(self.arch_spec, "output_stride", 32)

  def get_config(self):
    return {**self.arch_spec.values(), **self.model_spec.values()}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    del custom_objects
    return cls(**config)

  def __call__(self, *args, **kwargs):
    if args and any(_keras3(x) for x in tf.nest.flatten(args[0])):
      raise _keras3_error("tensor", args[0])
    return super().__call__(*args, **kwargs)

  def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
    for what, value in (("optimizer", optimizer), ("loss", loss)):
      for item in tf.nest.flatten(value):
        if _keras3(item):
          raise _keras3_error(what, item)
    for item in tf.nest.flatten(metrics):
      if _keras3(item):
        raise _keras3_error("metric", item)
    return super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
