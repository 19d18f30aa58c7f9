"""TFLite export: float32, float16, dynamic-range and full-integer int8, with an ops report.

    from tfvision.export import export_tflite
    result = export_tflite(model, "m.tflite", input_size=224, quantization="int8",
                           representative_data="shapes")
    print(result.ops_report.format())

The TFLite model takes one float32 input "image" [1, H, W, 3] with pixels in [0, 255]
(the models normalise inside) at a fixed size, and returns the task's raw outputs by
name (`logits`; `semantic_logits`; `semantic_logits`, `center_heatmap`, `offsets`):
argmax and panoptic post-processing run outside the interpreter, where the app needs
them. Quantization types (`QUANTIZATIONS`):

- "float32": no optimisation;
- "float16": float16 weights (`Optimize.DEFAULT` + `supported_types=[float16]`);
- "dynamic": int8 weights, float activations quantised on the fly (`Optimize.DEFAULT`);
- "int8": full-integer: int8 weights and activations calibrated on representative
  images, integer-only builtin ops (`TFLITE_BUILTINS_INT8`), so a model that cannot be
  fully quantised fails to convert instead of silently keeping float ops. Input and
  output stay float32 unless `integer_io=True` (then uint8 input pixels and int8
  outputs, as Model Garden's "int8_full" gives uint8). Calibration ranges that collapse
  to (almost) nothing are widened so that XNNPACK accepts the model (see
  `_xnnpack_safe_int8`). `keep_float_ops` keeps chosen op types in float32 (the
  quantizer's denylist; "auto" picks those XNNPACK cannot run in int8): LiteRT's
  XNNPACK has no int8 BATCH_MATMUL with two activation inputs, SOFTMAX, GELU or
  LayerNorm pieces, and their builtin int8 kernels made Pale-T int8 5.4x slower than
  float32 (BENCHMARKS.md, issue 19).

The ops report (`OpsReport`) says, per op type, how many instances compute on int8 and
on float tensors and how many LiteRT's XNNPACK delegate leaves to the builtin kernels;
`tfvision.export.profile.op_profile` times every op.

These follow `official.vision.serving.export_tflite_lib.convert_tflite_model`'s
settings; that function is not called because it builds its representative dataset from
a Model Garden `ExperimentConfig` task, while ours come from the built-in dataset, a folder
or arrays (`tfvision/export/data.py`). Conversion goes through a module holding only the
model's variables (see `serving._ModelVariables`: 6x faster than saving the Keras object).
"""
import collections
import dataclasses
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from tensorflow.lite.python import schema_py_generated as tflite_schema
from tensorflow.lite.python.convert import mlir_quantize
from tensorflow.lite.tools import flatbuffer_utils

from tfvision.export import contract, data, serving

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
INPUT_NAME = "image"


def check_quantization(quantization):
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"quantization must be one of {list(QUANTIZATIONS)}, received "
                     f"quantization={quantization!r}")
  return quantization


_INTEGER_TYPES = frozenset({"INT8", "UINT8", "INT16"})
_FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16"})
_BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


def _kind(tensor_type):
  """"int8" (any quantized integer type), "float" or "other" (int32 shapes, bool)."""
  if tensor_type in _INTEGER_TYPES:
    return "int8"
  return "float" if tensor_type in _FLOAT_TYPES else "other"


@dataclasses.dataclass
class OpsReport:
  """The operators of a .tflite flatbuffer: types, kinds and where LiteRT runs them.

  Attributes:
    ops: op name -> count (builtin names, custom ops by their custom code).
    op_types: op name -> sorted tensor types of its first input (e.g. ["INT8"]).
    custom_ops: names of custom / Flex ops (need extra runtime support).
    float_ops: compute ops (not QUANTIZE / DEQUANTIZE) running on float tensors.
    kinds: op name -> {"int8": n, "float": n, "other": n}: how many of its instances
      compute on quantized integers, on floats, or on neither (int32 shape arithmetic),
      read from each instance's first input.
    outside_xnnpack: op name -> how many of its instances LiteRT's default CPU delegate
      (XNNPACK) leaves to the builtin kernels; None when not checked (`xnnpack=False`).
      Every op outside splits the delegated graph and runs the slower reference kernel.
    inputs, outputs: name, shape and type of the model's inputs and outputs.
    size_bytes: flatbuffer size.
  """
  ops: Dict[str, int]
  op_types: Dict[str, List[str]]
  custom_ops: List[str]
  float_ops: List[str]
  kinds: Dict[str, Dict[str, int]]
  outside_xnnpack: Optional[Dict[str, int]]
  inputs: List[Dict]
  outputs: List[Dict]
  size_bytes: int

  def to_dict(self):
    return dataclasses.asdict(self)

  @property
  def int8_ops(self):
    """Compute ops (not QUANTIZE / DEQUANTIZE) with an instance on quantized integers."""
    return sorted(name for name, kinds in self.kinds.items()
                  if name not in _BOUNDARY_OPS and kinds.get("int8"))

  def format(self):
    lines = [f"size: {self.size_bytes:,d} bytes"]
    for kind, items in (("input", self.inputs), ("output", self.outputs)):
      for item in items:
        lines.append(f"{kind}: {item['name']} {item['shape']} {item['type']}")
    checked = self.outside_xnnpack is not None
    lines.append("ops (count; instances computing on int8 / float / other tensors"
                 + ("; outside XNNPACK" if checked else "") + "):")
    for name, count in sorted(self.ops.items(), key=lambda kv: (-kv[1], kv[0])):
      kinds = self.kinds.get(name, {})
      line = (f"  {name:28s} {count:5d}  int8 {kinds.get('int8', 0):4d}  "
              f"float {kinds.get('float', 0):4d}  other {kinds.get('other', 0):4d}")
      if checked:
        line += f"  outside XNNPACK {self.outside_xnnpack.get(name, 0):4d}"
      lines.append(line)
    lines.append(f"custom/flex ops: {', '.join(self.custom_ops) or 'none'}")
    lines.append(f"int8 compute ops: {', '.join(self.int8_ops) or 'none'}")
    lines.append(f"float compute ops: {', '.join(self.float_ops) or 'none'}")
    if checked:
      outside = sum(self.outside_xnnpack.values())
      lines.append(f"outside XNNPACK: {outside} of {sum(self.ops.values())} ops"
                   + (": " + ", ".join(f"{name} x{count}" for name, count in sorted(
                       self.outside_xnnpack.items(), key=lambda kv: (-kv[1], kv[0])))
                      if outside else ""))
    return "\n".join(lines)


def xnnpack_delegated(flatbuffer: bytes, num_threads: int = 1) -> List[bool]:
  """For every op of the main subgraph, in order: does XNNPACK run it?

  Builds a LiteRT interpreter with its default XNNPACK delegate and node fusion off, so
  each delegated op becomes its own delegate node with that op's outputs; an op is
  delegated when a delegate node produces its outputs. Which ops are supported does not
  depend on fusion, only how they are grouped into partitions.

  Args:
    flatbuffer: a .tflite model.
    num_threads: interpreter threads (does not change the answer).
  """
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  interpreter = Interpreter(model_content=bytes(flatbuffer), num_threads=num_threads,
                            experimental_disable_delegate_node_fusion=True)
  interpreter.allocate_tensors()
  nodes = interpreter._get_ops_details()  # pylint: disable=protected-access
  delegated_outputs = set()
  for node in nodes:
    if node["op_name"] == "DELEGATE":
      delegated_outputs.update(int(t) for t in node["outputs"])
  return [bool(set(int(t) for t in node["outputs"]) & delegated_outputs)
          for node in nodes if node["op_name"] != "DELEGATE"]


def ops_report(flatbuffer: bytes, xnnpack: bool = False) -> OpsReport:
  """Reads the operators and tensor types of a .tflite flatbuffer.

  Args:
    flatbuffer: the .tflite model.
    xnnpack: also find which ops XNNPACK leaves to the builtin kernels
      (`xnnpack_delegated`: builds an interpreter, so it costs a model load).
  """
  # pylint: disable=import-outside-toplevel
  from ai_edge_litert import schema_py_generated as schema
  builtin_names = {value: key for key, value in vars(schema.BuiltinOperator).items()
                   if not key.startswith("_")}
  type_names = {value: key for key, value in vars(schema.TensorType).items()
                if not key.startswith("_")}
  model = schema.Model.GetRootAs(flatbuffer, 0)
  codes = []
  for index in range(model.OperatorCodesLength()):
    code = model.OperatorCodes(index)
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    name = builtin_names.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
      name = f"CUSTOM:{code.CustomCode().decode()}"
    codes.append(name)
  delegated = xnnpack_delegated(flatbuffer) if xnnpack else None
  ops = collections.Counter()
  op_types = collections.defaultdict(set)
  kinds = collections.defaultdict(collections.Counter)
  outside = collections.Counter()
  inputs, outputs = [], []
  for sub_index in range(model.SubgraphsLength()):
    graph = model.Subgraphs(sub_index)

    def _tensor(i, graph=graph):
      tensor = graph.Tensors(i)
      return {"name": tensor.Name().decode(), "shape": tensor.ShapeAsNumpy().tolist(),
              "type": type_names.get(tensor.Type(), str(tensor.Type()))}

    for op_index in range(graph.OperatorsLength()):
      op = graph.Operators(op_index)
      name = codes[op.OpcodeIndex()]
      ops[name] += 1
      first = [i for i in op.InputsAsNumpy().tolist() if i >= 0][:1]
      if first:
        tensor_type = type_names.get(graph.Tensors(first[0]).Type(), "?")
        op_types[name].add(tensor_type)
        kinds[name][_kind(tensor_type)] += 1
      if delegated is not None and sub_index == 0 and not delegated[op_index]:
        outside[name] += 1
    if sub_index == 0:
      inputs = [_tensor(i) for i in graph.InputsAsNumpy().tolist()]
      outputs = [_tensor(i) for i in graph.OutputsAsNumpy().tolist()]
      if model.SignatureDefsLength():
        # Name inputs and outputs as the signature runner does ("image", "logits", ...).
        signature = model.SignatureDefs(0)
        inputs = [dict(_tensor(m.TensorIndex()), name=m.Name().decode())
                  for m in (signature.Inputs(j) for j in range(signature.InputsLength()))]
        outputs = [dict(_tensor(m.TensorIndex()), name=m.Name().decode())
                   for m in (signature.Outputs(j) for j in range(signature.OutputsLength()))]
  custom = sorted(name for name in ops if name.startswith("CUSTOM:") or "FLEX" in name)
  float_ops = sorted(name for name, types in op_types.items()
                     if name not in _BOUNDARY_OPS and types & _FLOAT_TYPES)
  return OpsReport(ops=dict(ops), op_types={k: sorted(v) for k, v in op_types.items()},
                   custom_ops=custom, float_ops=float_ops,
                   kinds={k: dict(v) for k, v in kinds.items()},
                   outside_xnnpack=dict(outside) if delegated is not None else None,
                   inputs=inputs, outputs=outputs, size_bytes=len(flatbuffer))


@dataclasses.dataclass
class TFLiteExport:
  """Result of `export_tflite`: the flatbuffer, where it was written, what it holds."""
  flatbuffer: bytes
  path: Optional[str]
  quantization: str
  task: str
  input_size: tuple
  output_names: tuple
  ops_report: OpsReport


# XNNPACK, LiteRT's default CPU delegate, refuses a quantized convolution or fully
# connected op whose requantization scale input_scale * filter_scale / output_scale is
# 256 or more ("failed to create XNNPACK runtime" at AllocateTensors). The converter
# produces one when an op's output is zero on every calibration image (a ReLU
# bottleneck whose units are all dead: BoTNet-T3's tiny 2-channel SE after a short fit)
# because the calibrated range, and with it the output scale, collapses to ~1e-8.
_XNNPACK_MAX_REQUANTIZATION = 256.0
# Widened ranges give such ops this requantization scale: far inside XNNPACK's limit,
# and the widened range is still tiny next to any real activation's (it only has to
# hold values that were never seen in calibration).
_WIDENED_REQUANTIZATION = 32.0
_WEIGHTED_OPS = (tflite_schema.BuiltinOperator.CONV_2D,
                 tflite_schema.BuiltinOperator.DEPTHWISE_CONV_2D,
                 tflite_schema.BuiltinOperator.FULLY_CONNECTED)


def _opcode(model, op):
  code = model.operatorCodes[op.opcodeIndex]
  return max(code.builtinCode, code.deprecatedBuiltinCode)


def _tensor_name(tensor):
  name = tensor.name
  return name.decode() if isinstance(name, bytes) else name


def collapsed_outputs(flatbuffer: bytes) -> Dict[str, float]:
  """Outputs of quantized conv / FC ops that XNNPACK would refuse.

  Args:
    flatbuffer: a full-integer .tflite model.
  Returns:
    {output tensor name: the smallest calibration range (max - min) that brings the
    op's requantization scale down to `_WIDENED_REQUANTIZATION`}.
  """
  model = flatbuffer_utils.convert_bytearray_to_object(flatbuffer)
  needed = {}
  for graph in model.subgraphs:
    for op in graph.operators:
      if _opcode(model, op) not in _WEIGHTED_OPS:
        continue
      params = [graph.tensors[i].quantization for i in op.inputs[:2]]
      output = graph.tensors[op.outputs[0]]
      if any(p is None or p.scale is None or not len(p.scale)
             for p in params + [output.quantization]):
        continue
      product = float(params[0].scale[0]) * float(np.max(params[1].scale))
      if product / float(output.quantization.scale[0]) >= _XNNPACK_MAX_REQUANTIZATION:
        needed[_tensor_name(output)] = 255.0 * product / _WIDENED_REQUANTIZATION
  return needed


def widen_calibration(calibrated: bytes, ranges: Dict[str, float]) -> bytes:
  """A calibrated (not yet quantized) model with the named tensors' ranges widened.

  Args:
    calibrated: the converter's calibrated float flatbuffer (min / max per tensor).
    ranges: {tensor name: minimum max - min}, from `collapsed_outputs`.
  """
  model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
  found = set()
  for graph in model.subgraphs:
    for tensor in graph.tensors:
      name = _tensor_name(tensor)
      params = tensor.quantization
      if name not in ranges or params is None or params.min is None or not len(params.min):
        continue
      low, high = float(np.min(params.min)), float(np.max(params.max))
      params.max = np.full_like(params.max, max(high, low + ranges[name]))
      found.add(name)
  missing = sorted(set(ranges) - found)
  if missing:
    raise RuntimeError(f"int8 repair: no calibrated range for tensors {missing}")
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


AUTO = "auto"


def check_keep_float_ops(keep_float_ops, available):
  """Validates op types to keep in float against the op types the model has.

  Args:
    keep_float_ops: builtin op names (e.g. ["SOFTMAX", "BATCH_MATMUL"]).
    available: the op types of the (float) model.
  Returns:
    The sorted, de-duplicated names.
  """
  names = sorted(set(keep_float_ops))
  compute = sorted(set(available) - _BOUNDARY_OPS)
  unknown = [name for name in names if name not in compute]
  if unknown:
    raise ValueError(f"keep_float_ops names op types that this model does not have: "
                     f"{unknown}; its op types are {compute}, received "
                     f"keep_float_ops={list(keep_float_ops)!r}")
  return names


def mostly_outside_xnnpack(report: OpsReport) -> List[str]:
  """Op types most of whose int8 instances XNNPACK leaves to the builtin kernels.

  What `keep_float_ops="auto"` keeps in float: in LiteRT 2.x these are int8
  BATCH_MATMUL with two activation inputs, SOFTMAX, GELU and LayerNorm's
  SQUARED_DIFFERENCE / RSQRT / SUB, whose float forms XNNPACK runs. An op type with
  only a few instances outside (LayerNorm's epsilon ADD among the residual ADDs) stays
  int8: keeping every ADD in float would add a DEQUANTIZE / QUANTIZE pair per residual.
  """
  outside = report.outside_xnnpack or {}
  return sorted(name for name, kinds in report.kinds.items()
                if name not in _BOUNDARY_OPS and kinds.get("int8")
                and outside.get(name, 0) * 2 > kinds["int8"])


def _xnnpack_safe_int8(converter, keep_float_ops=()):
  """`converter.convert()` for full-integer int8, widening collapsed calibration ranges.

  The converter's own path (calibrate, then the MLIR quantizer) runs unchanged; when
  the quantized model has conv / FC ops XNNPACK would refuse, the ranges of their
  outputs are widened in the calibrated model and it is quantized again. Ops whose
  calibration saw real values are untouched, so a model without collapsed ranges
  converts to the same bytes as before. `keep_float_ops` is the quantizer's op
  denylist: those op types stay float32, between a DEQUANTIZE and a QUANTIZE; a name
  that is not one of the model's op types raises a ValueError listing the ones it has.
  "auto" quantizes everything first and then keeps `mostly_outside_xnnpack` in float.
  """
  original = converter._quantize  # pylint: disable=protected-access
  auto = keep_float_ops == AUTO

  def quantize(result, input_type, output_type, activations_type, bias_type, allow_float,
               enable_variable_quantization, debug_options):
    converter._experimental_calibrate_only = True  # pylint: disable=protected-access
    try:
      calibrated = original(result, input_type, output_type, activations_type, bias_type,
                            allow_float, enable_variable_quantization, debug_options)
    finally:
      converter._experimental_calibrate_only = False  # pylint: disable=protected-access
    denylist = [] if auto else check_keep_float_ops(keep_float_ops,
                                                    ops_report(calibrated).ops)

    def requantize(model):
      return mlir_quantize(
          model,
          converter._experimental_disable_per_channel,  # pylint: disable=protected-access
          input_data_type=input_type, output_data_type=output_type,
          denylisted_ops=denylist or None,
          enable_variable_quantization=enable_variable_quantization,
          disable_per_channel_for_dense_layers=(
              converter._experimental_disable_per_channel_quantization_for_dense_layers),  # pylint: disable=protected-access
          debug_options_str=debug_options.SerializeToString())

    quantized = requantize(calibrated)
    ranges = collapsed_outputs(quantized)
    if ranges:
      calibrated = widen_calibration(calibrated, ranges)
      quantized = requantize(calibrated)
    if auto:
      denylist = mostly_outside_xnnpack(ops_report(quantized, xnnpack=True))
      if denylist:
        quantized = requantize(calibrated)
    return quantized

  converter._quantize = quantize  # pylint: disable=protected-access
  return converter.convert()


def representative_dataset(images: np.ndarray):
  """A converter `representative_dataset` over uint8 [N, H, W, 3] images (one per step)."""
  def _generator():
    for image in images:
      yield {INPUT_NAME: image[None].astype("float32")}
  return _generator


def export_tflite(model, output_path: Optional[str] = None, *, input_size=None,
                  quantization: str = "float32", representative_data=None,
                  representative_count: int = 100, task: Optional[str] = None,
                  integer_io: bool = False, keep_float_ops: Sequence[str] = (),
                  xnnpack_report: bool = True) -> TFLiteExport:
  """Converts a Keras model to TFLite at a fixed input size.

  Args:
    model: tf_keras model following the export contract (tfvision/export/contract.py).
    output_path: where to write the .tflite file (None: return the bytes only).
    input_size: int or (height, width); required unless the model fixes its size.
    quantization: one of QUANTIZATIONS.
    representative_data: int8 calibration images: "shapes" (built-in tfvision_shapes,
      train split), a folder of images, or an array of [H, W, 3] images. Required for
      "int8", ignored otherwise.
    representative_count: how many calibration images to use.
    task: "classification", "semantic" or "panoptic"; None reads it from the outputs.
    integer_io: int8 only: uint8 input and int8 outputs instead of float32.
    keep_float_ops: int8 only: builtin op types the quantizer keeps in float32 (its
      denylist), e.g. ("SOFTMAX",) where their int8 kernels are slower or less accurate
      than float; each must be an op type of the model (ValueError listing them if not).
      "auto": the op types most of whose int8 instances XNNPACK cannot run
      (`mostly_outside_xnnpack`), found by quantizing once and checking.
    xnnpack_report: check which ops LiteRT's XNNPACK delegate runs for the ops report
      (`OpsReport.outside_xnnpack`; loads the model once in an interpreter).

  Returns:
    A TFLiteExport.
  """
  if not isinstance(model, tf_keras.Model):
    raise ValueError(f"model must be a tf_keras.Model, received model={type(model)!r}")
  check_quantization(quantization)
  if quantization == "int8" and representative_data is None:
    raise ValueError("int8 quantization calibrates activations on representative images: "
                     "pass 'shapes', a folder or an array, received "
                     "representative_data=None")
  if integer_io and quantization != "int8":
    raise ValueError(f"integer_io needs quantization='int8', received "
                     f"quantization={quantization!r}")
  if keep_float_ops != AUTO and (isinstance(keep_float_ops, str) or not all(
      isinstance(name, str) for name in keep_float_ops)):
    raise ValueError(f"keep_float_ops must be 'auto' or a list of TFLite op type names "
                     f"such as ['SOFTMAX'], received keep_float_ops={keep_float_ops!r}")
  if keep_float_ops and quantization != "int8":
    raise ValueError(f"keep_float_ops needs quantization='int8', received "
                     f"quantization={quantization!r}")
  spec = serving.serving_spec(model, task=task, input_size=input_size, require_size=True)
  height, width = spec.input_size
  calibration = None
  if quantization == "int8":
    calibration = data.load_images(representative_data, representative_count,
                                   (height, width), split="train")

  holder = serving._ModelVariables(model)  # pylint: disable=protected-access
  output_names = contract.RAW_OUTPUTS[spec.task]

  @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32,
                                              name=INPUT_NAME)])
  def serve(image):
    return contract.raw_outputs(holder(image), spec.task)

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [serve.get_concrete_function()], holder)
  if quantization != "float32":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if quantization == "float16":
    converter.target_spec.supported_types = [tf.float16]
  if quantization == "int8":
    converter.representative_dataset = representative_dataset(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if integer_io:
      converter.inference_input_type = tf.uint8
      converter.inference_output_type = tf.int8
  flatbuffer = (_xnnpack_safe_int8(converter, keep_float_ops) if quantization == "int8"
                else converter.convert())
  if output_path:
    directory = os.path.dirname(output_path)
    if directory:
      tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(output_path, "wb") as f:
      f.write(flatbuffer)
  return TFLiteExport(flatbuffer=flatbuffer, path=output_path, quantization=quantization,
                      task=spec.task, input_size=(height, width), output_names=output_names,
                      ops_report=ops_report(flatbuffer, xnnpack=xnnpack_report))
