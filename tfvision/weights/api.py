"""Released weights: convert, cache and load them into tfvision models.

    model = create_model("resnest50", weights="imagenet")        # download + convert once
    model = create_model("panoptic_deeplab_swidernet_sac_1_1_1_os16", weights="cityscapes")
    model = create_model("resnest50", weights="/path/resnest50d.safetensors")
    convert("swidernet_sac_1_1_1", "swidernet_sac_1_1_1_imagenet1k_....tar.gz", "out/")

Converted weights are a directory holding a `tf.train.Checkpoint(model=...)` (the Model
Garden trainer's layout, so an experiment's `init_checkpoint` and the exporters read it
as they read a training run) and `tfvision_weights.json` (the preset, the arguments the
model was built with, the source file and the mapping's coverage). The cache lives in
`$TFVISION_HOME` (default `~/.cache/tfvision`): `downloads/` keeps the authors' files,
`weights/<preset>/<alias>/` the converted ones; neither is fetched or converted twice.
"""
import json
import os
import shutil
import tempfile
import time
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf

from tfvision.models.registry import Release, get_preset, list_models
from tfvision.weights import download as download_lib
from tfvision.weights import mapping

METADATA = "tfvision_weights.json"
FORMAT = "tfvision-weights/1"


def _converter(name):
  # Imported on use: the torch-format reader is only needed for timm files.
  if name == "deeplab2":
    from tfvision.weights import deeplab2  # pylint: disable=import-outside-toplevel
    return deeplab2
  if name == "timm_resnest":
    from tfvision.weights import timm_resnest  # pylint: disable=import-outside-toplevel
    return timm_resnest
  raise ValueError(f"converter must be one of {sorted(CONVERTERS)}, received "
                   f"converter={name!r}")


CONVERTERS = ("deeplab2", "timm_resnest")


def guess_converter(path: str) -> str:
  """The converter that reads `path`, from its form (extension or checkpoint files)."""
  path = os.fspath(path)
  if path.endswith((".safetensors", ".pth", ".pt", ".bin")):
    return "timm_resnest"
  if path.endswith((".tar.gz", ".tgz", ".tar")) or os.path.isdir(path) or os.path.exists(
      path + ".index"):
    return "deeplab2"
  raise ValueError(f"cannot tell the source format of path={path!r}: expected a deeplab2 "
                   f"checkpoint (.tar.gz, directory or prefix) or a ResNeSt .safetensors / "
                   f".pth file")


def is_converted(path) -> bool:
  return os.path.isdir(os.fspath(path)) and os.path.exists(
      os.path.join(os.fspath(path), METADATA))


def release_of(name: str, alias: str) -> Release:
  """The `Release` a preset publishes under `alias`; a clear error otherwise."""
  preset = get_preset(name)
  if not preset.weights:
    raise ValueError(
        f"{name!r} has no released weights (no authors' checkpoint exists for it); presets "
        f"with weights: {', '.join(sorted(released_presets()))}; or pass weights=PATH")
  if alias not in preset.weights:
    raise ValueError(f"unknown weights alias for {name!r}, received weights={alias!r}; "
                     f"valid: {', '.join(sorted(preset.weights))}, None, or a path")
  return preset.weights[alias]


def released_presets() -> Dict[str, Dict[str, Release]]:
  """Preset name -> its releases, for every preset with released weights."""
  presets = {name: get_preset(name) for name in list_models()}
  return {name: dict(preset.weights) for name, preset in presets.items() if preset.weights}


def load_source(model, path, converter: Optional[str] = None,
                fresh: bool = False) -> mapping.Plan:
  """Loads an authors' file (deeplab2 checkpoint, ResNeSt safetensors / pth) into `model`.

  All or nothing: the mapping is planned and checked completely before any variable is
  written. `fresh`: the model was built only to be loaded (no rollback copy is kept).
  Returns the plan (its `coverage`, `ignored` and `dropped` keys; its values are
  released as they are written when `fresh`).
  """
  converter = converter or guess_converter(path)
  source = _converter(converter)
  with tempfile.TemporaryDirectory(prefix="tfvision_convert_") as workdir:
    tensors = (source.read(path, workdir) if converter == "deeplab2" else source.read(path))
    plan = source.plan_model(model, tensors, f"{converter} file {os.fspath(path)!r}")
  mapping.assign(model, plan, rollback=not fresh)
  return plan


def save_converted(model, output: str, metadata: Mapping[str, Any]) -> str:
  """Writes `model`'s weights as converted tfvision weights; returns the prefix."""
  os.makedirs(output, exist_ok=True)
  checkpoint = tf.train.Checkpoint(model=model)
  prefix = tf.train.CheckpointManager(checkpoint, output, max_to_keep=1,
                                      checkpoint_name="ckpt").save(0)
  with open(os.path.join(output, METADATA), "w") as f:
    json.dump({"format": FORMAT, **metadata}, f, indent=1, sort_keys=True)
  return prefix


def _read_metadata(path):
  with open(os.path.join(path, METADATA)) as f:
    metadata = json.load(f)
  if metadata.get("format") != FORMAT:
    raise ValueError(f"not tfvision weights of format {FORMAT!r}, received path={path!r}")
  return metadata


def load_converted(model, path, fresh: bool = False) -> mapping.Plan:
  """Loads converted tfvision weights (a `convert` output) into `model`.

  The weights' own model (its preset and arguments, from the metadata) is rebuilt and
  restored, then copied variable by variable into `model`: same paths and shapes, or a
  `WeightsMismatchError` listing them. Whole layers `model` lacks are dropped (the
  classifier, for `include_top=False`); anything else that does not fit is an error.
  """
  metadata = _read_metadata(path)
  from tfvision.export.checkpoint import restore_checkpoint  # pylint: disable=import-outside-toplevel
  source_model = get_preset(metadata["preset"]).build(**metadata["arguments"])
  # The exporters' strict restore: every variable of the weights' own model is read.
  restore_checkpoint(source_model, path)
  arrays = {name: variable.numpy()
            for name, variable in mapping.named_variables(source_model).items()}
  layers = {layer.name for layer in model.layers}
  plan = mapping.plan(model, arrays, [mapping.Rule(r".*", "{0}")],
                      source_name=f"converted weights {path!r} ({metadata['preset']})",
                      drop=lambda key: key.split("/")[0] not in layers)
  del source_model, arrays
  mapping.assign(model, plan, rollback=not fresh)
  return plan


def load_weights(model, weights, converter: Optional[str] = None,
                 fresh: bool = False) -> mapping.Plan:
  """Loads converted tfvision weights or an authors' file into `model` (all or nothing;
  `fresh`: built only to be loaded, no rollback copy)."""
  if not isinstance(weights, (str, os.PathLike)):
    raise ValueError(f"weights must be a path here, received weights={weights!r}")
  path = os.fspath(weights)
  if not os.path.exists(path) and not os.path.exists(path + ".index"):
    raise ValueError(f"no such file or directory, received weights={path!r}")
  if is_converted(path):
    return load_converted(model, path, fresh)
  return load_source(model, path, converter, fresh)


def convert(name: str, source: str, output: str, converter: Optional[str] = None,
            release: Optional[Release] = None, **kwargs) -> Dict[str, Any]:
  """Builds preset `name`, loads the authors' `source` into it, writes tfvision weights.

  Args:
    name: registry name of the model the file is for.
    source: the authors' file (see `load_source`).
    output: directory for the converted weights.
    converter: "deeplab2" or "timm_resnest" (default: the release's, or guessed).
    release: the `Release` the file comes from (its arguments build the model).
    **kwargs: constructor overrides (e.g. include_top=False).

  Returns:
    A report: coverage (tensors used / present), ignored and dropped keys, seconds.
  """
  preset = get_preset(name)
  arguments = {**(dict(release.arguments) if release else {}), **kwargs}
  if converter is None and release is not None:
    converter = release.converter
    try:
      guessed = guess_converter(source)
    except ValueError:
      guessed = converter
    if guessed != converter:
      raise ValueError(f"{name!r}'s weights are read by the {converter} converter, but the "
                       f"file looks like a {guessed} checkpoint; pass the file of this "
                       f"release ({release.url}), received source={os.fspath(source)!r}")
  converter = converter or guess_converter(source)
  start = time.perf_counter()
  model = preset.build(**arguments)
  built = time.perf_counter()
  plan = load_source(model, source, converter, fresh=True)
  loaded = time.perf_counter()
  used, present = plan.coverage
  report = {
      "preset": name, "arguments": _plain(arguments), "converter": converter,
      "source": os.path.basename(os.fspath(source)),
      "url": release.url if release else None,
      "dataset": release.dataset if release else None,
      "labels": release.labels if release else None,
      "tensors_used": used, "tensors_present": present,
      "ignored_state": len(plan.ignored), "dropped": plan.dropped,
      "variables": len(plan.values),
      "seconds_build": round(built - start, 2), "seconds_convert": round(loaded - built, 2),
  }
  save_converted(model, output, report)
  report["seconds_total"] = round(time.perf_counter() - start, 2)
  return report


def _plain(value):
  return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(
      v, "tolist") else str(v)))


def fetch(name: str, alias: str, home: Optional[str] = None, progress: bool = True) -> str:
  """Converted weights of release `alias` of preset `name`, downloading and converting
  only what the cache lacks. Returns the converted weights' directory."""
  release = release_of(name, alias)
  home = home or download_lib.cache_home()
  output = os.path.join(home, "weights", name, alias)
  if is_converted(output):
    return output
  filename = release.filename or release.url.rstrip("/").split("/")[-1]
  source = download_lib.download(release.url, filename, sha256=release.sha256, home=home,
                                 progress=progress)
  staging = output + ".converting"
  shutil.rmtree(staging, ignore_errors=True)
  convert(name, source, staging, release=release)
  shutil.rmtree(output, ignore_errors=True)
  os.replace(staging, output)
  return output


def pretrained(name: str, weights, **kwargs):
  """`create_model(name, weights=...)`: the preset with released or local weights.

  weights: an alias of the preset's releases ("imagenet", "cityscapes"), a path to
  converted tfvision weights or to an authors' file, or None (random initialisation).
  The release's arguments are defaults (a deeplab2 ImageNet backbone builds with
  `include_top=False`); `kwargs` override them.
  """
  preset = get_preset(name)
  if weights is None:
    return preset.build(**kwargs)
  if isinstance(weights, str) and not os.path.exists(weights) and (
      "/" not in weights and os.sep not in weights and "." not in weights):
    release = release_of(name, weights)
    path = fetch(name, weights)
    model = preset.build(**{**dict(release.arguments), **kwargs})
    load_converted(model, path, fresh=True)
    return model
  model = preset.build(**kwargs)
  load_weights(model, weights, fresh=True)
  return model
