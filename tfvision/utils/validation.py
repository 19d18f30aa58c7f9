"""Argument checks that raise `ValueError(f"... received {name}={value!r}")`.

Every constructor in tfvision validates its arguments with these helpers so that bad input
fails at construction time with the argument's name, never deep inside TensorFlow.
"""
import numbers


def _is_number(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive(name, value, integer=False):
  """Requires a number > 0 (an integer when `integer`)."""
  ok = _is_int(value) if integer else _is_number(value)
  if not ok or value <= 0:
    kind = "a positive integer" if integer else "a positive number"
    raise ValueError(f"{name} must be {kind}, received {name}={value!r}")
  return value


def check_non_negative(name, value, integer=False):
  """Requires a number >= 0 (an integer when `integer`)."""
  ok = _is_int(value) if integer else _is_number(value)
  if not ok or value < 0:
    kind = "a non-negative integer" if integer else "a non-negative number"
    raise ValueError(f"{name} must be {kind}, received {name}={value!r}")
  return value


def check_probability(name, value, allow_one=False):
  """Requires 0 <= value < 1 (or <= 1 when `allow_one`)."""
  upper_ok = value <= 1.0 if allow_one else value < 1.0
  if not _is_number(value) or value < 0.0 or not upper_ok:
    bound = "[0, 1]" if allow_one else "[0, 1)"
    raise ValueError(f"{name} must be in {bound}, received {name}={value!r}")
  return float(value)


def check_in(name, value, allowed):
  """Requires `value` to be one of `allowed`."""
  if value not in allowed:
    raise ValueError(
        f"{name} must be one of {sorted(allowed, key=str)}, received {name}={value!r}")
  return value


def check_divisible(name, value, divisor, divisor_name):
  """Requires `value % divisor == 0`."""
  if value % divisor:
    raise ValueError(
        f"{name} must be divisible by {divisor_name}={divisor!r}, received {name}={value!r}")
  return value


def check_input_shape(input_shape, min_size=1, channels=3, name="input_shape"):
  """Validates an (H, W, C) input shape; None means any spatial size.

  Args:
    input_shape: None or a length-3 sequence (height, width, channels); height and width
      may be None.
    min_size: smallest allowed height/width.
    channels: required channel count (None to allow any).
    name: the argument's name in error messages.

  Returns:
    A tuple (height, width, channels).
  """
  if input_shape is None:
    return (None, None, channels)
  try:
    shape = tuple(input_shape)
  except TypeError:
    raise ValueError(f"{name} must be (height, width, channels), received {name}={input_shape!r}")
  if len(shape) != 3:
    raise ValueError(
        f"{name} must have 3 dimensions (height, width, channels), "
        f"received {name}={input_shape!r}")
  height, width, chans = shape
  for dim_name, dim in (("height", height), ("width", width)):
    if dim is not None and (not _is_int(dim) or dim < min_size):
      raise ValueError(
          f"{name} {dim_name} must be None or an integer >= {min_size}, "
          f"received {name}={input_shape!r}")
  if channels is not None and chans != channels:
    raise ValueError(f"{name} must have {channels} channels, received {name}={input_shape!r}")
  return (height, width, chans)
