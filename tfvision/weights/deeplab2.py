"""deeplab2's released checkpoints (TF2 object-based) onto tfvision models.

deeplab2 (google-research/deeplab2) saves `tf.train.Checkpoint(global_step, optimizer,
**model.checkpoint_items)`: keys are Python attribute paths of its model, e.g.
`encoder/_stage4/_block6/_conv3_bn/_batch_norm/gamma/.ATTRIBUTES/VARIABLE_VALUE`, with the
decoders and heads at the root (`semantic_decoder`, `instance_center_head_last_layer`,
...). Its ImageNet checkpoints, written by the Model Garden trainer, hold the encoder
under `backbone/_encoder/` instead. Both roots, a `.tar.gz` as deeplab2 releases them, an
extracted directory and a checkpoint prefix are read.

The table below is the whole mapping. What decides each line (deeplab2's code):
- `model/encoder/axial_blocks.py`: a block's convs are `_conv{i}_bn_act`, except its
  last, `_conv{i}_bn` (BN without activation before the residual sum); `_shortcut`;
  SE is `_squeeze_and_excite/_se_conv`; an axial block's attention is
  `_attention/_{height,width}_axis`.
- `model/layers/convolutions.py`: SAC keeps its switch under the conv (`_conv/_switch`)
  and its global contexts beside it (`_pre_global_context/convolution`).
- `model/layers/axial_layers.py`: the three similarity norms are one batch norm over
  the stacked [3, B, heads, L, L] logits (gamma [3, 1, heads, 1, 1]); the content and
  value-rpe outputs share one over the stacked [2, B, heads, L, depth] outputs (gamma
  [2, 1, heads, 1, depth]: index 0 content, 1 value rpe), which tfvision keeps as two
  norms of heads x depth channels (heads major, as deeplab2 merges them).
- `model/encoder/axial_resnet.py`: a stacked decoder (MaX-DeepLab-L's backbone) has
  blocks `_decoder_stage<i>/_block<j>` like the stages, and fuses its inputs in
  `_decoder_stage<i>_resized_fuse` (`_strided_conv_bn<k>`, `_resized_conv_bn<k>`).
- `model/layers/stems.py`: the inception stem is `_conv1_bn_act`, `_conv2_bn_act`,
  `_conv3_bn`; the single-conv stem is `_stem/_conv`, `_stem/_batch_norm`.
- `model/decoder/{aspp,panoptic_deeplab}.py`: ASPP branches `_aspp_conv{1,2,3}`,
  `_aspp_pool`, the 1x1 `_conv_bn_act`, the projection `_proj_conv_bn_act`; low-level
  projections `_low_level_conv{i}`, fusions `_fusion_conv{i}/_conv1_bn_act`; heads
  `<head>_without_last_layer/_conv1_bn_act` + `<head>_last_layer`; separable convs are
  `_depthwise/_depthwise_conv` + `_pointwise/_conv`, each with its `_batch_norm`.
Every tensor keeps its layout (deeplab2 is TensorFlow): the only transforms are the
reshape of the similarity norm and the split of the retrieved-output norm.
"""
import functools
import os
import re
import tarfile
import tempfile
from typing import Dict, List, Mapping

import numpy as np
import tensorflow as tf
import tf_keras

from tfvision.weights import mapping
from tfvision.weights.mapping import Rule

NAME = "deeplab2"
_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_ENCODER = "encoder/"
# deeplab2's dense heads (`model.checkpoint_items`): tfvision layer name -> the items
# of its conv block and of its last 1x1 conv.
_HEADS = {"semantic_head": "semantic_head_without_last_layer",
          "center_head": "instance_center_head_without_last_layer",
          "offset_head": "instance_regression_head_without_last_layer"}
_LAST_LAYERS = {"semantic_head": "semantic_last_layer",
                "center_head": "instance_center_head_last_layer",
                "offset_head": "instance_regression_head_last_layer"}


def _is_state(key: str) -> bool:
  """Optimizer slots and step counters: in the checkpoint, not model weights."""
  return (".OPTIMIZER_SLOT" in key or key.startswith("optimizer/") or
          key.split("/")[0] in ("global_step", "save_counter", "step") or
          key == "_CHECKPOINTABLE_OBJECT_GRAPH")


class CheckpointTensors(Mapping):
  """The tensors of a TF checkpoint by attribute path, read on demand.

  The encoder's root (`encoder/` in deeplab2's own checkpoints, `backbone/_encoder/`
  or `model/backbone/_encoder/` in those written by the Model Garden trainer) is
  renamed `encoder/`, so one table serves both.
  """

  def __init__(self, prefix: str):
    try:
      self._reader = tf.train.load_checkpoint(prefix)
      shapes = self._reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
      raise ValueError(f"cannot read the checkpoint: {error.__class__.__name__}: "
                       f"{str(error).splitlines()[0]}; received checkpoint={prefix!r}"
                       ) from None
    self.prefix = prefix
    raw = {key[:-len(_SUFFIX)] if key.endswith(_SUFFIX) else key: key for key in shapes}
    self.root = _encoder_root(raw)
    self._keys: Dict[str, str] = {}
    for key, full in raw.items():
      if self.root and key.startswith(self.root):
        key = _ENCODER + key[len(self.root):]
      self._keys[key] = full
    self._shapes = {key: tuple(shapes[full]) for key, full in self._keys.items()}

  def __getitem__(self, key):
    try:
      value = self._reader.get_tensor(self._keys[key])
    except (tf.errors.OpError, IndexError, ValueError) as error:
      raise ValueError(f"the checkpoint is truncated or corrupt: cannot read {key!r} "
                       f"({str(error).splitlines()[0]}); received checkpoint="
                       f"{self.prefix!r}") from None
    return np.asarray(value)

  def __iter__(self):
    return iter(self._keys)

  def __len__(self):
    return len(self._keys)

  def shape_of(self, key):
    return self._shapes[key]


def _encoder_root(keys) -> str:
  """The prefix of the encoder's variables (the path down to its `_stem`)."""
  roots = {key[:key.index("_stem/")] for key in keys if "_stem/" in key}
  if len(roots) > 1:
    raise ValueError(f"the checkpoint holds several encoders (roots {sorted(roots)}); "
                     f"tfvision reads one model")
  return roots.pop() if roots else ""


def checkpoint_prefix(path: str, workdir: str = None) -> str:
  """The checkpoint prefix in `path`: a `.tar.gz`, a directory, or a prefix.

  A `.tar.gz` is extracted into `workdir` (default: a new temporary directory).
  """
  if not isinstance(path, (str, os.PathLike)) or not str(path):
    raise ValueError(f"path must be a deeplab2 checkpoint (.tar.gz, directory or "
                     f"prefix), received path={path!r}")
  path = os.fspath(path)
  if path.endswith((".tar.gz", ".tgz", ".tar")):
    if not os.path.isfile(path):
      raise ValueError(f"no such file, received path={path!r}")
    workdir = workdir or tempfile.mkdtemp(prefix="tfvision_deeplab2_")
    try:
      with tarfile.open(path) as archive:
        archive.extractall(workdir, filter="data")
    except (tarfile.TarError, EOFError, OSError, ValueError) as error:
      raise ValueError(f"the archive is truncated or corrupt ({error}); download it "
                       f"again, received path={path!r}") from None
    path = workdir
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      indexes = sorted(os.path.join(root, name)[:-len(".index")]
                       for root, _, names in os.walk(path) for name in names
                       if name.endswith(".index"))
      if len(indexes) != 1:
        raise ValueError(f"expected one checkpoint (a *.index file) in the directory, "
                         f"found {len(indexes)}, received path={path!r}")
      latest = indexes[0]
    return latest
  if not os.path.exists(path + ".index"):
    raise ValueError(f"no checkpoint at this prefix (no {path}.index), received "
                     f"path={path!r}")
  return path


def read(path: str, workdir: str = None) -> CheckpointTensors:
  """The tensors of a deeplab2 checkpoint (see `checkpoint_prefix`)."""
  return CheckpointTensors(checkpoint_prefix(path, workdir))


def _last_convs(variables) -> Dict[str, int]:
  """The index of each block's last conv (named `_bn`, not `_bn_act`, by deeplab2)."""
  last: Dict[str, int] = {}
  for path in variables:
    match = re.match(r"(.*?stage\d+_block\d+)/(?:convs/(\d+)|conv(\d))/", path)
    if match:
      index = int(match.group(2)) + 1 if match.group(2) is not None else int(match.group(3))
      last[match.group(1)] = max(last.get(match.group(1), 0), index)
  return last


def _conv_name(last, block, index):
  return f"_conv{index}_bn" if index == last[block] else f"_conv{index}_bn_act"


def rules(variables) -> List[Rule]:
  """deeplab2's table for a model whose encoder variables start with `encoder/`."""
  last = _last_convs(variables)

  def block_conv(match, tail):
    block = match.group("block")
    index = (int(match.group("list")) + 1 if match.group("list") is not None
             else int(match.group("named")))
    kind, stage, number = re.search(r"(decoder_)?stage(\d+)_block(\d+)$", block).groups()
    return (f"{_ENCODER}_{kind or ''}stage{stage}/_block{number}/"
            f"{_conv_name(last, block, index)}/" + tail.format(**match.groupdict()))

  # Encoder stages `stage<i>_block<j>` and, in a backbone with a stacked decoder
  # (MaX-DeepLab-L), `decoder_stage<i>_block<j>`: deeplab2's `_stage<i>/_block<j>` and
  # `_decoder_stage<i>/_block<j>`. Group 1 is "" or "decoder_".
  block = (r"(?P<block>encoder/(?:decoder_)?stage\d+_block\d+)/"
           r"(?:convs/(?P<list>\d+)|conv(?P<named>\d))")
  blk = r"encoder/(|decoder_)stage(\d+)_block(\d+)"
  axial = blk + r"/attention/(height|width)_attention"
  attention = _ENCODER + "_{1}stage{2}/_block{3}/_attention/_{4}_axis/"
  bn = r"(gamma|beta|moving_mean|moving_variance)"
  head = "(semantic_head|center_head|offset_head)"
  decoder = "(semantic_decoder|instance_decoder)"
  sep = r"(?P<sep>depthwise|pointwise)"

  def sep_conv(root, what):
    # A separable conv: `_depthwise/_depthwise_conv` or `_pointwise/_conv` + norms.
    def key(match):
      part = match.group("sep")
      if what == "kernel":
        inner = "_depthwise_conv/depthwise_kernel" if part == "depthwise" else "_conv/kernel"
      else:
        inner = f"_batch_norm/{match.group('bn')}"
      return f"{root(match)}/_conv1_bn_act/_{part}/{inner}"
    return key

  def head_root(match):
    return _HEADS[match.group(1)]

  def fusion_root(match):
    return f"{match.group(1)}/_fusion_conv{int(match.group(2)) + 1}"

  return [
      # Stems: one conv (SWideRNet, Axial-ResNet 'conv7x7'), or the inception stem.
      Rule(r"encoder/stem/conv/kernel", _ENCODER + "_stem/_conv/kernel"),
      Rule(r"encoder/stem/bn/" + bn, _ENCODER + "_stem/_batch_norm/{1}"),
      Rule(r"encoder/stem_conv([12])/conv/kernel", _ENCODER + "_stem/_conv{1}_bn_act/_conv/kernel"),
      Rule(r"encoder/stem_conv([12])/bn/" + bn, _ENCODER + "_stem/_conv{1}_bn_act/_batch_norm/{2}"),
      Rule(r"encoder/stem_conv3/conv/kernel", _ENCODER + "_stem/_conv3_bn/_conv/kernel"),
      Rule(r"encoder/stem_conv3/bn/" + bn, _ENCODER + "_stem/_conv3_bn/_batch_norm/{1}"),
      # Residual blocks (basic, bottleneck, axial): convs, SAC, SE, shortcut.
      Rule(block + r"/conv/kernel", functools.partial(block_conv, tail="_conv/kernel")),
      Rule(block + r"/bn/(?P<bn>" + bn[1:-1] + ")",
           functools.partial(block_conv, tail="_batch_norm/{bn}")),
      Rule(block + r"/conv/switch/(?P<var>kernel|bias)",
           functools.partial(block_conv, tail="_conv/_switch/{var}")),
      Rule(block + r"/conv/(?P<ctx>pre|post)_context/conv/(?P<var>kernel|bias)",
           functools.partial(block_conv, tail="_{ctx}_global_context/convolution/{var}")),
      # A strided SAC block at output stride 32: a plain conv keeps the global contexts.
      Rule(block + r"/(?P<ctx>pre|post)_context/conv/(?P<var>kernel|bias)",
           functools.partial(block_conv, tail="_{ctx}_global_context/convolution/{var}")),
      Rule(blk + r"/se/fc/(kernel|bias)",
           _ENCODER + "_{1}stage{2}/_block{3}/_squeeze_and_excite/_se_conv/{4}"),
      Rule(blk + r"/shortcut/conv/kernel", _ENCODER + "_{1}stage{2}/_block{3}/_shortcut/_conv/kernel"),
      Rule(blk + r"/shortcut/bn/" + bn, _ENCODER + "_{1}stage{2}/_block{3}/_shortcut/_batch_norm/{4}"),
      # Position-sensitive axial attention.
      Rule(axial + r"/qkv_kernel", attention + "qkv_kernel"),
      Rule(axial + r"/(query|key|value)_rpe", attention + "_{5}_rpe/embeddings"),
      Rule(axial + r"/qkv_norm/" + bn, attention + "_batch_norm_qkv/{5}"),
      Rule(axial + r"/similarity_norm/" + bn, attention + "_batch_norm_similarity/{5}",
           "reshape"),
      Rule(axial + r"/content_output_norm/" + bn,
           attention + "_batch_norm_retrieved_output/{5}", "retrieved_content"),
      Rule(axial + r"/value_rpe_output_norm/" + bn,
           attention + "_batch_norm_retrieved_output/{5}", "retrieved_value_rpe"),
      # The stacked decoder's resized fusions (deeplab2 `ResizedFuse`): strided convs
      # down, or a 1x1 conv before upsampling, each with its norm.
      Rule(r"encoder/decoder_stage(\d+)_(strided|resized)_conv(\d+)/conv/kernel",
           _ENCODER + "_decoder_stage{1}_resized_fuse/_{2}_conv_bn{3}/_conv/kernel"),
      Rule(r"encoder/decoder_stage(\d+)_(strided|resized)_conv(\d+)/bn/" + bn,
           _ENCODER + "_decoder_stage{1}_resized_fuse/_{2}_conv_bn{3}/_batch_norm/{4}"),
      # ASPP (standard convs: deeplab2 has no separable ASPP) and its reduced form.
      Rule(decoder + r"/aspp/conv1x1/conv/kernel", "{1}/_aspp/_conv_bn_act/_conv/kernel"),
      Rule(decoder + r"/aspp/conv1x1/bn/" + bn, "{1}/_aspp/_conv_bn_act/_batch_norm/{2}"),
      Rule(decoder + r"/aspp/atrous_convs/(\d)/conv/kernel",
           lambda m: f"{m.group(1)}/_aspp/_aspp_conv{int(m.group(2)) + 1}/_conv_bn_act/_conv/kernel"),
      Rule(decoder + r"/aspp/atrous_convs/(\d)/bn/" + bn,
           lambda m: f"{m.group(1)}/_aspp/_aspp_conv{int(m.group(2)) + 1}/_conv_bn_act/"
                     f"_batch_norm/{m.group(3)}"),
      Rule(decoder + r"/aspp/pool_conv/conv/kernel", "{1}/_aspp/_aspp_pool/_conv_bn_act/_conv/kernel"),
      Rule(decoder + r"/aspp/pool_conv/bn/" + bn, "{1}/_aspp/_aspp_pool/_conv_bn_act/_batch_norm/{2}"),
      Rule(decoder + r"/aspp/projection/conv/kernel", "{1}/_aspp/_proj_conv_bn_act/_conv/kernel"),
      Rule(decoder + r"/aspp/projection/bn/" + bn, "{1}/_aspp/_proj_conv_bn_act/_batch_norm/{2}"),
      # Decoder: low-level projections and separable fusion convs.
      Rule(decoder + r"/projections/(\d)/conv/kernel",
           lambda m: f"{m.group(1)}/_low_level_conv{int(m.group(2)) + 1}/_conv/kernel"),
      Rule(decoder + r"/projections/(\d)/bn/" + bn,
           lambda m: f"{m.group(1)}/_low_level_conv{int(m.group(2)) + 1}/_batch_norm/"
                     f"{m.group(3)}"),
      Rule(decoder + r"/fusions/(\d)/" + sep + r"(?:/depthwise_kernel|/kernel)",
           sep_conv(fusion_root, "kernel")),
      Rule(decoder + r"/fusions/(\d)/" + sep + r"_bn/(?P<bn>" + bn[1:-1] + ")",
           sep_conv(fusion_root, "bn")),
      # Heads: a separable conv, then a 1x1 conv with bias.
      Rule(head + r"/conv/" + sep + r"(?:/depthwise_kernel|/kernel)", sep_conv(head_root, "kernel")),
      Rule(head + r"/conv/" + sep + r"_bn/(?P<bn>" + bn[1:-1] + ")", sep_conv(head_root, "bn")),
      Rule(head + r"/final_conv/(kernel|bias)", lambda m: f"{_LAST_LAYERS[m.group(1)]}/{m.group(2)}"),
  ]


def encoder_variables(model) -> Dict[str, tf.Variable]:
  """The model's named variables with its backbone renamed `encoder/`.

  A dense model's backbone is its nested model; a backbone or classifier built alone
  is all encoder (its classifier, if any, has no deeplab2 counterpart).
  """
  named = mapping.named_variables(model)
  backbones = [layer.name for layer in model.layers if isinstance(layer, tf_keras.Model)]
  renamed = {}
  for path, variable in named.items():
    if backbones:
      head, _, rest = path.partition("/")
      renamed[_ENCODER + rest if head == backbones[0] else path] = variable
    else:
      renamed[_ENCODER + path] = variable
  return renamed


def plan_model(model, tensors, source_name: str) -> mapping.Plan:
  """Plans loading `tensors` (from `read`) into `model`.

  A backbone alone (a deeplab2 ImageNet checkpoint's target, or a dense checkpoint's
  encoder for fine-tuning) drops the checkpoint's decoders and heads by name.
  """
  variables = encoder_variables(model)
  has_heads = any(not path.startswith(_ENCODER) for path in variables)
  return mapping.plan(model, tensors, rules, source_name=source_name, ignore=_is_state,
                      drop=(lambda key: False) if has_heads else
                      (lambda key: not key.startswith(_ENCODER)),
                      variables=variables)
