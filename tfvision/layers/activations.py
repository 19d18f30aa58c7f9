"""Activation functions by name, including the hard sigmoid of MobileNetV3.

tf_keras's own `hard_sigmoid` is the piecewise-linear `clip(0.2 x + 0.5)`, not the
`relu6(x + 3) / 6` that MobileNetV3 and swidernet.md Eq. 1 use, so we define ours.
"""
import tensorflow as tf
import tf_keras


def hard_sigmoid(x):
  """relu6(x + 3) / 6 (MobileNetV3; swidernet.md Eq. 1)."""
  return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def hard_swish(x):
  """x * relu6(x + 3) / 6 (MobileNetV3)."""
  return x * hard_sigmoid(x)


def gelu(x):
  """Exact (erf) GELU, as PyTorch's default nn.GELU."""
  return tf.nn.gelu(x, approximate=False)


_CUSTOM = {
    "hard_sigmoid": hard_sigmoid,
    "hard_swish": hard_swish,
    "gelu": gelu,
    "swish": tf.nn.silu,
    "silu": tf.nn.silu,
}


def get_activation(name, arg_name="activation"):
  """Returns the activation function called `name`; None or "linear" give None.

  Args:
    name: a string such as "relu", "hard_sigmoid", "gelu", or None.
    arg_name: the argument's name in error messages.
  """
  if name is None:
    return None
  if callable(name):
    return name
  if not isinstance(name, str):
    raise ValueError(f"{arg_name} must be a string or None, received {arg_name}={name!r}")
  key = name.lower()
  if key in ("linear", "none", "identity"):
    return None
  if key in _CUSTOM:
    return _CUSTOM[key]
  try:
    return tf_keras.activations.get(key)
  except ValueError as err:
    raise ValueError(f"unknown activation, received {arg_name}={name!r}") from err
