"""The ResNeSt authors' ImageNet weights, as timm ships them, onto tfvision's ResNeSt.

Sources of each fact:

- Key names and tensor layouts: the authors' PyTorch code (zhanghang1989/ResNeSt,
  `resnest/torch/models/resnet.py` and `splat.py`), which produced the released files;
  timm's `resnest.py` + `layers/split_attn.py` (whose `.safetensors` on the Hugging Face
  hub are what `Release.url` points at) keep the authors' key names so that the
  authors' `.pth` files load unchanged, and the Gluon-trained ResNeSt-14 / 26 were
  converted into the same layout. Either file format reads through this table.
- The stem: `conv1` is `Sequential(conv, BN, ReLU, conv, BN, ReLU, conv)`, so its
  convs are `conv1.0`, `conv1.3`, `conv1.6` and its BNs `conv1.1`, `conv1.4`; the BN
  after the third conv is the top-level `bn1` (resnet.py `ResNet.__init__`).
- A block `layer{stage}.{index}` (index from 0): `conv1` / `bn1` (1x1), `conv2` the
  split attention (splat.py `SplAtConv2d`: `conv`, `bn0`, `fc1`, `bn1`, `fc2`), `conv3`
  / `bn3` (1x1); its ResNet-D shortcut `downsample` is `Sequential(AvgPool2d, conv, BN)`
  (resnet.py `_make_layer`; the pool is an identity where nothing is strided, but the
  indices stay), hence `downsample.1` / `downsample.2`. The average pools have no
  weights. The classifier is `fc` (Linear, [classes, features]).
- Layouts: PyTorch convs are [out, in / groups, kh, kw]; tfvision (tf_keras) keeps
  [kh, kw, in / groups, out] for plain and grouped convs alike (the same group order,
  `SplitAttention`'s docstring), so every conv, grouped or not, transposes with
  "oihw_to_hwio"; the Linear classifier transposes [out, in] -> [in, out]. BatchNorm2d
  weight / bias / running_mean / running_var are gamma / beta / moving_mean /
  moving_variance (tfvision uses PyTorch's epsilon 1e-5); `num_batches_tracked` is a
  step counter, not a weight.

Key layout of one released file (resnest50d.in1k; 476 keys: the stem's 18, 16 blocks of
27, 6 more in each of the 4 blocks with a shortcut, the classifier's 2; every BN
contributes 5 with its num_batches_tracked):

    conv1.0.weight [32, 3, 3, 3]       conv1.1.{weight,bias,running_mean,running_var}
    conv1.3.weight [32, 32, 3, 3]      conv1.4.*       conv1.6.weight [64, 32, 3, 3]
    bn1.*                              layer1.0.conv1.weight [64, 64, 1, 1]
    layer1.0.bn1.*                     layer1.0.conv2.conv.weight [128, 32, 3, 3]
    layer1.0.conv2.bn0.* [128]         layer1.0.conv2.fc1.{weight [32, 64, 1, 1], bias}
    layer1.0.conv2.bn1.* [32]          layer1.0.conv2.fc2.{weight [128, 32, 1, 1], bias}
    layer1.0.conv3.weight              layer1.0.bn3.*
    layer1.0.downsample.1.weight       layer1.0.downsample.2.*
    layer1.1.conv1.weight [64, 256, 1, 1] ...   layer4.2.bn3.*
    fc.weight [1000, 2048]             fc.bias

Usage (a loader given a preset's `Release` with converter "timm_resnest"):

    tensors = timm_resnest.read(path)
    plan = timm_resnest.plan_model(model, tensors, f"timm ResNeSt file {path}")
    mapping.assign(model, plan)
"""
import re
from typing import Mapping

import numpy as np

from tfvision.weights import mapping, torch_files
from tfvision.weights.mapping import Rule

NAME = "timm_resnest"

# tf_keras BatchNormalization variable -> PyTorch BatchNorm2d tensor.
_BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
       "moving_variance": "running_var"}
_BN_VARIABLES = "(?P<bn>gamma|beta|moving_mean|moving_variance)"
_BLOCK = r"stage(?P<stage>\d+)_block(?P<block>\d+)"
# The stem's three ConvNormAct layers: (conv key, BN key) in the authors' `conv1` / `bn1`.
_STEM = {"1": ("conv1.0", "conv1.1"), "2": ("conv1.3", "conv1.4"), "3": ("conv1.6", "bn1")}


def _block(match: re.Match) -> str:
  """`stage2_block1` -> `layer2.0` (tfvision counts blocks from 1, PyTorch from 0)."""
  return f"layer{int(match['stage'])}.{int(match['block']) - 1}"


def _bn(module: str):
  """Source key of a block BN variable: `<block>.<module>.<weight|bias|running_*>`."""
  return lambda m: f"{_block(m)}.{module}.{_BN[m['bn']]}"


RULES = [
    # Stem: three 3x3 convs, each followed by BN (+ ReLU).
    Rule(r"stem_conv(?P<i>[123])/conv/kernel",
         lambda m: f"{_STEM[m['i']][0]}.weight", "oihw_to_hwio"),
    Rule(rf"stem_conv(?P<i>[123])/bn/{_BN_VARIABLES}",
         lambda m: f"{_STEM[m['i']][1]}.{_BN[m['bn']]}"),
    # Bottleneck 1x1 reduce.
    Rule(rf"{_BLOCK}/conv1/conv/kernel", lambda m: f"{_block(m)}.conv1.weight",
         "oihw_to_hwio"),
    Rule(rf"{_BLOCK}/conv1/bn/{_BN_VARIABLES}", _bn("bn1")),
    # Split attention: grouped 3x3 conv (radix * cardinality groups) + bn0, then the
    # gating branch fc1 (grouped 1x1, bias) + bn1, fc2 (grouped 1x1, bias).
    Rule(rf"{_BLOCK}/split_attention/kernel", lambda m: f"{_block(m)}.conv2.conv.weight",
         "oihw_to_hwio"),
    Rule(rf"{_BLOCK}/split_attention/bn0/{_BN_VARIABLES}", _bn("conv2.bn0")),
    Rule(rf"{_BLOCK}/split_attention/fc(?P<fc>[12])_kernel",
         lambda m: f"{_block(m)}.conv2.fc{m['fc']}.weight", "oihw_to_hwio"),
    Rule(rf"{_BLOCK}/split_attention/fc(?P<fc>[12])_bias",
         lambda m: f"{_block(m)}.conv2.fc{m['fc']}.bias"),
    Rule(rf"{_BLOCK}/split_attention/bn1/{_BN_VARIABLES}", _bn("conv2.bn1")),
    # Bottleneck 1x1 expand.
    Rule(rf"{_BLOCK}/conv3/conv/kernel", lambda m: f"{_block(m)}.conv3.weight",
         "oihw_to_hwio"),
    Rule(rf"{_BLOCK}/conv3/bn/{_BN_VARIABLES}", _bn("bn3")),
    # ResNet-D shortcut: Sequential(AvgPool2d, conv, BN) -> indices 1 and 2.
    Rule(rf"{_BLOCK}/shortcut/conv/kernel", lambda m: f"{_block(m)}.downsample.1.weight",
         "oihw_to_hwio"),
    Rule(rf"{_BLOCK}/shortcut/bn/{_BN_VARIABLES}", _bn("downsample.2")),
    # Classifier (Linear).
    Rule(r"head/fc/kernel", "fc.weight", "linear_transpose"),
    Rule(r"head/fc/bias", "fc.bias"),
]


def is_step_counter(key: str) -> bool:
  """BatchNorm2d's `num_batches_tracked`: a training step count, not a weight."""
  return key.endswith(".num_batches_tracked")


def is_classifier(key: str) -> bool:
  return key.startswith("fc.")


def read(path) -> Mapping[str, np.ndarray]:
  """The tensors of a released file (`.safetensors`, or `.pth` with torch installed)."""
  return torch_files.read_weights_file(path)


def plan_model(model, tensors: Mapping[str, np.ndarray], source_name: str) -> mapping.Plan:
  """Maps every variable of a tfvision ResNeSt onto the file's tensors, or raises.

  A model built with include_top=False has no classifier: the file's `fc.*` tensors
  are dropped (listed in `Plan.dropped`). With a classifier, `fc` must fit it (1000
  ImageNet classes). Anything else that does not fit raises
  `mapping.WeightsMismatchError` listing it.
  """
  variables = mapping.named_variables(model)
  has_head = any(path.startswith("head/") for path in variables)
  return mapping.plan(model, tensors, RULES, source_name=source_name,
                      ignore=is_step_counter,
                      drop=(lambda key: False) if has_head else is_classifier,
                      variables=variables)
