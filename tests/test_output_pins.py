"""Outputs of one tiny model per block layout equal the pins written before the specs redesign.

tests/fixtures/output_pins.npz was written at commit 320acec by
tests/fixtures/make_output_pins.py: for each case of tests/fixtures/output_pin_models.py,
the variable names and shapes and the outputs for weights and an input drawn from a
seed. Here the current code builds the same case, receives the same seeded weights, and
must give the same outputs: a refactor that moves any model's numerics fails.
"""
import os

import numpy as np
import pytest

from tests import harness
from tests.fixtures import output_pin_models as pins

PINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "output_pins.npz")


@pytest.fixture(scope="module")
def pinned():
  with np.load(PINS) as data:
    return {key: data[key] for key in data.files}


@pytest.mark.parametrize("case", pins.CASES, ids=[case.key for case in pins.CASES])
def test_outputs_equal_the_pins(case, pinned):
  model = pins.build(case)
  names = pinned[f"{case.key}/names"].tolist()
  assert pins.variable_names(model) == names, f"{case.key}: the variables changed"
  weights = pins.seeded_weights(case, model)
  shapes = [",".join(str(d) for d in w.shape) for w in weights]
  assert shapes == pinned[f"{case.key}/shapes"].tolist()
  model.set_weights(weights)
  outputs = pins.flat_outputs(model(pins.seeded_images(case), training=False))
  prefix = f"{case.key}/out/"
  expected = {key[len(prefix):]: value for key, value in pinned.items()
              if key.startswith(prefix)}
  assert sorted(outputs) == sorted(expected), case.key
  for key, value in expected.items():
    harness.assert_outputs_close(outputs[key], value, atol=2e-5, what=f"{case.key}/{key}")
