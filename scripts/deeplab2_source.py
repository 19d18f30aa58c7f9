"""A deeplab2 source checkout, for the scripts and benchmarks that run deeplab2's code.

deeplab2 is never part of this repository: the fixture scripts and the weights
benchmark import it from the checkout given on their command line (the folder named
`deeplab2`), with TF_USE_LEGACY_KERAS=1.
"""
import os
import re
import subprocess
import sys

import numpy as np

# The norm closing a residual branch (deeplab2 `.../block<j>/conv<i>_bn/batch_norm`,
# initialised at gamma 0 by deeplab2).
BRANCH_GAMMA = re.compile(r"block\d+/conv\d_bn/batch_norm/gamma")


def import_deeplab2(path):
  """Makes `import deeplab2` work from a checkout, compiling its protos when missing."""
  path = os.path.abspath(path)
  if os.path.basename(path) != "deeplab2" or not os.path.isdir(path):
    raise SystemExit(f"--deeplab2 must be a folder named deeplab2, received {path!r}")
  if not os.path.exists(os.path.join(path, "config_pb2.py")):
    protos = sorted(os.path.join("deeplab2", f) for f in os.listdir(path)
                    if f.endswith(".proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=."]
                   + protos, cwd=os.path.dirname(path), check=True)
  if os.path.dirname(path) not in sys.path:
    sys.path.insert(0, os.path.dirname(path))


def cityscapes_config(deeplab2_path, name):
  """deeplab2's ExperimentOptions of configs/cityscapes/<name>.textproto (its ${...}
  placeholders filled with dummy strings)."""
  from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
  from deeplab2 import config_pb2  # pylint: disable=import-outside-toplevel
  with open(os.path.join(deeplab2_path, "configs", "cityscapes", name + ".textproto"),
            encoding="utf-8") as f:
    text = f.read().replace("${", "X").replace('}"', '"')
  return text_format.Parse(text, config_pb2.ExperimentOptions())


def randomise(variables, rng, branch_gamma=None):
  """Random values in every variable, batch-norm statistics and gammas included, so
  that no tensor can be mapped to the wrong place unnoticed.

  branch_gamma: (low, high) for the gamma that closes each residual branch (the weights
  benchmark keeps full-size networks from being chaotic with it); None draws it like
  every other gamma, from [0.5, 1.5].
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  for variable in variables:
    shape = variable.shape.as_list()
    name = variable.name
    if branch_gamma is not None and BRANCH_GAMMA.search(name):
      value = rng.uniform(*branch_gamma, shape)
    elif "moving_variance" in name or "gamma" in name:
      value = rng.uniform(0.5, 1.5, shape)
    elif "moving_mean" in name or "beta" in name or "bias" in name:
      value = rng.normal(0.0, 0.1, shape)
    elif "embeddings" in name:
      value = rng.normal(0.0, 1.0, shape)
    else:
      fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
      value = rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), shape)
    variable.assign(tf.cast(value.astype(np.float32), variable.dtype))
