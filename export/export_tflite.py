#!/usr/bin/env python3
"""Exports a tfvision model to TFLite (same as `tfvision-export-tflite`).

    python export/export_tflite.py --model swidernet_0.25_0.25_0.75 \
        --checkpoint /path/model_dir --input-size 224 --quantization int8 \
        --representative-data shapes --output /tmp/m.tflite --verify --ops-report

See `--help` and tfvision/export/cli.py.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfvision.export.cli import tflite_main  # noqa: E402

if __name__ == "__main__":
  sys.exit(tflite_main())
