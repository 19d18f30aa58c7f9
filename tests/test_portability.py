"""Both CPU kernel paths train alike: oneDNN and TensorFlow's generic Eigen kernels.

TensorFlow turns oneDNN on by default only on CPUs with AVX-512 VNNI-class features;
elsewhere (AMD, older Intel) the Eigen kernels run, which have no gradient for a direct
dilated or grouped `tf.nn.conv2d`. The kernel path is fixed when TensorFlow starts, so
`tests/portability_worker.py` runs one training step (forward, gradients, SGD update;
float32 and mixed_bfloat16) per case in a process of its own, once on this machine's
default path and once with `TF_ENABLE_ONEDNN_OPTS` flipped, starting from the same
weights; the results must agree within float tolerance.

bfloat16 keeps 8 bits of mantissa, so two correct lowerings of one model differ by
rounding noise that grows with depth: there the gradients of the two paths must differ
by no more than bfloat16 itself moves them from float32 on one path (or 5%).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from tfvision.layers.conv import onednn_enabled

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOAT32_LOSS_RTOL = 1e-5
FLOAT32_GRAD_RTOL = 1e-4       # norm of the difference / norm, all gradients together
FLOAT32_VARIABLE_RTOL = 1e-3   # the same per variable (whose gradient is not ~0)
BF16_LOSS_RTOL = 1e-2
BF16_LOSS_AFTER_UPDATE_RTOL = 5e-2

LAYER_CASES = ["sac_rate2", "resnest_dilated_block", "atrous_conv", "grouped_atrous_conv",
               "aspp", "aspp_separable", "separable_atrous_conv"]
# Two groups, so that pytest-xdist's two workers share them.
MODEL_CASES = {
    "dense": ["swidernet_os8", "resnest_os8", "panoptic_deeplab_swidernet_0.25_0.25_0.75",
              "demo"],
    "classification": ["swidernet_0.25_0.25_0.75", "resnest50_fast_4s2x40d", "botnet50",
                       "pale_tiny", "axial_swidernet_1_1_1"],
}


def _run_worker(cases, onednn, out, init=None):
  """Runs the worker with oneDNN "0" / "1", or None for TensorFlow's default."""
  env = dict(os.environ)
  env.pop("TF_ENABLE_ONEDNN_OPTS", None)
  if onednn is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = onednn
  command = [sys.executable, "-m", "tests.portability_worker", "--cases", ",".join(cases),
             "--out", str(out)]
  if init is not None:
    command += ["--init", str(init)]
  done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=1500, check=False)
  assert done.returncode == 0, (
      f"worker (TF_ENABLE_ONEDNN_OPTS={onednn}) failed:\n{done.stderr[-6000:]}")
  return dict(np.load(out))


def _gradients(result, key):
  names = sorted((k for k in result if k.startswith(f"{key}/grad/")),
                 key=lambda k: int(k.rsplit("/", 1)[1]))
  return [result[n] for n in names]


def _relative(a, b):
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))


def compare(reference, other, cases):
  """Every disagreement between two worker results, as a list of messages."""
  problems = []
  for case in cases:
    f32, bf16 = f"{case}/float32", f"{case}/mixed_bfloat16"
    for key, rtol in ((f"{f32}/loss", FLOAT32_LOSS_RTOL),
                      (f"{f32}/loss_after_update", FLOAT32_LOSS_RTOL),
                      (f"{bf16}/loss", BF16_LOSS_RTOL),
                      (f"{bf16}/loss_after_update", BF16_LOSS_AFTER_UPDATE_RTOL)):
      a, b = float(reference[key]), float(other[key])
      if not (np.isfinite(a) and np.isfinite(b)) or abs(a - b) > rtol * abs(a):
        problems.append(f"{key}: {a!r} vs {b!r} (rtol {rtol})")
    ref32, oth32 = _gradients(reference, f32), _gradients(other, f32)
    ref16, oth16 = _gradients(reference, bf16), _gradients(other, bf16)
    if not (len(ref32) == len(oth32) == len(ref16) == len(oth16) > 0):
      problems.append(f"{case}: gradient counts {len(ref32)}, {len(oth32)}, {len(ref16)}, "
                      f"{len(oth16)}")
      continue
    flat = lambda grads: np.concatenate([g.ravel() for g in grads])  # noqa: E731
    error = _relative(flat(ref32), flat(oth32))
    if error > FLOAT32_GRAD_RTOL:
      problems.append(f"{f32}: gradients differ by {error:.2e} (relative norm)")
    largest = max(np.linalg.norm(g) for g in ref32)
    for index, (a, b) in enumerate(zip(ref32, oth32)):
      if np.linalg.norm(a) > 1e-3 * largest and _relative(a, b) > FLOAT32_VARIABLE_RTOL:
        problems.append(f"{f32}: gradient {index} differs by {_relative(a, b):.2e}")
    if not all(np.all(np.isfinite(g)) for g in oth16):
      problems.append(f"{bf16}: non-finite gradients")
      continue
    noise = _relative(flat(ref32), flat(ref16))
    error = _relative(flat(ref16), flat(oth16))
    if error > max(0.05, noise):
      problems.append(f"{bf16}: gradients differ by {error:.2e}, more than bfloat16's own "
                      f"rounding moves them ({noise:.2e})")
  return problems


def test_dilated_and_grouped_layers_train_alike_with_onednn_off_and_on(tmp_path):
  """SAC at rate 2, a dilated ResNeSt block, atrous / grouped / separable convs, ASPP."""
  on = _run_worker(LAYER_CASES, "1", tmp_path / "on.npz")
  off = _run_worker(LAYER_CASES, "0", tmp_path / "off.npz", init=tmp_path / "on.npz")
  assert bool(on["onednn"]) and not bool(off["onednn"])
  problems = compare(on, off, LAYER_CASES)
  assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(MODEL_CASES))
def test_every_block_layout_and_the_demo_model_train_alike_on_the_other_kernel_path(
    group, tmp_path):
  cases = MODEL_CASES[group]
  default = _run_worker(cases, None, tmp_path / "default.npz")
  flipped = "0" if bool(default["onednn"]) else "1"
  other = _run_worker(cases, flipped, tmp_path / "other.npz", init=tmp_path / "default.npz")
  assert bool(other["onednn"]) != bool(default["onednn"])
  problems = compare(default, other, cases)
  assert not problems, "\n".join(problems)


def test_the_worker_cases_cover_every_family_representative():
  from tests.portability_worker import cases  # pylint: disable=import-outside-toplevel
  from tests.test_harness_models import FULL  # pylint: disable=import-outside-toplevel
  known = cases()
  assert set(FULL) <= set(known), set(FULL) - set(known)
  assert set(LAYER_CASES) | {c for group in MODEL_CASES.values() for c in group} == set(known)


def test_this_process_reports_its_kernel_path():
  flag = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
  if flag in ("0", "1"):
    assert onednn_enabled() == (flag == "1")


def _fake_result(grad_scale=1.0, loss=1.0, bf16_noise=0.0):
  rng = np.random.RandomState(0)
  grads = [rng.normal(size=(3, 3)), rng.normal(size=(4,))]
  result = {"case/float32/loss": loss, "case/float32/loss_after_update": 0.5 * loss,
            "case/mixed_bfloat16/loss": loss, "case/mixed_bfloat16/loss_after_update": 0.5}
  for index, g in enumerate(grads):
    result[f"case/float32/grad/{index}"] = grad_scale * g
    result[f"case/mixed_bfloat16/grad/{index}"] = g + bf16_noise * rng.normal(size=g.shape)
  return result


def test_compare_accepts_rounding_and_rejects_a_wrong_step():
  reference = _fake_result(bf16_noise=0.2)
  assert compare(reference, _fake_result(grad_scale=1 + 1e-6, bf16_noise=0.2), ["case"]) == []
  assert compare(reference, _fake_result(grad_scale=1.01, bf16_noise=0.2), ["case"])
  assert compare(reference, _fake_result(loss=1.001, bf16_noise=0.2), ["case"])
  # bfloat16 gradients further apart than bfloat16 moves them from float32.
  assert compare(reference, _fake_result(bf16_noise=2.0), ["case"])
