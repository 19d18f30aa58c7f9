#!/usr/bin/env python3
"""deeplab2's released checkpoints at full size: conversion cost, coverage and parity.

    python benchmarks/weights_deeplab2.py --deeplab2 /path/to/deeplab2 \\
        [--presets wide_resnet41,panoptic_deeplab_wide_resnet41_os16,...] \\
        [--workdir DIR] [--keep] [--json out.jsonl] [--timeout 1500]
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/weights_deeplab2.py ...   # Eigen kernels

`--deeplab2` is a deeplab2 source checkout (the folder named `deeplab2`, with its protos
compiled next to them: `python -m grpc_tools.protoc -I. --python_out=. deeplab2/*.proto`
from its parent, which this script runs when they are missing). Nothing of deeplab2 is
part of this repository; it is imported from that path, with TF_USE_LEGACY_KERAS=1.

For every tfvision preset with a deeplab2 release (default: all 18, the 9 ImageNet
backbones and the 9 Cityscapes models; `--presets a,b` picks some), three processes run
one after another, so that peak memory is per model:

1. deeplab2 (TF_USE_LEGACY_KERAS=1): deeplab2's own code builds the released model at
   full size. A Cityscapes model comes from `configs/cityscapes/<meta>/<backbone>_os16
   .textproto`, with `train_dataset_options.crop_size` set to the test input (65 x 97)
   so that the ASPP pooling window fits it (no weight depends on it). An ImageNet
   backbone is `axial_resnet_instances.get_model(...)` with the arguments deeplab2's
   `model/builder.py` derives from a BackboneOptions: those of the Cityscapes config of
   the same backbone (the model that release initialises, so the variables must agree),
   at output stride 32 (BackboneOptions' default and the classification stride; it
   changes dilation rates only), except `max_deeplab_l_backbone`, whose stacked decoder
   has stride-dependent stages: its ImageNet checkpoint initialises the output-stride-16
   Cityscapes model through a strict restore, and deeplab2's own parameter test counts
   it at 16, so it is built at 16. Every variable is filled with random values (batch
   norm statistics included; see `randomise` in scripts/deeplab2_source.py and
   `_calibrate`: the statistics are those of the test input, re-drawn with gamma / beta
   compensating, and each residual branch closes with a gamma in `--branch-gamma`, so
   that the full-size networks are
   not chaotic and a parity below 1e-4 means something), the model runs on a fixed
   random [0, 255] input of 65 x 97 (a Cityscapes model normalises inside; an encoder
   gets x / 127.5 - 1 and gives res2 / res3 / res5), once more on that input changed by
   1e-7 relative (deeplab2's own float32 noise floor, the table's last column), and the
   checkpoint is saved as released: Cityscapes as deeplab2's trainer does
   (`global_step`, a legacy SGD-momentum optimizer whose slots a zero step created,
   `model.checkpoint_items`), ImageNet under the Model Garden root `backbone/_encoder/`
   (with `global_step`); then packed as a `.tar.gz`.
2. tfvision (deeplab2 not importable, TF_USE_LEGACY_KERAS unset):
   `tfvision.weights.convert(preset, tar_gz, out, release=release_of(preset, alias))`,
   timed, with the process's peak RSS right after it; then the converted weights are
   loaded into the preset (`load_weights`) and run on the same input.
3. This process merges both and prints one JSON line per preset (appended to `--json`),
   then a Markdown table and the machine (CPU model, kernel path: TF_ENABLE_ONEDNN_OPTS
   unset or 1 = oneDNN on Intel CPUs with AVX-512, 0 = Eigen).

Parity is max |tfvision - deeplab2| / max |deeplab2| per output (semantic_logits,
center_heatmap, offsets; backbone endpoints "2", "3", "5" against res2, res3, res5, and
MaX-DeepLab-L's stacked-decoder output "backbone_output"), the table's column their
maximum. Parameters are trainable variables (deeplab2's
`trainable_variables`, tfvision's `trainable_weights`); deeplab2's own test counts
(`model/encoder/axial_resnet_instances_test.py`: encoder at output stride 16, no
classifier) are in the JSON where one exists. `--workdir` (default: a temporary
directory, removed at the end unless `--keep`) holds each preset's archive, reference
outputs and converted weights; a preset's files are removed after its row unless
`--keep`. A stage that runs past `--timeout` seconds or is killed (out of memory) is
reported as such and the next preset runs.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
from deeplab2_source import cityscapes_config, import_deeplab2, randomise  # pylint: disable=wrong-import-position
REPO = os.path.dirname(HERE)

SIZE = (65, 97)        # odd, non-square: corner-aligned resizing, both axes differ
SEED = 0
GLOBAL_STEP = 60000    # training_number_of_steps of deeplab2's Cityscapes configs
# Range of the random gamma that closes each residual branch (see `_calibrate`).
BRANCH_GAMMA = (0.05, 0.15)
# Relative input perturbation that measures deeplab2's own float32 noise floor.
PERTURBATION = 1e-7
BACKBONE_ENDPOINTS = (("2", "res2"), ("3", "res3"), ("5", "res5"))
DECODER_ENDPOINT = "backbone_output"
PANOPTIC_OUTPUTS = (("semantic_logits", "semantic_logits"),
                    ("center_heatmap", "center_heatmap"), ("offsets", "offset_map"))

# Cityscapes presets: (deeplab2 meta-architecture folder, backbone).
CITYSCAPES = {
    f"{meta}_{backbone}_os16": (meta, backbone) for meta, backbone in (
        ("panoptic_deeplab", "wide_resnet41"),
        ("panoptic_deeplab", "swidernet_sac_1_1_1"),
        ("panoptic_deeplab", "swidernet_sac_1_1_3"),
        ("panoptic_deeplab", "swidernet_sac_1_1_4.5"),
        ("axial_deeplab", "axial_swidernet_1_1_1"),
        ("axial_deeplab", "axial_swidernet_1_1_3"),
        ("axial_deeplab", "axial_swidernet_1_1_4.5"),
        ("axial_deeplab", "max_deeplab_s_backbone"),
        ("axial_deeplab", "max_deeplab_l_backbone"))}
# ImageNet backbones: the Cityscapes config whose BackboneOptions they share.
IMAGENET = {backbone: f"{meta}/{backbone}_os16" for meta, backbone in CITYSCAPES.values()}
IMAGENET_OUTPUT_STRIDE = {"max_deeplab_l_backbone": 16}   # others: 32 (see docstring)
PRESETS = tuple(IMAGENET) + tuple(CITYSCAPES)
# deeplab2's axial_resnet_instances_test.py: encoder trainable parameters (output stride
# 16, no classifier). `swidernet` (1, 1, 1) there has neither SE nor SAC: WR-41.
DEEPLAB2_TEST_PARAMS = {
    "wide_resnet41": 109014080, "axial_swidernet_1_1_1": 136399392,
    "axial_swidernet_1_1_3": 393935520, "axial_swidernet_1_1_4.5": 570346912,
    "max_deeplab_s_backbone": 41343424, "max_deeplab_l_backbone": 175115392}


def _range(text):
  low, high = (float(v) for v in text.split(","))
  if not 0 < low <= high:
    raise argparse.ArgumentTypeError(f"expected LO,HI with 0 < LO <= HI, received {text!r}")
  return low, high


def _mb(num_bytes):
  return round(num_bytes / 2**20, 1)


def _peak_rss_mb():
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _relative(actual, expected):
  import numpy as np  # pylint: disable=import-outside-toplevel
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  if actual.shape != expected.shape:
    raise ValueError(f"shapes differ: tfvision {actual.shape}, deeplab2 {expected.shape}")
  return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def _read_json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _write_json(path, data):
  with open(path, "w", encoding="utf-8") as f:
    json.dump(data, f, indent=1)


# ----------------------------------------------------------------------------- deeplab2


def _deeplab2_config(deeplab2_path, name):
  """deeplab2's ExperimentOptions of configs/cityscapes/<name>.textproto, cropped to SIZE."""
  config = cityscapes_config(deeplab2_path, name)
  config.train_dataset_options.crop_size[:] = list(SIZE)
  return config


def _encoder_arguments(options):
  """`builder.create_resnet_encoder`'s get_model arguments for BackboneOptions."""
  return dict(
      output_stride=options.output_stride,
      stem_width_multiplier=options.stem_width_multiplier,
      width_multiplier=options.backbone_width_multiplier,
      backbone_layer_multiplier=options.backbone_layer_multiplier,
      block_group_config={
          "use_squeeze_and_excite": options.use_squeeze_and_excite,
          "drop_path_keep_prob": options.drop_path_keep_prob,
          "drop_path_schedule": options.drop_path_schedule,
          "use_sac_beyond_stride": options.use_sac_beyond_stride})


def _calibrate(model, run, rng):
  """Batch norms that normalise this input, with random statistics.

  With the fixture script's values at full size (statistics drawn independently of the
  activations, every gamma in [0.5, 1.5]), deeplab2's networks are chaotic: the
  axial-attention logits grow with depth until the softmax saturates, and
  max_deeplab_s_backbone's res5 moves by 32% under a 1e-7 relative change of its input
  (res4 by 1.5%), so no parity can be measured. Normalising alone still leaves 10% at
  res5; with the residual branches also closed by a small gamma (`--branch-gamma`,
  default 0.05 to 0.15) it is 1e-5. Here one inference pass
  sets each norm's statistics, in the order the network runs them, to the (biased)
  mean and variance (m, v) of its own input over the axes it reduces; then new random
  statistics (m', v') replace them and gamma / beta absorb the change (gamma' = gamma *
  sqrt(v' + eps) / sqrt(v + eps), beta' = beta + gamma * (m' - m) / sqrt(v + eps)), so
  that inference computes the normalised network exactly while every tensor keeps
  random values. Returns the number of norms.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  norms = [layer for layer in model.submodules
           if hasattr(layer, "moving_variance") and hasattr(layer, "momentum")]
  seen = set()

  def calibrating(layer, call):
    def wrapped(inputs, *args, **kwargs):
      x = tf.cast(inputs, tf.float64)
      kept = [a % x.shape.rank for a in layer.axis]
      axes = [a for a in range(x.shape.rank) if a not in kept]
      mean = tf.reduce_mean(x, axes, keepdims=True)
      variance = tf.reduce_mean(tf.square(x - mean), axes, keepdims=True)
      shape = layer.moving_mean.shape
      layer.moving_mean.assign(tf.cast(tf.reshape(mean, shape), tf.float32))
      layer.moving_variance.assign(tf.cast(tf.reshape(variance, shape), tf.float32))
      seen.add(id(layer))
      kwargs["training"] = False
      return call(inputs, *args, **kwargs)
    return wrapped

  originals = [(layer, layer.call) for layer in norms]
  try:
    for layer, call in originals:
      layer.call = calibrating(layer, call)
    run()
  finally:
    for layer, call in originals:
      layer.call = call
  for layer in norms:
    if id(layer) not in seen:
      continue
    mean = layer.moving_mean.numpy().astype(np.float64)
    variance = layer.moving_variance.numpy().astype(np.float64)
    eps = layer.epsilon
    std = np.sqrt(variance + eps)
    new_mean = mean + rng.normal(0.0, 0.5, mean.shape) * std
    new_variance = variance * rng.uniform(0.5, 2.0, variance.shape)
    gamma = layer.gamma.numpy().astype(np.float64) if layer.gamma is not None else 1.0
    if layer.gamma is not None:
      layer.gamma.assign((gamma * np.sqrt(new_variance + eps) / std).astype(np.float32))
    else:
      new_variance = variance   # no gamma to absorb a new variance
    if layer.beta is not None:
      layer.beta.assign((layer.beta.numpy() + gamma * (new_mean - mean) / std
                         ).astype(np.float32))
    else:
      new_mean = mean
    layer.moving_mean.assign(new_mean.astype(np.float32))
    layer.moving_variance.assign(new_variance.astype(np.float32))
  return len(seen), len(norms)


def _count(variables):
  return int(sum(int(v.shape.num_elements()) for v in variables))


def _pack(directory, archive):
  """A .tar.gz of `directory` (one folder at its root), as deeplab2 releases them."""
  with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
    tar.add(directory, arcname=os.path.basename(directory))


def deeplab2_stage(args):
  """Builds, randomises, runs and saves deeplab2's model of `args.preset`."""
  if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise SystemExit("the deeplab2 stage runs with TF_USE_LEGACY_KERAS=1")
  import_deeplab2(args.deeplab2)
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  preset, out = args.preset, args.out
  tf.keras.utils.set_random_seed(SEED)
  rng = np.random.RandomState(SEED)
  image = rng.uniform(0, 255, (1, *SIZE, 3)).astype(np.float32)
  result = {"preset": preset}
  start = time.perf_counter()
  if preset in CITYSCAPES:
    from deeplab2.data import dataset  # pylint: disable=import-outside-toplevel
    from deeplab2.model import deeplab  # pylint: disable=import-outside-toplevel
    meta, backbone = CITYSCAPES[preset]
    config_name = f"{meta}/{backbone}_os16"
    config = _deeplab2_config(args.deeplab2, config_name)
    model = deeplab.DeepLab(config, dataset.CITYSCAPES_PANOPTIC_INFORMATION)

    def forward(x, training=False):
      return model(tf.constant(x), training=training)

    result.update(deeplab2_build=f"configs/cityscapes/{config_name}.textproto",
                  output_stride=config.model_options.backbone.output_stride)
  else:
    from deeplab2.model.encoder import axial_resnet_instances  # pylint: disable=import-outside-toplevel
    options = _deeplab2_config(args.deeplab2, IMAGENET[preset]).model_options.backbone
    options.output_stride = IMAGENET_OUTPUT_STRIDE.get(preset, 32)
    kwargs = _encoder_arguments(options)
    model = axial_resnet_instances.get_model(
        options.name, bn_layer=tf.keras.layers.BatchNormalization,
        conv_kernel_weight_decay=0.0, **kwargs)

    def forward(x, training=False):
      return model(tf.constant(x) / 127.5 - 1.0, training=training)

    result.update(deeplab2_build=f"get_model({options.name!r}, **{kwargs})",
                  output_stride=options.output_stride)
  forward(image)
  built = time.perf_counter()
  randomise(model.variables, rng, args.branch_gamma)
  norms = _calibrate(model, lambda: forward(image), rng)
  randomised = time.perf_counter()
  names = PANOPTIC_OUTPUTS if preset in CITYSCAPES else BACKBONE_ENDPOINTS
  if preset not in CITYSCAPES and getattr(model, "_backbone_decoder_num_stacks", 0):
    # MaX-DeepLab-L's stacked decoder: its activated output, what the classifier read.
    names += ((DECODER_ENDPOINT, DECODER_ENDPOINT),)

  def outputs_of(x):
    outputs = forward(x)
    found = {ours: outputs[theirs].numpy() for ours, theirs in names}
    if "center_heatmap" in found:   # deeplab2's comes squeezed: [B, H, W]
      found["center_heatmap"] = found["center_heatmap"][..., None]
    return found

  reference = outputs_of(image)
  ran = time.perf_counter()
  # deeplab2's own float32 noise floor: its outputs under a 1e-7 relative input change.
  noise = np.random.RandomState(SEED + 1).standard_normal(image.shape)
  perturbed = outputs_of((image * (1 + PERTURBATION * noise)).astype(np.float32))
  noise_floor = {key: _relative(perturbed[key], reference[key]) for key in reference}
  if preset in CITYSCAPES:
    items = dict(model.checkpoint_items)
  else:
    wrapper = tf.Module()
    wrapper._encoder = model  # pylint: disable=protected-access
    items = {"backbone": wrapper}
  finite = {key: bool(np.all(np.isfinite(value))) for key, value in reference.items()}
  stem = os.path.basename(args.url)[:-len(".tar.gz")]
  directory = os.path.join(out, stem)
  shutil.rmtree(directory, ignore_errors=True)
  global_step = tf.Variable(GLOBAL_STEP, dtype=tf.int64)
  if preset in CITYSCAPES:
    variables = [v for item in items.values() for v in item.trainable_variables]
    optimizer = tf.keras.optimizers.legacy.SGD(learning_rate=0.1, momentum=0.9)
    # A zero step creates the momentum slots without moving any weight.
    optimizer.apply_gradients([(tf.zeros_like(v), v) for v in variables])
    checkpoint = tf.train.Checkpoint(global_step=global_step, optimizer=optimizer, **items)
  else:
    checkpoint = tf.train.Checkpoint(global_step=global_step, **items)
  tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1).save(GLOBAL_STEP)
  saved = time.perf_counter()
  raw = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))
  archive = directory + ".tar.gz"
  _pack(directory, archive)
  packed = time.perf_counter()
  shutil.rmtree(directory)
  np.savez(os.path.join(out, "reference.npz"), image=image, **reference)
  result.update(
      deeplab2_params=_count(model.trainable_variables),
      deeplab2_checkpoint_params=_count(
          {id(v): v for item in items.values() for v in item.trainable_variables}.values()),
      deeplab2_variables=len(model.variables), deeplab2_batch_norms=norms,
      deeplab2_outputs_finite=finite, deeplab2_noise_floor=noise_floor,
      deeplab2_noise_floor_max=max(noise_floor.values()),
      branch_gamma=list(args.branch_gamma),
      deeplab2_output_max={k: float(np.max(np.abs(v))) for k, v in reference.items()},
      archive=archive, checkpoint_mb=_mb(os.path.getsize(archive)),
      checkpoint_raw_mb=_mb(raw),
      deeplab2_seconds={"build": round(built - start, 2),
                        "randomise": round(randomised - built, 2),
                        "forward": round(ran - randomised, 2),
                        "save": round(saved - ran, 2), "pack": round(packed - saved, 2)},
      deeplab2_peak_rss_mb=_peak_rss_mb())
  _write_json(os.path.join(out, "deeplab2.json"), result)


# ----------------------------------------------------------------------------- tfvision


def tfvision_stage(args):
  """Converts the archive with tfvision, then checks the converted model's outputs."""
  if "deeplab2" in sys.modules:
    raise SystemExit("the tfvision stage must not import deeplab2")
  sys.path.insert(0, REPO)
  import numpy as np  # pylint: disable=import-outside-toplevel
  from tfvision.layers.conv import onednn_enabled  # pylint: disable=import-outside-toplevel
  from tfvision.models import get_preset  # pylint: disable=import-outside-toplevel
  import tfvision.weights as weights  # pylint: disable=import-outside-toplevel
  preset, out = args.preset, args.out
  alias = "cityscapes" if preset in CITYSCAPES else "imagenet"
  release = weights.release_of(preset, alias)
  source = _read_json(os.path.join(out, "deeplab2.json"))
  result = {"preset": preset, "onednn": onednn_enabled()}
  converted = os.path.join(out, "converted")
  start = time.perf_counter()
  try:
    report = weights.convert(preset, source["archive"], converted, release=release)
  except Exception as error:  # pylint: disable=broad-except
    result.update(convert_wall_s=round(time.perf_counter() - start, 2),
                  peak_rss_convert_mb=_peak_rss_mb(),
                  error=f"{type(error).__name__}: {error}")
    # The preset's parameters, for the table, from a fresh build.
    model = get_preset(preset).build(**dict(release.arguments))
    result["tfvision_params"] = _count(model.trainable_weights)
    _write_json(os.path.join(out, "tfvision.json"), result)
    return
  result.update(convert_wall_s=round(time.perf_counter() - start, 2),
                peak_rss_convert_mb=_peak_rss_mb(),
                **{key: report[key] for key in (
                    "tensors_used", "tensors_present", "ignored_state", "dropped",
                    "variables", "seconds_build", "seconds_convert", "seconds_total")})
  # The model deeplab2 ran: the release's arguments at deeplab2's output stride.
  arguments = dict(release.arguments)
  if preset not in CITYSCAPES:
    arguments["output_stride"] = source["output_stride"]
  model = get_preset(preset).build(**arguments)
  weights.load_weights(model, converted)
  reference = dict(np.load(os.path.join(out, "reference.npz")))
  outputs = model(reference["image"], training=False)
  keys = [key for key in reference if key != "image"]
  diffs = {}
  for key in keys:
    try:
      diffs[key] = _relative(outputs[key], reference[key])
    except (KeyError, ValueError) as error:
      diffs[key] = f"{type(error).__name__}: {error}"
  result.update(tfvision_build_arguments=arguments, rel_diff=diffs,
                tfvision_params=_count(model.trainable_weights),
                peak_rss_total_mb=_peak_rss_mb(),
                converted_mb=_mb(sum(os.path.getsize(os.path.join(converted, f))
                                     for f in os.listdir(converted))))
  _write_json(os.path.join(out, "tfvision.json"), result)


# ---------------------------------------------------------------------------- driver


def _cpu_model():
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      lines = f.readlines()
  except OSError:
    return platform.processor() or "unknown CPU"
  name = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("model name")),
              platform.processor() or "unknown CPU")
  flags = next((l for l in lines if l.startswith("flags")), "")
  avx512 = "AVX-512" if " avx512f" in flags else "no AVX-512"
  return f"{name}, {os.cpu_count()} cores, {avx512}"


def _kernel_path(onednn=None):
  setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
  how = f"TF_ENABLE_ONEDNN_OPTS={setting}" if setting is not None else "TF default"
  if onednn is None:
    onednn = setting != "0"
  return f"{'oneDNN' if onednn else 'Eigen'} ({how})"


def _run_stage(stage, preset, out, args, env, url):
  """Runs one stage in its own process: (None or what went wrong, its seconds)."""
  command = [sys.executable, os.path.abspath(__file__), "--_stage", stage,
             "--_preset", preset, "--_out", out, "--_url", url]
  if args.deeplab2:
    command += ["--deeplab2", args.deeplab2]
  command += ["--branch-gamma", ",".join(str(v) for v in args.branch_gamma)]
  log = os.path.join(out, f"{stage}.log")
  start = time.perf_counter()
  with open(log, "w", encoding="utf-8") as f:
    try:
      process = subprocess.run(command, env=env, stdout=f, stderr=subprocess.STDOUT,
                               timeout=args.timeout, check=False)
    except subprocess.TimeoutExpired:
      return f"{stage} stage ran past --timeout {args.timeout} s (killed)", None
  seconds = round(time.perf_counter() - start, 1)
  if process.returncode == 0:
    return None, seconds
  with open(log, encoding="utf-8", errors="replace") as f:
    tail = [line.rstrip() for line in f if line.strip()][-15:]
  how = (f"killed by signal {-process.returncode}" + (" (out of memory?)" if
                                                     process.returncode == -9 else "")
         if process.returncode < 0 else f"exit status {process.returncode}")
  return f"{stage} stage failed ({how}):\n" + "\n".join(tail), seconds


def _row(preset, deeplab2_result, tfvision_result):
  row = {"preset": preset, "release": "cityscapes" if preset in CITYSCAPES else "imagenet"}
  row.update(deeplab2_result or {})
  row.update(tfvision_result or {})
  if preset in DEEPLAB2_TEST_PARAMS:
    row["deeplab2_test_params"] = DEEPLAB2_TEST_PARAMS[preset]
  if "deeplab2_params" in row and "tfvision_params" in row:
    row["params_equal"] = row["deeplab2_params"] == row["tfvision_params"]
  diffs = [v for v in row.get("rel_diff", {}).values() if isinstance(v, float)]
  if diffs and len(diffs) == len(row["rel_diff"]):
    row["max_rel_diff"] = max(diffs)
  return row


def _cell(value, fmt="{}"):
  return "—" if value is None else fmt.format(value)


def _table(rows):
  lines = ["| preset | release | deeplab2 params | tfvision params "
           "| tensors used / present | optimizer/step keys ignored | max rel diff "
           "| convert s | peak RSS MB | checkpoint MB | deeplab2 noise floor |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for row in rows:
    used = (f"{row['tensors_used']} / {row['tensors_present']}" if "tensors_used" in row
            else "failed")
    diff = row.get("max_rel_diff")
    lines.append(
        f"| {row['preset']} | {row['release']}"
        f" | {_cell(row.get('deeplab2_params'), '{:,}')}"
        f" | {_cell(row.get('tfvision_params'), '{:,}')} | {used}"
        f" | {_cell(row.get('ignored_state'))} | {_cell(diff, '{:.1e}')}"
        f" | {_cell(row.get('convert_wall_s'))} | {_cell(row.get('peak_rss_convert_mb'))}"
        f" | {_cell(row.get('checkpoint_mb'))}"
        f" | {_cell(row.get('deeplab2_noise_floor_max'), '{:.1e}')} |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--deeplab2", help="deeplab2 source checkout (folder named deeplab2)")
  parser.add_argument("--presets", default=",".join(PRESETS),
                      help="comma-separated presets (default: all 18)")
  parser.add_argument("--workdir", help="default: a temporary directory")
  parser.add_argument("--keep", action="store_true", help="keep the work directory")
  parser.add_argument("--json", help="append one JSON line per preset to this file")
  parser.add_argument("--timeout", type=int, default=1500,
                      help="seconds per stage per preset before it is killed")
  parser.add_argument("--branch-gamma", type=_range, default=BRANCH_GAMMA,
                      help="LO,HI: range of the random gamma closing each residual "
                           "branch (default %(default)s; see _calibrate)")
  # The stages' own arguments (this script runs itself once per stage and preset).
  parser.add_argument("--_stage", dest="stage", choices=("deeplab2", "tfvision"),
                      help=argparse.SUPPRESS)
  parser.add_argument("--_preset", dest="preset", help=argparse.SUPPRESS)
  parser.add_argument("--_out", dest="out", help=argparse.SUPPRESS)
  parser.add_argument("--_url", dest="url", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.stage:
    (deeplab2_stage if args.stage == "deeplab2" else tfvision_stage)(args)
    return
  if not args.deeplab2:
    parser.error("--deeplab2 is required")
  presets = [p for p in args.presets.split(",") if p]
  unknown = [p for p in presets if p not in PRESETS]
  if unknown:
    parser.error(f"unknown presets {unknown}; choose from {list(PRESETS)}")
  args.deeplab2 = os.path.abspath(args.deeplab2)
  # The release URLs (names of the archives), from tfvision in a process of its own.
  urls = json.loads(subprocess.run(
      [sys.executable, "-c", "import json, sys; sys.path.insert(0, sys.argv[1]); "
       "import tfvision.weights as w; print(json.dumps({k: {a: r.url for a, r in "
       "v.items()} for k, v in w.released_presets().items()}))", REPO],
      capture_output=True, text=True, check=True,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout.strip().splitlines()[-1])
  workdir = args.workdir or tempfile.mkdtemp(prefix="weights_deeplab2_")
  os.makedirs(workdir, exist_ok=True)
  base_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  deeplab2_env = {**base_env, "TF_USE_LEGACY_KERAS": "1"}
  tfvision_env = {k: v for k, v in base_env.items() if k != "TF_USE_LEGACY_KERAS"}
  rows, onednn, started = [], None, time.perf_counter()
  try:
    for preset in presets:
      alias = "cityscapes" if preset in CITYSCAPES else "imagenet"
      out = os.path.join(workdir, preset)
      shutil.rmtree(out, ignore_errors=True)
      os.makedirs(out)
      errors, deeplab2_result, tfvision_result, seconds = [], None, None, {}
      error, seconds["deeplab2_stage"] = _run_stage(
          "deeplab2", preset, out, args, deeplab2_env, urls[preset][alias])
      if error:
        errors.append(error)
      else:
        deeplab2_result = _read_json(os.path.join(out, "deeplab2.json"))
        error, seconds["tfvision_stage"] = _run_stage(
            "tfvision", preset, out, args, tfvision_env, urls[preset][alias])
        if error:
          errors.append(error)
        else:
          tfvision_result = _read_json(os.path.join(out, "tfvision.json"))
          onednn = tfvision_result.get("onednn", onednn)
      row = _row(preset, deeplab2_result, tfvision_result)
      row["stage_seconds"] = seconds
      if errors:
        row["error"] = "\n".join(errors)
      rows.append(row)
      line = json.dumps(row, sort_keys=True)
      print(line, flush=True)
      if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
          f.write(line + "\n")
      if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
  finally:
    if not args.keep and not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)
  print()
  print(_table(rows))
  print()
  print(f"CPU: {_cpu_model()}; kernel path: {_kernel_path(onednn)}; "
        f"total {time.perf_counter() - started:.0f} s")
  failed = [row for row in rows if "error" in row]
  for row in failed:
    print(f"\n{row['preset']}: {row['error']}")


if __name__ == "__main__":
  main()
