#!/usr/bin/env python3
"""TFLite (LiteRT, XNNPACK) vs SavedModel latency and .tflite sizes of full-size models.

    python benchmarks/export_latency.py MODEL[@SIZE] [MODEL[@SIZE] ...] \\
        [--kwargs '{"output_stride": 16}'] [--threads 2] [--runs 20] [--sizes-only]

For each model (full size, random weights: latency and size do not depend on the
values), batch 1, at SIZE (default: the entry's paper size):

- SavedModel: `export_saved_model(..., signatures=["image_tensor"])`, reloaded and
  called with one uint8 image: the whole serving path (resize, model, softmax / argmax,
  restoring the size, panoptic post-processing);
- TF model: the same Keras model under `tf.function` on float32 pixels (the network
  alone, what TFLite runs);
- TFLite float32 and int8 (full-integer, calibrated on `--calibration-images` built-in
  images) in the LiteRT interpreter with `--threads` threads; XNNPACK is LiteRT's
  default CPU delegate.

TensorFlow runs with the same thread count (intra-op = `--threads`, inter-op = 1), set
before it starts. Latencies are medians over `--runs` runs after `--warmup` runs.
`--sizes-only` converts and reports the .tflite sizes (deterministic) without timing.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfvision.export.profile import median_ms  # noqa: E402


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("models", nargs="+", help="MODEL or MODEL@SIZE (registry names)")
  parser.add_argument("--kwargs", default=None,
                      help="JSON constructor overrides applied to every model")
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--runs", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--calibration-images", type=int, default=16)
  parser.add_argument("--quantizations", default="float32,int8",
                      help="comma-separated TFLite quantizations to convert")
  parser.add_argument("--keep-float-ops", default="",
                      help="int8 op types kept in float: 'auto' or a comma-separated list")
  parser.add_argument("--sizes-only", action="store_true")
  parser.add_argument("--json", default=None)
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  from tfvision import export  # pylint: disable=import-outside-toplevel
  from tfvision.models import get_preset  # pylint: disable=import-outside-toplevel

  kwargs = export.checkpoint.parse_model_kwargs(args.kwargs)
  quantizations = [q.strip() for q in args.quantizations.split(",") if q.strip()]
  rows = []
  with tempfile.TemporaryDirectory() as workdir:
    for spec in args.models:
      name, _, size = spec.partition("@")
      entry = get_preset(name)
      size = int(size) if size else entry.default_size
      model = entry.build(**kwargs)
      params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
      row = {"model": name, "size": size, "params": params, "kwargs": kwargs}
      image = export.load_images("shapes", 1, (size, size))
      flatbuffers = {}
      for quantization in quantizations:
        result = export.export_tflite(
            model, os.path.join(workdir, f"{name}_{quantization}.tflite"), input_size=size,
            quantization=quantization, representative_data="shapes",
            representative_count=args.calibration_images,
            keep_float_ops=(() if quantization != "int8" else args.keep_float_ops
                            if args.keep_float_ops == "auto" else
                            [n for n in args.keep_float_ops.split(",") if n]))
        flatbuffers[quantization] = result.flatbuffer
        row[f"tflite_{quantization}_bytes"] = result.ops_report.size_bytes
      if not args.sizes_only:
        path = os.path.join(workdir, f"{name}_saved_model")
        export.export_saved_model(model, path, input_size=size, signatures=["image_tensor"])
        serve = tf.saved_model.load(path).signatures["image_tensor"]
        uint8 = tf.constant(image)
        row["saved_model_ms"] = median_ms(lambda: serve(inputs=uint8), args.runs, args.warmup)
        forward = tf.function(lambda x: model(x, training=False))
        pixels = tf.constant(image.astype("float32"))
        row["tf_model_ms"] = median_ms(lambda: tf.nest.map_structure(
            lambda t: t.numpy(), forward(pixels)), args.runs, args.warmup)
        for quantization, flatbuffer in flatbuffers.items():
          interpreter = export.verify.tflite_interpreter(flatbuffer, args.threads)
          runner = interpreter.get_signature_runner()
          dtype = runner.get_input_details()["image"]["dtype"]
          feed = image.astype(dtype)
          row[f"tflite_{quantization}_ms"] = median_ms(lambda: runner(image=feed), args.runs,
                                                      args.warmup)
      rows.append(row)
      print(json.dumps(row), flush=True)
      del model
  print()
  columns = ["model", "size", "params"] + [f"tflite_{q}_bytes" for q in quantizations]
  if not args.sizes_only:
    columns += ["saved_model_ms", "tf_model_ms"] + [f"tflite_{q}_ms" for q in quantizations]
  print("| " + " | ".join(columns) + " |")
  print("|" + "---|" * len(columns))
  for row in rows:
    cells = []
    for column in columns:
      value = row[column]
      if column.endswith("_bytes"):
        cells.append(f"{value / 2 ** 20:.2f} MiB")
      elif column.endswith("_ms"):
        cells.append(f"{value:.1f}")
      elif isinstance(value, int) and column == "params":
        cells.append(f"{value:,d}")
      else:
        cells.append(str(value))
    print("| " + " | ".join(cells) + " |")
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(rows, f, indent=2)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
