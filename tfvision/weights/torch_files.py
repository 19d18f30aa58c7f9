"""Reading (and writing) PyTorch weight files without PyTorch: safetensors and `.pth`.

safetensors (https://github.com/huggingface/safetensors, "Format"): an 8-byte
little-endian unsigned header length N, then N bytes of UTF-8 JSON mapping each tensor
name to {"dtype", "shape", "data_offsets": [begin, end]} (plus an optional
"__metadata__" of strings), then the data buffer; offsets are relative to the buffer's
start and every tensor is stored little-endian, row-major. Reading it needs only the
standard library and numpy: bfloat16, which numpy lacks, is widened to float32 by
shifting its 16 bits into the high half of a float32 (exact). A file that does not
follow the format raises ValueError naming the path and what is wrong.

`.pth` / `.pt` / `.bin` are pickles that only PyTorch reads; `read_pth` uses torch when it
is installed and otherwise says how to get it (or to use the `.safetensors` file).
"""
import json
import os
import struct
from typing import Dict, Mapping, Optional

import numpy as np

# safetensors dtype name -> little-endian numpy dtype (BF16 is widened separately).
_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
    "BOOL": "?",
}
_ITEMSIZE = {**{name: np.dtype(code).itemsize for name, code in _DTYPES.items()}, "BF16": 2}
# (numpy kind, item size) -> safetensors dtype name, whatever the array's byte order.
_NUMPY_TO_SAFETENSORS = {(np.dtype(code).kind, np.dtype(code).itemsize): name
                         for name, code in _DTYPES.items()}
SAFETENSORS_EXTENSIONS = (".safetensors",)
PICKLE_EXTENSIONS = (".pth", ".pt", ".bin")
_HEADER_LIMIT = 100 * 1024 * 1024   # the reference implementation's limit on N


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
  """uint16 bfloat16 bit patterns -> float32 (exact: bfloat16 is float32's top half)."""
  return (bits.astype(np.uint32) << 16).view(np.float32)


def float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
  """float32 -> uint16 bfloat16 bit patterns, rounded to nearest even (NaN stays NaN)."""
  bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
  rounded = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & 1))) >> 16
  nan = np.isnan(x)
  return np.where(nan, (bits >> 16) | 0x40, rounded).astype(np.uint16)


def read_safetensors(path) -> Dict[str, np.ndarray]:
  """All tensors of a `.safetensors` file as numpy arrays (bfloat16 as float32).

  Raises:
    ValueError: naming `path`, when the file is truncated or its header is not valid.
  """
  path = os.fspath(path)
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    if size < 8:
      raise ValueError(f"{path}: not a safetensors file: {size} bytes, shorter than the "
                       f"8-byte header length")
    (header_size,) = struct.unpack("<Q", f.read(8))
    if header_size > size - 8:
      raise ValueError(f"{path}: not a safetensors file or truncated: its header length "
                       f"{header_size} is beyond the file size ({size} bytes)")
    if header_size > _HEADER_LIMIT:
      raise ValueError(f"{path}: header length {header_size} exceeds the safetensors "
                       f"limit of {_HEADER_LIMIT} bytes")
    raw = f.read(header_size)
    try:
      header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
      raise ValueError(f"{path}: the safetensors header is not valid JSON ({error})") from None
    if not isinstance(header, dict):
      raise ValueError(f"{path}: the safetensors header must be a JSON object, received "
                       f"{type(header).__name__}")
    data_start = 8 + header_size
    data_size = size - data_start
    tensors = {}
    for name, entry in header.items():
      if name == "__metadata__":
        continue
      dtype, shape, (begin, end) = _check_entry(path, name, entry)
      nbytes = int(np.prod(shape, dtype=np.int64)) * _ITEMSIZE[dtype]
      if end - begin != nbytes:
        raise ValueError(f"{path}: tensor {name!r} ({dtype}, shape {shape}) needs {nbytes} "
                         f"bytes, its data_offsets [{begin}, {end}] hold {end - begin}")
      if end > data_size:
        raise ValueError(f"{path}: truncated: tensor {name!r} data [{begin}, {end}) runs past "
                         f"the end of the file (data buffer of {data_size} bytes)")
      f.seek(data_start + begin)
      buffer = f.read(nbytes)
      if dtype == "BF16":
        array = bfloat16_bits_to_float32(np.frombuffer(buffer, dtype="<u2"))
      else:
        array = np.frombuffer(buffer, dtype=_DTYPES[dtype]).astype(
            np.dtype(_DTYPES[dtype]).newbyteorder("="), copy=True)
      tensors[name] = array.reshape(shape)
  return tensors


def _check_entry(path, name, entry):
  """(dtype, shape, offsets) of one header entry, or ValueError saying what is wrong."""
  if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
    raise ValueError(f"{path}: header entry {name!r} must have dtype, shape and "
                     f"data_offsets, received {entry!r}")
  dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
  if dtype not in _ITEMSIZE:
    raise ValueError(f"{path}: tensor {name!r} has dtype {dtype!r}, which is not one of "
                     f"{sorted(_ITEMSIZE)}")
  if (not isinstance(shape, list) or
      not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
    raise ValueError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
  if (not isinstance(offsets, list) or len(offsets) != 2 or
      not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets) or
      not 0 <= offsets[0] <= offsets[1]):
    raise ValueError(f"{path}: tensor {name!r} has invalid data_offsets {offsets!r}")
  return dtype, tuple(shape), tuple(offsets)


def write_safetensors(path, tensors: Mapping[str, np.ndarray],
                      metadata: Optional[Mapping[str, str]] = None, bfloat16=()):
  """Writes numpy arrays as a `.safetensors` file (tests and benchmarks: random weights
  in a source's format).

  Args:
    path: output file.
    tensors: name -> array (float64/32/16, signed / unsigned integers, bool).
    metadata: optional string -> string "__metadata__".
    bfloat16: names of float arrays to store as BF16 (rounded to nearest even), or True
      for every floating-point array.
  """
  path = os.fspath(path)
  header, chunks, offset = {}, [], 0
  if metadata:
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
  for name in sorted(tensors):
    array = np.asarray(tensors[name])
    as_bf16 = (bfloat16 is True and array.dtype.kind == "f") or (
        bfloat16 is not True and name in bfloat16)
    if as_bf16 or array.dtype.name == "bfloat16":
      if array.dtype.name == "bfloat16":   # ml_dtypes.bfloat16: already the bit pattern
        bits = array.view(np.uint16)
      elif array.dtype.kind == "f":
        bits = float32_to_bfloat16_bits(array.astype(np.float32))
      else:
        raise ValueError(f"bfloat16 names floating-point arrays only, received "
                         f"{name!r} of dtype {array.dtype}")
      dtype, data = "BF16", bits.astype("<u2").tobytes()
    else:
      key = (array.dtype.kind, array.dtype.itemsize)
      if key not in _NUMPY_TO_SAFETENSORS:
        raise ValueError(f"cannot store {name!r} of dtype {array.dtype} in safetensors "
                         f"(supported: {sorted(_ITEMSIZE)})")
      dtype = _NUMPY_TO_SAFETENSORS[key]
      data = np.ascontiguousarray(array, dtype=_DTYPES[dtype]).tobytes()
    header[name] = {"dtype": dtype, "shape": list(array.shape),
                    "data_offsets": [offset, offset + len(data)]}
    chunks.append(data)
    offset += len(data)
  encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
  # The reference writer pads the header with spaces so the data starts 8-byte aligned.
  encoded += b" " * (-len(encoded) % 8)
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(encoded)))
    f.write(encoded)
    for chunk in chunks:
      f.write(chunk)


def read_pth(path) -> Dict[str, np.ndarray]:
  """A PyTorch pickle's state dict as numpy arrays (needs torch; bfloat16 -> float32).

  A top-level "state_dict" or "model" entry (training checkpoints) is unwrapped, and a
  "module." prefix on every key (DataParallel) is removed.
  """
  path = os.fspath(path)
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise ValueError(
        f"{path}: reading a PyTorch pickle (.pth / .pt / .bin) needs torch, which is not "
        f"installed: `pip install torch` (the CPU build is enough), or use the "
        f"`.safetensors` file of the same weights, which tfvision reads without torch"
    ) from None
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as error:  # pylint: disable=broad-except
    raise ValueError(f"{path}: torch.load could not read it as a weights file "
                     f"({type(error).__name__}: {error})") from None
  for wrapper in ("state_dict", "model"):
    if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
      state = state[wrapper]
      break
  if not isinstance(state, dict):
    raise ValueError(f"{path}: expected a state dict (name -> tensor), received "
                     f"{type(state).__name__}")
  if state and all(str(k).startswith("module.") for k in state):
    state = {str(k)[len("module."):]: v for k, v in state.items()}
  tensors = {}
  for name, value in state.items():
    if not isinstance(value, torch.Tensor):
      raise ValueError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:
      value = value.float()
    tensors[str(name)] = value.numpy().copy()
  return tensors


def read_weights_file(path) -> Dict[str, np.ndarray]:
  """Reads a weights file by its extension: `.safetensors`, or `.pth` / `.pt` / `.bin`."""
  path = os.fspath(path)
  extension = os.path.splitext(path)[1].lower()
  if extension in SAFETENSORS_EXTENSIONS:
    return read_safetensors(path)
  if extension in PICKLE_EXTENSIONS:
    return read_pth(path)
  raise ValueError(f"unknown weights file extension {extension!r}; accepted: "
                   f"{', '.join(SAFETENSORS_EXTENSIONS + PICKLE_EXTENSIONS)}, received "
                   f"path={path!r}")
