"""Writes the timm ResNeSt fixtures of tests/test_weights_resnest.py (needs torch + timm).

timm and torch are not project dependencies and this script is never imported by the
tests; it builds, with timm's own classes, tiny ResNeSts whose layout a tfvision
`ResNeSt(...)` reproduces exactly, fills them with random weights (batch-norm statistics
and gammas included, so that a wrong mapping of any tensor changes the logits), and
writes what the tests compare against:

  <out>/<name>.safetensors  the weights in timm's key layout, written by the
                            `safetensors` package itself; floats stored as float16 /
                            bfloat16 (halves the files; the random values are rounded to
                            that precision first, so the reference below sees exactly
                            the stored values)
  <out>/<name>.npz          image: [2, 64, 64, 3] pixels in [0, 255] (uint8 to keep it
                            small; tfvision takes them as NHWC float32); logits: timm's
                            output in float64 (the model run in double precision, on
                            the ImageNet-normalised NCHW image, as timm takes it);
                            features: timm's forward_features (last stage) as NHWC;
                            tfvision_arguments / timm_arguments / versions: JSON
                            strings
  <out>/keys.json           {timm model: {key: shape}} of the full-size released
                            layouts (resnest14d, 26d, 50d, 50d_4s2x40d, 50d_1s4x24d), for
                            the full-size mapping test

Run, in a throwaway environment outside the repository:

  python3.11 -m venv /tmp/torchenv
  /tmp/torchenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm numpy
  /tmp/torchenv/bin/python scripts/make_resnest_fixture.py --out tests/data/weights/timm_resnest

timm imports torchvision, and PyPI's torchvision does not load beside the local CPU
build of torch 2.13.0 ("operator torchvision::nms does not exist"), hence the matching
pair above. The committed fixtures were made with torch 2.14.1 and timm 1.0.31 (each
.npz records the versions).
"""
import argparse
import json
import os

import numpy as np
import torch
import timm
from safetensors.torch import save_file
from timm.models.resnest import ResNestBottleneck
from timm.models.resnet import ResNet

SEED = 20240611
IMAGE_SHAPE = (2, 64, 64, 3)
NUM_CLASSES = 7
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])

# name -> (tfvision ResNeSt arguments, timm ResNet arguments, stored float dtype).
# tfvision's width_multiplier 1/16 gives planes (4, 8, 16, 32) and stem width
# round(32 / 16) = 2; timm takes both directly.
FIXTURES = {
    # The released models' layout (2s1x64d, avd after the split attention), two blocks
    # per stage (ResNeSt-26), so both shortcut and identity blocks appear.
    "resnest26_2s1x64d": (
        dict(depth=26, width_multiplier=1 / 16, num_classes=NUM_CLASSES),
        dict(layers=[2, 2, 2, 2], channels=(4, 8, 16, 32), stem_width=2, base_width=64,
             cardinality=1, block_args=dict(radix=2, avd=True, avd_first=False)),
        torch.float16),
    # The "fast" layout of resnest50d_4s2x40d (avd before the split attention, radix 4,
    # two cardinal groups), at base width 64 (40 does not divide at a tiny width).
    "resnest14_fast_4s2x64d": (
        dict(depth=14, radix=4, cardinality=2, base_width=64, fast=True,
             width_multiplier=1 / 16, num_classes=NUM_CLASSES),
        dict(layers=[1, 1, 1, 1], channels=(4, 8, 16, 32), stem_width=2, base_width=64,
             cardinality=2, block_args=dict(radix=4, avd=True, avd_first=True)),
        torch.bfloat16),
}
FULL_SIZE_KEYS = ("resnest14d", "resnest26d", "resnest50d", "resnest50d_4s2x40d",
                  "resnest50d_1s4x24d")


def build_timm(arguments):
  return ResNet(block=ResNestBottleneck, stem_type="deep", avg_down=True,
                num_classes=NUM_CLASSES, **arguments)


def randomise(model, generator, dtype):
  """Random weights and BN statistics, each rounded to `dtype` (what the file stores)."""

  def fill(tensor, value):
    tensor.copy_(value.to(dtype).to(tensor.dtype))

  def uniform(tensor, low, high):
    fill(tensor, torch.rand(tensor.shape, generator=generator) * (high - low) + low)

  def normal(tensor, std):
    fill(tensor, torch.randn(tensor.shape, generator=generator) * std)

  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        uniform(module.weight, 0.5, 1.5)   # timm zero-initialises some: not here
        normal(module.bias, 0.2)
        normal(module.running_mean, 0.2)
        uniform(module.running_var, 0.5, 2.0)
        module.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (), generator=generator)))
      elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
        fan_in = int(np.prod(module.weight.shape[1:]))   # He-normal on the fan-in
        normal(module.weight, (2.0 / fan_in) ** 0.5)
        if module.bias is not None:
          normal(module.bias, 0.2)


def make_fixture(out, name, tf_arguments, timm_arguments, dtype, generator, rng):
  model = build_timm(timm_arguments)
  randomise(model, generator, dtype)
  model.eval()
  stored = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous()
            for k, v in model.state_dict().items()}
  path = os.path.join(out, f"{name}.safetensors")
  save_file(stored, path, metadata={"format": "pt", "made_by": "scripts/make_resnest_fixture.py"})
  os.chmod(path, 0o644)

  # Integer pixels, as decoded images are (stored as uint8; the tests cast to float32).
  image = rng.integers(0, 256, IMAGE_SHAPE, dtype=np.uint8)
  normalised = (image.astype(np.float64) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
  model = model.double()
  with torch.no_grad():
    x = torch.from_numpy(normalised.transpose(0, 3, 1, 2).copy())
    features = model.forward_features(x)
    logits = model.forward_head(features)
  np.savez_compressed(
      os.path.join(out, f"{name}.npz"), image=image, logits=logits.numpy(),
      features=features.numpy().transpose(0, 2, 3, 1),
      tfvision_arguments=json.dumps(tf_arguments, sort_keys=True),
      timm_arguments=json.dumps(timm_arguments, sort_keys=True),
      versions=json.dumps({"torch": torch.__version__, "timm": timm.__version__}))
  size = sum(os.path.getsize(os.path.join(out, f"{name}.{ext}"))
             for ext in ("safetensors", "npz"))
  print(f"{name}: {sum(v.numel() for v in stored.values())} values, {size} bytes, "
        f"logits max |x| {np.abs(logits.numpy()).max():.3g}")


def make_keys(out):
  keys = {}
  for name in FULL_SIZE_KEYS:
    model = timm.create_model(name, pretrained=False)
    keys[name] = {k: list(v.shape) for k, v in model.state_dict().items()}
  with open(os.path.join(out, "keys.json"), "w") as f:
    json.dump(keys, f, separators=(",", ":"), sort_keys=True)
    f.write("\n")
  print(f"keys.json: {', '.join(f'{n} {len(k)} keys' for n, k in keys.items())}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="output folder")
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  generator = torch.Generator().manual_seed(SEED)
  rng = np.random.default_rng(SEED)
  for name, (tf_arguments, timm_arguments, dtype) in FIXTURES.items():
    make_fixture(args.out, name, tf_arguments, timm_arguments, dtype, generator, rng)
  make_keys(args.out)


if __name__ == "__main__":
  main()
