"""Writes tests/data/axial_global_outputs.npz: global axial attention outputs to pin.

The committed file was written by this script at commit 320acec, before local spans
existed (issue 18). `tests/test_axial_attention.py` rebuilds the same layers, loads the
stored weights and checks that global attention (no span, or a span covering the axis)
still gives exactly these outputs, in inference (folded norms) and in training (batch
statistics), with and without norms, strided and not.

    .venv/bin/python scripts/make_axial_global_fixture.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tfvision.layers import PositionSensitiveAxialAttention  # noqa: E402

PATH = os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                    "axial_global_outputs.npz")
# (name, layer arguments, input shape); max_span 9 covers every axis here.
CASES = (
    ("height", dict(axis="height"), (2, 7, 5, 6)),
    ("width", dict(axis="width"), (2, 5, 9, 6)),
    ("height_stride2", dict(axis="height", strides=2), (2, 9, 4, 6)),
    ("width_no_norm", dict(axis="width", norm=None), (2, 4, 8, 6)),
)


def build(args, shape):
  layer = PositionSensitiveAxialAttention(key_depth=8, value_depth=12, num_heads=2,
                                          max_span=9, **args)
  layer.build(shape)
  return layer


def main():
  rng = np.random.RandomState(18)
  arrays = {}
  for name, args, shape in CASES:
    layer = build(args, shape)
    weights = []
    for var in layer.weights:
      leaf = var.name.split("/")[-1]
      if leaf.startswith(("gamma", "moving_variance")):
        value = rng.uniform(0.5, 2.0, var.shape)
      elif leaf.startswith(("beta", "moving_mean")):
        value = rng.normal(0.0, 0.5, var.shape)
      else:
        value = rng.normal(0.0, 0.5, var.shape)
      weights.append(value.astype("float32"))
    layer.set_weights(weights)
    x = rng.normal(size=shape).astype("float32")
    arrays[f"{name}/input"] = x
    for index, value in enumerate(weights):
      arrays[f"{name}/weight{index}"] = value
    arrays[f"{name}/inference"] = layer(x, training=False).numpy()
    arrays[f"{name}/training"] = layer(x, training=True).numpy()
  np.savez_compressed(PATH, **arrays)
  print(f"wrote {PATH}: {len(arrays)} arrays")


if __name__ == "__main__":
  main()
