#!/usr/bin/env python3
"""Exports a tfvision model as a SavedModel (same as `tfvision-export-saved-model`).

    python export/export_saved_model.py --model swidernet_0.25_0.25_0.75 \
        --checkpoint /path/model_dir --input-size 224 --output /tmp/sm --verify

See `--help` and tfvision/export/cli.py.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfvision.export.cli import saved_model_main  # noqa: E402

if __name__ == "__main__":
  sys.exit(saved_model_main())
