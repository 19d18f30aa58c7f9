"""`tfvision-convert`: the authors' released weights as tfvision weights.

    tfvision-convert swidernet_sac_1_1_1 swidernet_sac_1_1_1_imagenet1k_strong_training_strategy.tar.gz out/
    tfvision-convert resnest50 model.safetensors out/ --release imagenet
    tfvision-convert panoptic_deeplab_swidernet_sac_1_1_1_os16 --download cityscapes
    tfvision-convert --list

The output directory holds a `tf.train.Checkpoint(model=...)` and its metadata
(`tfvision_weights.json`): `create_model(name, weights="out/")`, an experiment's
`init_checkpoint: out/` and the exporters' `--checkpoint out/` read it.
"""
import argparse
import json
import sys

from tfvision.weights import api


def _parser():
  parser = argparse.ArgumentParser(prog="tfvision-convert", description=__doc__.split("\n")[0])
  parser.add_argument("preset", nargs="?", help="registry name of the model (list_models())")
  parser.add_argument("source", nargs="?", help="deeplab2 checkpoint (.tar.gz, directory or "
                      "prefix) or ResNeSt .safetensors / .pth")
  parser.add_argument("output", nargs="?", help="directory for the converted weights")
  parser.add_argument("--release", default=None, help="the preset's release the file is "
                      "(its converter and model arguments); default: its only release")
  parser.add_argument("--converter", default=None, choices=api.CONVERTERS)
  parser.add_argument("--model-kwargs", default="{}", help="JSON constructor overrides")
  parser.add_argument("--download", metavar="ALIAS", default=None,
                      help="download and convert a release into the cache instead")
  parser.add_argument("--list", action="store_true", help="list the released weights")
  return parser


def main(argv=None):
  parser = _parser()
  args = parser.parse_args(argv)
  try:
    if args.list:
      for name, releases in sorted(api.released_presets().items()):
        for alias, release in releases.items():
          print(f"{name}\t{alias}\t{release.dataset}\t{release.url}")
      return 0
    if not args.preset:
      parser.error("a preset name is required (or --list)")
    if args.download:
      print(api.fetch(args.preset, args.download))
      return 0
    if not args.source or not args.output:
      parser.error("give the preset, the source file and the output directory")
    try:
      kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as error:
      raise ValueError(f"--model-kwargs must be a JSON object ({error}), received "
                       f"model_kwargs={args.model_kwargs!r}") from None
    if not isinstance(kwargs, dict):
      raise ValueError(f"--model-kwargs must be a JSON object, received "
                       f"model_kwargs={args.model_kwargs!r}")
    release = None
    from tfvision.models import get_preset  # pylint: disable=import-outside-toplevel
    releases = get_preset(args.preset).weights
    if args.release is not None:
      release = api.release_of(args.preset, args.release)
    elif len(releases) == 1:
      release = next(iter(releases.values()))
    report = api.convert(args.preset, args.source, args.output, converter=args.converter,
                         release=release, **kwargs)
  except ValueError as error:
    print(f"tfvision-convert: error: {error}", file=sys.stderr)
    return 2
  print(json.dumps(report, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
