"""Per-op latency of a .tflite model in LiteRT (XNNPACK where it takes the op).

    from tfvision.export import profile
    ops = profile.op_profile(open("m.tflite", "rb").read(), num_threads=2)
    print(profile.format_profile(ops))

The LiteRT Python package has no op profiler (the C++ `benchmark_model --enable_op_profiling`
is not shipped in the wheel), so each op is cut out into a model of its own: the op, its
constant inputs (weights, shapes, quantization parameters unchanged) and its activation
inputs as model inputs. That model runs in the same interpreter configuration as the
whole model, with the default XNNPACK delegate, which takes the op or leaves it to the
builtin kernel exactly as it does in the whole graph (support is decided per op). The
per-op medians add up to roughly the whole model's latency; what they leave out is the
hand-over between delegated partitions and the builtin kernels.
"""
import collections
import copy
import dataclasses
import time
from typing import List

import numpy as np

from tensorflow.lite.python import schema_py_generated as tflite_schema
from tensorflow.lite.tools import flatbuffer_utils

_NAMES = {value: key for key, value in vars(tflite_schema.BuiltinOperator).items()
          if not key.startswith("_")}
_TYPES = {value: key for key, value in vars(tflite_schema.TensorType).items()
          if not key.startswith("_")}
_NUMPY = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8,
          "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
          "BOOL": np.bool_}


@dataclasses.dataclass
class OpTime:
  """One op of the model: its index, type, the type it computes on and its latency."""
  index: int
  op: str
  tensor_type: str
  output_shape: List[int]
  xnnpack: bool
  ms: float


def _is_constant(model, tensor):
  buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
  return buffer is not None and buffer.data is not None and len(buffer.data) > 0


def single_op_model(model, op_index):
  """The op at `op_index` of subgraph 0 as a model of its own (flatbuffer bytes)."""
  graph = model.subgraphs[0]
  op = graph.operators[op_index]
  tensors, buffers, remap, inputs = [], [tflite_schema.BufferT()], {}, []

  def take(index):
    if index < 0:
      return index
    if index not in remap:
      tensor = copy.copy(graph.tensors[index])
      if _is_constant(model, tensor):
        buffers.append(model.buffers[tensor.buffer])
        tensor.buffer = len(buffers) - 1
      else:
        tensor.buffer = 0
      remap[index] = len(tensors)
      tensors.append(tensor)
    return remap[index]

  new_op = copy.copy(op)
  new_op.inputs = [take(int(i)) for i in op.inputs]
  for old in op.inputs:
    if old >= 0 and not _is_constant(model, graph.tensors[old]) and remap[old] not in inputs:
      inputs.append(remap[old])
  new_op.outputs = [take(int(i)) for i in op.outputs]
  new_op.intermediates = None
  sub = tflite_schema.SubGraphT()
  sub.tensors, sub.operators = tensors, [new_op]
  sub.inputs, sub.outputs = inputs, list(new_op.outputs)
  result = tflite_schema.ModelT()
  result.version = model.version
  result.operatorCodes = model.operatorCodes
  result.subgraphs = [sub]
  result.buffers = buffers
  result.description = model.description
  return bytes(flatbuffer_utils.convert_object_to_bytearray(result))


def median_ms(fn, runs, warmup):
  """Median wall time of `fn()` in milliseconds over `runs` calls after `warmup` calls."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1000.0 * float(np.median(times))


def op_profile(flatbuffer: bytes, num_threads: int = 2, runs: int = 10,
               warmup: int = 2) -> List[OpTime]:
  """Median latency of every op of subgraph 0, each run alone (see the module docstring).

  Args:
    flatbuffer: a .tflite model.
    num_threads: LiteRT interpreter threads.
    runs, warmup: timed and untimed invocations per op.
  """
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  model = flatbuffer_utils.convert_bytearray_to_object(flatbuffer)
  graph = model.subgraphs[0]
  rng = np.random.RandomState(0)
  result = []
  for index, op in enumerate(graph.operators):
    code = model.operatorCodes[op.opcodeIndex]
    name = _NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
    first = next((int(i) for i in op.inputs if i >= 0), None)
    tensor_type = _TYPES.get(graph.tensors[first].type, "?") if first is not None else "-"
    interpreter = Interpreter(model_content=single_op_model(model, index),
                              num_threads=num_threads)
    interpreter.allocate_tensors()
    delegated = any(op_details["op_name"] == "DELEGATE"
                    for op_details in interpreter._get_ops_details())  # pylint: disable=protected-access
    for detail in interpreter.get_input_details():
      dtype = detail["dtype"]
      if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        value = rng.randint(max(info.min, -128), min(info.max, 127) + 1, detail["shape"])
      else:
        value = rng.standard_normal(detail["shape"])
      interpreter.set_tensor(detail["index"], value.astype(dtype))
    output = graph.tensors[int(op.outputs[0])]
    result.append(OpTime(index=index, op=name, tensor_type=tensor_type,
                         output_shape=[int(d) for d in output.shape],
                         xnnpack=delegated,
                         ms=median_ms(interpreter.invoke, runs, warmup)))
  return result


def summarize(ops: List[OpTime]):
  """{(op, tensor type, xnnpack): (count, total ms)}, most expensive first."""
  totals = collections.defaultdict(lambda: [0, 0.0])
  for op in ops:
    entry = totals[(op.op, op.tensor_type, op.xnnpack)]
    entry[0] += 1
    entry[1] += op.ms
  return dict(sorted(((k, tuple(v)) for k, v in totals.items()), key=lambda kv: -kv[1][1]))


def format_profile(ops: List[OpTime], top: int = 25) -> str:
  """The per-op-type table (count, total ms, share) of an `op_profile` result."""
  total = sum(op.ms for op in ops) or 1.0
  lines = [f"sum of per-op medians: {total:.1f} ms over {len(ops)} ops",
           f"{'op':24s} {'type':8s} {'XNNPACK':8s} {'count':>6s} {'ms':>9s} {'share':>6s}"]
  for (name, tensor_type, delegated), (count, ms) in list(summarize(ops).items())[:top]:
    lines.append(f"{name:24s} {tensor_type:8s} {'yes' if delegated else 'no':8s} "
                 f"{count:6d} {ms:9.2f} {100 * ms / total:5.1f}%")
  return "\n".join(lines)
