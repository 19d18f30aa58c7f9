"""Multiply-accumulate (MAC) counting from a model's traced graph.

We trace `model(x, training=False)` at a fixed input shape and walk the graph's ops,
counting the multiply-adds of the ops papers count: convolutions (regular, grouped,
dilated, depthwise, transposed) and matrix products (MatMul, BatchMatMul, Einsum), the
latter covering fully connected layers and attention. Normalisation, activations,
pooling, softmax and other element-wise ops are not counted, which is the convention
of the "M-Adds" / "FLOPs" columns of the papers this package reproduces (one MAC =
one multiply-add; "FLOPs" in those papers means MACs).
"""
import collections

import numpy as np
import tensorflow as tf


def _shape(tensor):
  shape = tensor.shape
  if shape.rank is None or not shape.is_fully_defined():
    return None
  return [int(d) for d in shape]


def _conv_output_shape(op):
  """Output shape of a convolution, seen through a dilated conv's BatchToSpaceND.

  tf_keras runs a dilated convolution as SpaceToBatchND -> conv -> BatchToSpaceND. The
  inner conv's output covers the input padded up to a multiple of the rate; the
  BatchToSpaceND that follows crops it back to the layer's real output, which is what
  the layer computes (counting the inner conv overstates a rate-18 conv on a 41x41 map
  by 1.7x).
  """
  if op.inputs[0].op.type == "SpaceToBatchND":
    cropped = [c for c in op.outputs[0].consumers() if c.type == "BatchToSpaceND"]
    if cropped:
      return _shape(cropped[0].outputs[0])
  return _shape(op.outputs[0])


def _conv2d_macs(op):
  out = _conv_output_shape(op)
  kernel = _shape(op.inputs[1])
  if out is None or kernel is None:
    return None
  kh, kw, cin_per_group, _ = kernel
  return int(np.prod(out)) * kh * kw * cin_per_group


def _depthwise_macs(op):
  out = _conv_output_shape(op)
  kernel = _shape(op.inputs[1])
  if out is None or kernel is None:
    return None
  return int(np.prod(out)) * kernel[0] * kernel[1]


def _conv_transpose_macs(op):
  # Conv2DBackpropInput(input_sizes, filter, out_backprop): each input element of the
  # forward view (out_backprop) is multiplied by the whole kernel slice.
  kernel = _shape(op.inputs[1])
  grad = _shape(op.inputs[2])
  if kernel is None or grad is None:
    return None
  kh, kw, cout, _ = kernel
  return int(np.prod(grad)) * kh * kw * cout


def _matmul_macs(op):
  a = _shape(op.inputs[0])
  b = _shape(op.inputs[1])
  if a is None or b is None:
    return None
  transpose_a = op.get_attr("transpose_a") if "transpose_a" in op.node_def.attr else False
  transpose_b = op.get_attr("transpose_b") if "transpose_b" in op.node_def.attr else False
  m, k = (a[1], a[0]) if transpose_a else (a[0], a[1])
  n = b[0] if transpose_b else b[1]
  return m * n * k


def _batch_matmul_macs(op):
  a = _shape(op.inputs[0])
  b = _shape(op.inputs[1])
  out = _shape(op.outputs[0])
  if a is None or b is None or out is None:
    return None
  adj_x = op.get_attr("adj_x") if "adj_x" in op.node_def.attr else False
  k = a[-2] if adj_x else a[-1]
  del b
  return int(np.prod(out)) * k


def _einsum_macs(op):
  equation = op.get_attr("equation").decode()
  if len(op.inputs) != 2:
    return 0
  lhs, _ = equation.split("->")
  terms = lhs.split(",")
  sizes = {}
  for term, tensor in zip(terms, op.inputs):
    shape = _shape(tensor)
    if shape is None or "." in term:
      return None
    for letter, dim in zip(term, shape):
      sizes[letter] = dim
  # A two-operand contraction multiplies once per combination of all indices.
  return int(np.prod(list(sizes.values())))


_COUNTERS = {
    "Conv2D": _conv2d_macs,
    "DepthwiseConv2dNative": _depthwise_macs,
    "Conv2DBackpropInput": _conv_transpose_macs,
    "MatMul": _matmul_macs,
    "BatchMatMul": _batch_matmul_macs,
    "BatchMatMulV2": _batch_matmul_macs,
    "BatchMatMulV3": _batch_matmul_macs,
    "Einsum": _einsum_macs,
}


def _nested_graph(graph, op, attr):
  try:
    name = op.get_attr(attr).name
  except (ValueError, AttributeError):
    return None
  function = graph._get_function(name)  # pylint: disable=protected-access
  return getattr(function, "graph", None)


def _walk(graph, totals, unknown):
  for op in graph.get_operations():
    counter = _COUNTERS.get(op.type)
    if counter is not None:
      macs = counter(op)
      if macs is None:
        unknown.append(op.name)
      else:
        totals[op.type] += macs
    # Nested functions (while loops, partitioned calls) hold ops of their own.
    for attr in ("f", "body", "then_branch", "else_branch"):
      if attr not in op.node_def.attr:
        continue
      inner = _nested_graph(graph, op, attr)
      if inner is None:
        continue
      inner_types = [o.type for o in inner.get_operations()]
      if (attr == "f" and inner_types.count("Conv2D") == 1 and len(op.inputs) == 2 and
          len(op.outputs) == 1):
        # tf_keras runs grouped convolutions as a separate XLA function traced with
        # relaxed shapes; the call site has the static shapes (input, kernel) -> output.
        out, kernel = _shape(op.outputs[0]), _shape(op.inputs[1])
        if out is None or kernel is None:
          unknown.append(op.name)
        else:
          totals["Conv2D"] += int(np.prod(out)) * kernel[0] * kernel[1] * kernel[2]
        continue
      _walk(inner, totals, unknown)


def count_macs(model, input_shape, batch_size=1, breakdown=False, training=False):
  """Counts multiply-accumulates of one forward pass at inference.

  Args:
    model: a callable tf_keras model taking [B, H, W, C] float32 images.
    input_shape: (H, W, C) of the input.
    batch_size: batch size to trace with; the count is for the whole batch.
    breakdown: also return a dict op type -> MACs.
    training: count the forward pass of training instead. It differs only where
      inference takes a shortcut: a strided axial-attention pass computes just the
      queries it keeps at inference, while in training (as in deeplab2, and in the
      Axial-DeepLab paper's M-Adds) every query is computed, then subsampled.

  Returns:
    The MAC count (int), or (count, breakdown) when `breakdown`.

  Raises:
    ValueError: when an op's shapes are not static at this input size.
  """
  spec = tf.TensorSpec([batch_size] + list(input_shape), tf.float32)
  concrete = tf.function(lambda x: model(x, training=training)).get_concrete_function(spec)
  totals = collections.Counter()
  unknown = []
  _walk(concrete.graph, totals, unknown)
  if unknown:
    raise ValueError(f"cannot count MACs of ops with dynamic shapes at input_shape="
                     f"{tuple(input_shape)!r}: {unknown[:5]}")
  total = int(sum(totals.values()))
  if breakdown:
    return total, dict(totals)
  return total


def format_count(value, unit=""):
  """12345678 -> '12.35M'."""
  for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
    if abs(value) >= threshold:
      return f"{value / threshold:.2f}{suffix}{unit}"
  return f"{value}{unit}"

