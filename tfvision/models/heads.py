"""Classification head shared by every backbone family."""
import tensorflow as tf
import tf_keras

from tfvision.layers.activations import get_activation
from tfvision.utils import validation

POOLINGS = ("avg", "max")


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ClassificationHead(tf_keras.layers.Layer):
  """Global pooling -> optional dropout -> Dense(num_classes) in float32.

  The logits are computed in float32 even under a mixed-precision policy (the Dense
  layer's dtype is pinned), as the tf_keras mixed-precision guide recommends.

  Args:
    num_classes: number of output classes.
    pooling: "avg" or "max" global pooling.
    dropout_rate: dropout before the classifier (ResNeSt Sec. 5.2 uses 0.2 for >= 200).
    classifier_activation: None for logits (default), or e.g. "softmax".
    kernel_initializer: initializer of the classifier weights.
  Input: [B, H, W, C]; output: [B, num_classes] float32.
  """

  def __init__(self, num_classes=1000, pooling="avg", dropout_rate=0.0,
               classifier_activation=None, kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.num_classes = validation.check_positive("num_classes", num_classes, integer=True)
    self.pooling = validation.check_in("pooling", pooling, POOLINGS)
    self.dropout_rate = validation.check_probability("dropout_rate", dropout_rate)
    get_activation(classifier_activation, "classifier_activation")  # validates the name
    self.classifier_activation = classifier_activation
    self.kernel_initializer = kernel_initializer
    self.dropout = (tf_keras.layers.Dropout(dropout_rate, name="dropout")
                    if dropout_rate else None)
    self.fc = tf_keras.layers.Dense(
        num_classes, kernel_initializer=kernel_initializer, dtype="float32", name="logits")

  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    if self.pooling == "avg":
      x = tf.reduce_mean(inputs, axis=[1, 2])
    else:
      x = tf.reduce_max(inputs, axis=[1, 2])
    if self.dropout is not None:
      x = self.dropout(x, training=training)
    x = self.fc(x)
    act = get_activation(self.classifier_activation)
    return act(x) if act is not None else x

  def get_config(self):
    config = super().get_config()
    config.update(num_classes=self.num_classes, pooling=self.pooling,
                  dropout_rate=self.dropout_rate,
                  classifier_activation=self.classifier_activation,
                  kernel_initializer=self.kernel_initializer)
    return config
