#!/usr/bin/env python3
"""Prints README's table of released weights from the presets' `Release` metadata.

    .venv/bin/python scripts/zoo_table.py

tests/test_weights_pretrained.py checks that README.md holds exactly these rows.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfvision.weights import api  # pylint: disable=wrong-import-position

_METRICS = (("top1", "top-1 {:.2f}"), ("pq", "PQ {:.1f}"), ("miou", "mIoU {:.1f}"),
            ("ap_mask", "AP {:.1f}"))


def rows():
  """(preset, alias, Release) of every release, dense models after backbones."""
  found = []
  for name, releases in api.released_presets().items():
    for alias, release in releases.items():
      found.append((release.dataset != "imagenet2012", release.converter, name, alias,
                    release))
  return [(name, alias, release) for _, _, name, alias, release in sorted(
      found, key=lambda r: (r[0], r[1], r[2]))]


def metrics(release):
  shown = [fmt.format(release.metrics[key]) for key, fmt in _METRICS
           if key in release.metrics]
  return ", ".join(shown) if shown else "not published"


def table():
  lines = ["| preset | `weights=` | dataset, input | reported | authors' file |",
           "|---|---|---|---|---|"]
  for name, alias, release in rows():
    size = "x".join(str(s) for s in release.input_size)
    parts = release.url.rstrip("/").split("/")
    file = parts[-4] if parts[-1] == "model.safetensors" else parts[-1]
    lines.append(f"| `{name}` | `\"{alias}\"` | {release.dataset}, {size} | "
                 f"{metrics(release)} | [{file}]({release.url}) |")
  return "\n".join(lines)


if __name__ == "__main__":
  print(table())
