"""Writes configs/**/*_{tpu,gpu}.yaml from the registered experiments.

    python scripts/write_configs.py           # rewrite every YAML file
    python scripts/write_configs.py --check   # exit 1 and name the stale files

Each file restates its experiment's recipe card (`tfvision.configs.recipes.card_rows`:
every setting that differs from Model Garden's defaults, and those the card sources
although they equal the default), in config order, so loading it onto its experiment
changes nothing but the runtime; tests/test_tpu_configs.py checks that. TPU files run on Cloud TPU in bfloat16 and document in their header the core
counts whose slices they run on (`tfvision.configs.tpu.supported_cores`); GPU files
switch to MirroredStrategy on 8 GPUs in float16.

A file's `backbone:` block is kept verbatim when the file exists (the backbone specs are
edited by hand, see tfvision/configs/backbones.py); new files get the active backbone
branch with all its fields.
"""
import argparse
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
GPU_RUNTIME = {"distribution_strategy": "mirrored", "num_gpus": 8,
               "mixed_precision_dtype": "float16", "loss_scale": "dynamic"}
TPU_RUNTIME = {"distribution_strategy": "tpu", "mixed_precision_dtype": "bfloat16"}
BACKBONE_MARK = "__BACKBONE_BLOCK__"


def _panoptic_files():
  """(experiment, directory, stem, recipe line) of the Panoptic-DeepLab variants."""
  from tfvision.configs import panoptic_deeplab  # pylint: disable=import-outside-toplevel
  files = []
  for scales in panoptic_deeplab.FAST_REGIME:
    for dataset in panoptic_deeplab.DATASET_EXPERIMENTS:
      name = panoptic_deeplab.fast_experiment_name(scales, dataset)
      files.append((name, "panoptic_deeplab", name[len("tfvision_"):],
                    "swidernet.md Sec. 4 and Table 5 (fast regime, separable ASPP and "
                    "decoders)"))
  name = "tfvision_panoptic_deeplab_swidernet_sac_cityscapes_deeplab2"
  files.append((name, "panoptic_deeplab", name[len("tfvision_"):],
                "deeplab2 configs/cityscapes/panoptic_deeplab/"
                "swidernet_sac_1_1_1_os16.textproto (its released checkpoint)"))
  return files


def existing_files():
  """{(experiment, variant): (path, recipe line)} of the YAML files on disk."""
  found = {}
  for path in sorted(CONFIG_DIR.rglob("*.yaml")):
    text = path.read_text()
    experiment = re.search(r"^# experiment: (\S+)$", text, re.M).group(1)
    recipe = re.search(r"^# Recipe: (.*?);", text, re.M).group(1)
    variant = path.stem.rsplit("_", 1)[1]
    found[(experiment, variant)] = (path, recipe)
  return found


def planned_files():
  """{(experiment, variant): (path, recipe line)} of every file to write."""
  files = existing_files()
  for name, directory, stem, recipe in _panoptic_files():
    for variant in ("tpu", "gpu"):
      files.setdefault((name, variant),
                       (CONFIG_DIR / directory / f"{stem}_{variant}.yaml", recipe))
  return files


def _nest(flat):
  """{"a.b.c": v} -> {"a": {"b": {"c": v}}}, keeping the order of first appearance."""
  tree = {}
  for key, value in flat.items():
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
      node = node.setdefault(part, {})
    node[parts[-1]] = value
  return tree


def _backbone_block(path):
  """The verbatim `    backbone:` block of an existing file, or None."""
  if not path.exists():
    return None
  lines = path.read_text().splitlines()
  for start, line in enumerate(lines):
    if line.startswith("    backbone:"):
      end = start + 1
      while end < len(lines) and (lines[end].startswith("      ") or not lines[end]):
        end += 1
      return "\n".join(lines[start:end])
  return None


def _dump(tree):
  return yaml.safe_dump(tree, default_flow_style=None, sort_keys=False, width=100)


def _header(name, path, variant, recipe, cores):
  rel = path.relative_to(ROOT)
  run = rel.stem[:-len(f"_{variant}")]
  lines = [f"# experiment: {name}"]
  if variant == "tpu":
    lines += [f"# Recipe: {recipe}; Cloud TPU, bfloat16.",
              f"# TPU cores: {', '.join(str(c) for c in cores)}",
              "#   (slices whose core count divides the train and evaluation global batches;",
              "#   tests/test_tpu_configs.py checks them against Model Garden's input reader)",
              f"#   tfvision-train --experiment={name} --config_file={rel} \\",
              f"#     --mode=train_and_eval --model_dir=gs://BUCKET/{run} --tpu=TPU_NAME"]
  else:
    lines += [f"# Recipe: {recipe}; 8 GPUs per worker (MirroredStrategy), float16 with "
              "dynamic loss scaling. The global batch is",
              "# the paper's; when it does not fit, run several such workers with",
              "# runtime.distribution_strategy=multi_worker_mirrored and TF_CONFIG "
              "(README, \"Training\"),",
              "# or lower global_batch_size and the learning rate linearly.",
              f"#   tfvision-train --experiment={name} --config_file={rel} \\",
              f"#     --mode=train_and_eval --model_dir=/runs/{run}"]
  lines += [f"# Recipe card (each setting's source): tfvision-train --describe={name}",
            "# Datasets are read from TFDS (set tfds_data_dir) or, with tfds_name: '' and",
            "# input_path, from TFRecords."]
  return "\n".join(lines)


def render(name, path, variant, recipe):
  """The text of one YAML file."""
  from official.core import exp_factory  # pylint: disable=import-outside-toplevel
  from tfvision.configs import recipes, tpu  # pylint: disable=import-outside-toplevel
  import tfvision.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  params = exp_factory.get_exp_config(name)
  carded = {row[0]: row[1] for row in recipes.card_rows(name, params)}
  order = list(recipes.settings(params))
  flat = {key: carded[key] for key in order
          if key in carded and not key.startswith("runtime.")}
  tree = _nest(flat)
  tree = {"runtime": dict(TPU_RUNTIME if variant == "tpu" else GPU_RUNTIME), **tree}
  block = _backbone_block(path)
  model = tree["task"].get("model", {})
  if "backbone" in model:
    if block is None:
      backbone = params.task.model.backbone
      model["backbone"] = {"type": backbone.type,
                           backbone.type: backbone.get().as_dict()}
    else:
      model["backbone"] = BACKBONE_MARK
  text = _dump(tree)
  if block is not None:
    text = text.replace(f"    backbone: {BACKBONE_MARK}", block)
  cores = tpu.supported_cores(params)
  return _header(name, path, variant, recipe, cores) + "\n" + text


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 naming the files that differ")
  args = parser.parse_args(argv)
  stale = []
  for (name, variant), (path, recipe) in sorted(planned_files().items()):
    text = render(name, path, variant, recipe)
    if path.exists() and path.read_text() == text:
      continue
    stale.append(str(path.relative_to(ROOT)))
    if not args.check:
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_text(text)
  for path in stale:
    print(("stale: " if args.check else "wrote: ") + path)
  return 1 if args.check and stale else 0


if __name__ == "__main__":
  sys.exit(main())
