#!/usr/bin/env python3
"""Export parity of every registered model: SavedModel and TFLite against Keras.

    python benchmarks/export_parity.py                      # every registered model
    python benchmarks/export_parity.py --task classification --family swidernet
    python benchmarks/export_parity.py panoptic_deeplab_swidernet_0.25_0.25_0.75 --json out.json

For each model, at its registry *tiny* configuration and tiny input size:

1. fits it briefly on the built-in tfvision_shapes dataset (train split): image-level
   labels (3 classes) for classification, semantic maps (6 classes) for semantic and
   panoptic models (cross-entropy on `semantic_logits` only). Random-weight logits are
   near-uniform, so int8 top-1 agreement on them measures noise, not quantization;
   a fitted model has confident, input-dependent decisions to agree on. BatchNorm
   statistics are then re-estimated over 512 training images (cumulative average), so
   that inference-mode outputs are those of the fitted weights;
   Entries whose tiny models coincide (same config but the name) are measured once
   (one row, all names);
2. exports a SavedModel with all three signatures and verifies each on 64 validation
   images (max abs error of every float output, decision agreement);
3. converts to TFLite float32, float16, dynamic-range and int8 (calibrated on 64 train
   images, disjoint from the 64 evaluation images) and runs each in the LiteRT
   interpreter (XNNPACK, 2 threads): max abs logit error, top-1 (classification) or
   per-pixel argmax agreement, accuracy / mIoU against the labels and its drop, and the
   .tflite size.

The issue's bars: SavedModel <= 1e-5, TFLite float32 <= 1e-4 max abs logit error (both
scaled by max |logit| when that exceeds 1, as float32 keeps ~7 significant digits; the
table prints the absolute errors and the logit scale), int8 top-1 agreement >= 95 %
(classification) and mIoU drop <= 2 points (dense). Rows that miss one are marked in
the "ok" column; the exit status is 1 if any row misses.
Panoptic models are exported with the built-in tfvision_shapes label scheme
(`dataset="shapes"`: `PanopticInference`'s post-processor with its settings), and their
TFLite rows also report the agreement of the post-processed panoptic maps.
`--quantizations` restricts the TFLite conversions (e.g. `float32,int8`, the two the
issue's bars need) to save time.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from tfvision import export  # noqa: E402
from tfvision.data import shapes  # noqa: E402
from tfvision.models import get_preset, list_models  # noqa: E402

BARS = {"saved_model": 1e-5, "float32": 1e-4, "int8_top1": 0.95, "int8_miou_drop": 2.0}


def build(entry_or_fn, task, **extra):
  """The tiny model with the dataset's classes and no stochastic depth."""
  num_classes = 3 if task == "classification" else shapes.NUM_CLASSES
  if callable(entry_or_fn) and not hasattr(entry_or_fn, "build_tiny"):
    return entry_or_fn(num_classes=num_classes)
  return entry_or_fn.build_tiny(num_classes=num_classes,
                                **entry_or_fn.no_drop_path_arguments(), **extra)


def model_key(model):
  """The model's config without its name (JSON-able), to spot identical tiny models."""
  config = model.get_config()
  config.pop("name", None)
  return config


def training_data(size, count):
  examples = export.shapes_examples(count, (size, size), split="train")
  return examples["image"].astype("float32"), examples


def semantic_loss(labels, logits):
  logits = tf.image.resize(logits, tf.shape(labels)[1:3], method="bilinear")
  valid = tf.cast(labels != 255, tf.float32)
  safe = tf.where(labels == 255, 0, labels)
  loss = tf_keras.losses.sparse_categorical_crossentropy(safe, logits, from_logits=True)
  return tf.reduce_sum(loss * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)


def fit(model, task, images, examples, steps, batch, learning_rate, seed=0):
  """Adam on the shapes labels; returns the last losses."""
  labels = examples["label"] if task == "classification" else \
      examples["semantic"].astype("int32")
  optimizer = tf_keras.optimizers.Adam(learning_rate)

  @tf.function
  def step(x, y):
    with tf.GradientTape() as tape:
      raw = export.raw_outputs(model(x, training=True), task)
      if task == "classification":
        loss = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(
            y, raw["logits"], from_logits=True))
      else:
        loss = semantic_loss(y, raw["semantic_logits"])
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(
        [(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None])
    return loss

  rng = np.random.RandomState(seed)
  losses = []
  for _ in range(steps):
    index = rng.randint(0, len(images), batch)
    losses.append(float(step(images[index], labels[index])))
  return losses


def recalibrate_batch_norm(model, images, batch=64, batches=8):
  """Re-estimates BatchNorm moving statistics as the plain average over `batches`."""
  layers = [layer for layer in model.submodules
            if isinstance(layer, tf_keras.layers.BatchNormalization)]
  if not layers:
    return 0
  momenta = [layer.momentum for layer in layers]
  try:
    for index in range(min(batches, len(images) // batch)):
      for layer in layers:
        # moving = m * moving + (1 - m) * batch_stat with m = k / (k + 1): running mean.
        layer.momentum = index / (index + 1.0)
      model(images[index * batch:(index + 1) * batch], training=True)  # eager: momentum read now
  finally:
    for layer, momentum in zip(layers, momenta):
      layer.momentum = momentum
  return len(layers)


def keras_metric(model, task, images, examples):
  raw = export.raw_outputs(model(images.astype("float32"), training=False), task)
  if task == "classification":
    return 100.0 * float(np.mean(raw["logits"].numpy().argmax(-1) == examples["label"]))
  logits = tf.image.resize(raw["semantic_logits"], images.shape[1:3])
  return export.mean_iou(tf.argmax(logits, -1).numpy(), examples["semantic"],
                         shapes.NUM_CLASSES)


def measure(name, model, task, size, args, workdir):
  """All parity numbers of one model (a dict, one table row)."""
  evaluation = export.shapes_examples(args.eval_images, (size, size), split="validation")
  images = evaluation["image"]
  labels = evaluation["label"] if task == "classification" else evaluation["semantic"]
  calibration = export.load_images("shapes", args.calibration_images, (size, size),
                                   split="train")
  row = {"model": name, "task": task, "size": size,
         "params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
         "keras_metric": keras_metric(model, task, images, evaluation)}
  path = os.path.join(workdir, name.replace("/", "_"))
  start = time.perf_counter()
  dataset = "shapes" if task == "panoptic" else None
  export.export_saved_model(model, path, input_size=size, dataset=dataset)
  loaded = tf.saved_model.load(path)
  saved_errors, saved_agreement, problems = [], [], []
  for signature in export.SIGNATURES:
    report = export.verify_saved_model(path, model, images, signature=signature,
                                       loaded=loaded)
    saved_errors.append(max(report.max_abs_error.values()))
    saved_agreement.append(min(report.agreement.values()))
    if report.failures(max_abs_error=BARS["saved_model"]):
      problems.append(f"saved_model:{signature}")
  row["saved_model_max_abs_error"] = max(saved_errors)
  row["saved_model_agreement"] = min(saved_agreement)
  for quantization in args.quantizations:
    result = export.export_tflite(
        model, None, input_size=size, quantization=quantization,
        representative_data=calibration,
        keep_float_ops=args.keep_float_ops if quantization == "int8" else ())
    report = export.verify_tflite(result.flatbuffer, model, images, labels=labels,
                                  num_threads=2, dataset=dataset, artifact=quantization)
    if task == "panoptic":
      row[f"{quantization}_panoptic_agreement"] = report.agreement["panoptic_map"]
    row[f"{quantization}_max_abs_error"] = report.primary_error()
    row[f"{quantization}_agreement"] = report.agreement.get(
        "top1", report.agreement.get("semantic_map"))
    drop_key = "accuracy_drop" if task == "classification" else "miou_drop"
    row[f"{quantization}_metric_drop"] = report.metrics[drop_key]
    row[f"{quantization}_bytes"] = result.ops_report.size_bytes
    if quantization == "int8":
      row["int8_float_ops"] = result.ops_report.float_ops
      row["int8_keep_float_ops"] = args.keep_float_ops
      row["int8_outside_xnnpack"] = {k: v for k, v in
                                     result.ops_report.outside_xnnpack.items() if v}
    if quantization == "float32" and report.failures(max_abs_error=BARS["float32"]):
      problems.append("float32")
  row["logit_scale"] = report.reference_scale[
      "logits" if task == "classification" else "semantic_logits"]
  row["export_seconds"] = time.perf_counter() - start
  if "int8" in args.quantizations:
    if task == "classification" and row["int8_agreement"] < BARS["int8_top1"]:
      problems.append("int8 top-1")
    if task != "classification" and row["int8_metric_drop"] > BARS["int8_miou_drop"]:
      problems.append("int8 mIoU")
  row["misses"] = problems
  return row


def family_of(row):
  """Registry family of a row's (first) model name."""
  return get_preset(row["model"].split(",")[0].strip()).family


def rows_from_logs(paths):
  """Rows printed by earlier runs (one JSON object per line), sorted by family."""
  rows = []
  for path in paths:
    with open(path, encoding="utf-8") as f:
      rows += [json.loads(line) for line in f if line.startswith('{"model"')]
  return sorted(rows, key=lambda r: (family_of(r), r["task"]))


def markdown(rows):
  lines = [
      "| family | model | task | params | Keras acc/mIoU | max abs logit | SavedModel max err | "
      "TFLite f32 max err | f16 max err | dynamic agree | int8 max err | int8 agree | "
      "int8 acc/mIoU drop | f32 / int8 KB | ok |",
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
  for r in rows:
    if "error" in r:
      lines.append(f"| {family_of(r)} | {r['model']} | {r['task']} |" + " - |" * 11
                   + f" error: {r['error'][:120]} |")
      continue
    r = {**{f"{q}_{key}": float("nan") for q in ("float16", "dynamic", "int8")
            for key in ("max_abs_error", "agreement", "metric_drop", "bytes")}, **r}
    lines.append(
        f"| {family_of(r)} | {r['model']} | {r['task']} | {r['params']:,d} | {r['keras_metric']:.1f} | "
        f"{r['logit_scale']:.1f} | {r['saved_model_max_abs_error']:.1e} | "
        f"{r['float32_max_abs_error']:.1e} | "
        f"{r['float16_max_abs_error']:.1e} | {100 * r['dynamic_agreement']:.1f}% | "
        f"{r['int8_max_abs_error']:.2f} | {100 * r['int8_agreement']:.1f}%"
        + (f" (panoptic map {100 * r['int8_panoptic_agreement']:.1f}%)"
           if "int8_panoptic_agreement" in r else "") + " | "
        f"{r['int8_metric_drop']:+.2f} | {r['float32_bytes'] / 1024:.0f} / "
        f"{r['int8_bytes'] / 1024:.0f} | {'yes' if not r['misses'] else ', '.join(r['misses'])} |")
  # Conversions left out with --quantizations print as a dash.
  return "\n".join(line.replace("nan%", "-").replace("nan", "-") for line in lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("models", nargs="*", help="registry names (default: all registered)")
  parser.add_argument("--task", choices=("classification", "semantic", "panoptic"))
  parser.add_argument("--family")
  parser.add_argument("--quantizations", default=",".join(export.QUANTIZATIONS),
                      type=lambda text: [q for q in text.split(",") if q],
                      help="comma-separated TFLite conversions (default: all four)")
  parser.add_argument("--keep-float-ops", default=(),
                      type=lambda text: text if text == "auto" else
                      [name for name in text.split(",") if name],
                      help="int8 op types kept in float: 'auto' (those XNNPACK cannot "
                           "run in int8) or a comma-separated list (default: none)")
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--learning-rate", type=float, default=3e-3)
  parser.add_argument("--train-images", type=int, default=1024)
  parser.add_argument("--eval-images", type=int, default=64)
  parser.add_argument("--calibration-images", type=int, default=64)
  parser.add_argument("--size", type=int, default=None,
                      help="input side (default: each entry's tiny_size)")
  parser.add_argument("--json", default=None, help="write the rows as JSON here")
  parser.add_argument("--table-from", nargs="+", default=None, metavar="LOG",
                      help="only print the table of rows logged (stdout) by earlier runs")
  args = parser.parse_args(argv)
  if args.table_from:
    print(markdown(rows_from_logs(args.table_from)))
    return 0

  names = args.models or list_models(task=args.task, family=args.family)
  jobs, seen = [], {}
  for name in names:
    entry = get_preset(name)
    size = args.size or entry.tiny_input_size
    # Entries whose tiny models coincide (SWideRNets that differ only in the widths the
    # tiny configuration overrides, Axial-ResNet S/M/L/XL, Pale-T/S/B) build the same
    # network with the same seed: measured once, one row listing every name. The key
    # is the built model's config without its name.
    try:
      key = json.dumps([entry.task, size, model_key(build(entry, entry.task))],
                       sort_keys=True, default=repr)
    except Exception:  # pylint: disable=broad-except
      key = name  # measured on its own; the error shows in its row
    tf_keras.backend.clear_session()
    if key in seen:
      seen[key][0] += f", {name}"
      continue
    seen[key] = job = [name, entry, entry.task, size]
    jobs.append(job)
  unknown = [q for q in args.quantizations if q not in export.QUANTIZATIONS]
  if unknown or "float32" not in args.quantizations:
    parser.error(f"--quantizations must hold float32 and names out of "
                 f"{list(export.QUANTIZATIONS)}, received {args.quantizations}")

  rows = []
  data_cache = {}
  with tempfile.TemporaryDirectory() as workdir:
    for name, source, task, size in jobs:
      start = time.perf_counter()
      if size not in data_cache:
        data_cache[size] = training_data(size, args.train_images)
      images, examples = data_cache[size]
      tf_keras.utils.set_random_seed(0)
      try:
        model = build(source, task)
        losses = fit(model, task, images, examples, args.steps, args.batch,
                     args.learning_rate)
        recalibrate_batch_norm(model, images)
        row = measure(name, model, task, size, args, workdir)
        row["final_loss"] = float(np.mean(losses[-20:]))
      except Exception as error:  # pylint: disable=broad-except
        # One model's failure (a conversion or delegate error) is a row of the table,
        # not the end of the sweep.
        message = " ".join(f"{type(error).__name__}: {error}".split())
        row = {"model": name, "task": task, "size": size, "error": message[:300],
               "misses": ["error"]}
      row["seconds"] = time.perf_counter() - start
      rows.append(row)
      print(json.dumps(row), flush=True)
      tf_keras.backend.clear_session()
  print()
  print(markdown(rows))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(rows, f, indent=2)
  return 1 if any(r["misses"] for r in rows) else 0


if __name__ == "__main__":
  raise SystemExit(main())
