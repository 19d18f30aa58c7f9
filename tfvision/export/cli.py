"""Command-line export: `tfvision-export-saved-model` and `tfvision-export-tflite`.

    tfvision-export-saved-model --model swidernet_0.25_0.25_0.75 \\
        --model-kwargs '{"num_classes": 10}' --checkpoint /path/model_dir \\
        --input-size 224 --output /tmp/sm --verify
    tfvision-export-tflite --model swidernet_0.25_0.25_0.75 \\
        --model-kwargs '{"num_classes": 10}' --checkpoint /path/model_dir \\
        --input-size 224 --quantization int8 --representative-data shapes \\
        --output /tmp/model_int8.tflite --verify --ops-report

The model comes from the registry (`--model`, `--model-kwargs`, `--tiny`) with weights
from a Model Garden checkpoint (`--checkpoint`, item `model`), or from a saved Keras file
(`--keras-file`). `--verify` runs the exported artefact against the Keras model on
built-in (or folder) images and exits with status 1 when the float tolerances
(SavedModel 1e-5, TFLite float32 1e-4) or the given `--min-agreement` /
`--max-metric-drop` are missed. Bad arguments exit with status 2 and a message naming
the argument.
"""
import argparse
import importlib
import json
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SAVED_MODEL_TOLERANCE = 1e-5
TFLITE_FLOAT32_TOLERANCE = 1e-4


def parse_input_size(text):
  """"224" -> (224, 224); "240x320" -> (240, 320) (height x width)."""
  try:
    parts = [int(part) for part in text.lower().split("x")]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected SIDE or HEIGHTxWIDTH, got {text!r}") from None
  if len(parts) == 1:
    parts = parts * 2
  if len(parts) != 2 or min(parts) < 1:
    raise argparse.ArgumentTypeError(f"expected SIDE or HEIGHTxWIDTH, got {text!r}")
  return tuple(parts)


_FLAG_NAMES = {"name": "model", "count": "representative-count",
               "postprocess_fn": "postprocess"}
_LIBRARY_ARGUMENTS = ("signatures", "representative_data", "input_size", "quantization",
                      "checkpoint", "keras_file", "model_kwargs", "integer_io", "task",
                      "top_k", "batch_size", "postprocess_fn", "name", "count",
                      "dataset", "keep_float_ops")


def cli_message(error):
  """A library error with its argument names spelled as this command's flags."""
  message = str(error)
  for name in _LIBRARY_ARGUMENTS:
    flag = _FLAG_NAMES.get(name, name.replace("_", "-"))
    message = re.sub(rf"(?<![\w-]){name}=", f"--{flag}=", message)
  return message


def _load_callable(path):
  """"package.module:function" -> the function."""
  module_name, _, attribute = path.partition(":")
  if not module_name or not attribute:
    raise ValueError(f"expected module:function, received postprocess_fn={path!r}")
  try:
    return getattr(importlib.import_module(module_name), attribute)
  except (ImportError, AttributeError) as error:
    raise ValueError(f"cannot import it ({error}), received postprocess_fn={path!r}") from error


def _common_arguments(parser):
  source = parser.add_argument_group("model")
  source.add_argument("--model", help="registry name (python -m tfvision.demo --list)")
  source.add_argument("--model-kwargs", default=None,
                      help='constructor overrides as JSON, e.g. \'{"num_classes": 10}\'')
  source.add_argument("--tiny", action="store_true",
                      help="build the registry entry's tiny configuration")
  source.add_argument("--checkpoint",
                      help="Model Garden model_dir or checkpoint prefix (item `model`)")
  source.add_argument("--keras-file", help="a saved .keras / .h5 model instead of --model")
  source.add_argument("--random-weights", action="store_true",
                      help="export freshly initialised weights (smoke tests only)")
  source.add_argument("--task", choices=("classification", "semantic", "panoptic"),
                      help="default: read from the model's outputs")
  source.add_argument("--postprocess", default=None,
                      help="panoptic post-processing as module:function (default: "
                           "PanopticInference's post-processor with --dataset's settings)")
  source.add_argument("--dataset", default=None,
                      help="panoptic label scheme: cityscapes, coco or shapes (default: "
                           "by the class count, 19 cityscapes, 134 coco)")
  parser.add_argument("--input-size", type=parse_input_size, default=None,
                      help="SIDE or HEIGHTxWIDTH the model runs at")
  check = parser.add_argument_group("verify")
  check.add_argument("--verify", action="store_true",
                     help="compare the exported artefact with the Keras model")
  check.add_argument("--verify-data", default="shapes",
                     help="'shapes' (built-in dataset, validation split) or a folder")
  check.add_argument("--verify-images", type=int, default=16)
  check.add_argument("--min-agreement", type=float, default=None,
                     help="fail below this top-1 / per-pixel agreement (e.g. 0.95)")
  check.add_argument("--max-metric-drop", type=float, default=None,
                     help="fail above this accuracy / mIoU drop in points (needs labels)")
  parser.add_argument("--report-json", default=None,
                      help="also write the verify / ops report as JSON here")


def _model_from_args(args):
  from tfvision.export import checkpoint  # pylint: disable=import-outside-toplevel
  return checkpoint.load_model(
      args.model, model_kwargs=args.model_kwargs, checkpoint=args.checkpoint,
      keras_file=args.keras_file, tiny=args.tiny, allow_random_weights=args.random_weights)


def _verify_images(args, size, model):
  """uint8 verification images at `size` (the model's size when none is fixed)."""
  from tfvision.export import contract, data  # pylint: disable=import-outside-toplevel
  if size is None:
    size = contract.model_input_size(model) or (224, 224)
  return data.load_images(args.verify_data, args.verify_images, size,
                          name="--verify-data")


def _finish(args, report, tolerance, extra=None):
  """Prints the report; returns the exit status (1 when a threshold is missed)."""
  print(report.format())
  problems = report.failures(max_abs_error=tolerance, min_agreement=args.min_agreement,
                             max_metric_drop=args.max_metric_drop)
  payload = dict(report=report.to_dict(), failures=problems, **(extra or {}))
  if args.report_json:
    with open(args.report_json, "w", encoding="utf-8") as f:
      json.dump(payload, f, indent=2)
  for problem in problems:
    print(f"VERIFY FAILED: {problem}")
  return 1 if problems else 0


def saved_model_main(argv=None):
  """Entry point of `tfvision-export-saved-model`."""
  from tfvision.export import serving  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(
      prog="tfvision-export-saved-model", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  _common_arguments(parser)
  parser.add_argument("--output", required=True, help="SavedModel directory to write")
  parser.add_argument("--signatures", default=",".join(serving.SIGNATURES),
                      help="comma-separated subset of " + ",".join(serving.SIGNATURES) +
                      " (the first is also serving_default)")
  parser.add_argument("--batch-size", type=int, default=None,
                      help="fixed batch size of the signatures (default: any)")
  parser.add_argument("--top-k", type=int, default=5)
  parser.add_argument("--eval-scales", default="1",
                      help="test-time scales whose predictions are averaged (semantic / "
                      "panoptic), e.g. 0.5,0.75,1,1.25,1.5,1.75")
  parser.add_argument("--flip", action="store_true",
                      help="also average the mirrored image's predictions")
  args = parser.parse_args(argv)
  signatures = [name.strip() for name in args.signatures.split(",") if name.strip()]
  try:
    eval_scales = [float(value) for value in args.eval_scales.split(",")]
  except ValueError:
    parser.error(f"--eval-scales takes comma-separated numbers, received "
                 f"{args.eval_scales!r}")
  try:
    serving.check_signatures(signatures)  # before the (possibly slow) model build
    model = _model_from_args(args)
    postprocess = _load_callable(args.postprocess) if args.postprocess else None
    serving.export_saved_model(
        model, args.output, input_size=args.input_size, signatures=signatures,
        task=args.task, postprocess_fn=postprocess, dataset=args.dataset, top_k=args.top_k,
        batch_size=args.batch_size, eval_scales=eval_scales, flip=args.flip)
    print(f"SavedModel written to {args.output} (signatures: {', '.join(signatures)}, "
          "serving_default = " + signatures[0] + ")")
    if not args.verify:
      return 0
    from tfvision.export import verify  # pylint: disable=import-outside-toplevel
    images = _verify_images(args, args.input_size, model)
    status = 0
    for signature in signatures:
      report = verify.verify_saved_model(args.output, model, images, signature=signature,
                                         postprocess_fn=postprocess)
      status = max(status, _finish(args, report, SAVED_MODEL_TOLERANCE))
    return status
  except ValueError as error:
    parser.error(cli_message(error))
  return 2  # parser.error exits


def tflite_main(argv=None):
  """Entry point of `tfvision-export-tflite`."""
  from tfvision.export import tflite  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(
      prog="tfvision-export-tflite", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  _common_arguments(parser)
  parser.add_argument("--output", required=True, help=".tflite file to write")
  parser.add_argument("--quantization", default="float32", choices=tflite.QUANTIZATIONS)
  parser.add_argument("--representative-data", default=None,
                      help="int8 calibration images: 'shapes' (built-in dataset, train "
                           "split) or a folder of images")
  parser.add_argument("--representative-count", type=int, default=100)
  parser.add_argument("--integer-io", action="store_true",
                      help="int8 only: uint8 input pixels and int8 outputs")
  parser.add_argument("--keep-float-ops", default="",
                      help="int8 only: comma-separated TFLite op types to keep in float32 "
                           "(e.g. SOFTMAX,BATCH_MATMUL), or 'auto' for those XNNPACK "
                           "cannot run in int8; the ops report says which ops fall "
                           "outside XNNPACK")
  parser.add_argument("--ops-report", action="store_true", help="print the ops used")
  parser.add_argument("--num-threads", type=int, default=2, help="interpreter threads")
  args = parser.parse_args(argv)
  try:
    if args.quantization == "int8" and args.representative_data is None:
      raise ValueError("int8 quantization calibrates on representative images: pass "
                       "--representative-data shapes or a folder of images, received "
                       "representative_data=None")
    model = _model_from_args(args)
    result = tflite.export_tflite(
        model, args.output, input_size=args.input_size, quantization=args.quantization,
        representative_data=args.representative_data,
        representative_count=args.representative_count, task=args.task,
        integer_io=args.integer_io,
        keep_float_ops=(args.keep_float_ops if args.keep_float_ops == tflite.AUTO else
                        [name for name in args.keep_float_ops.split(",") if name]))
    print(f"TFLite ({args.quantization}, {result.input_size[0]}x{result.input_size[1]}) "
          f"written to {args.output}: {result.ops_report.size_bytes:,d} bytes")
    if args.ops_report:
      print(result.ops_report.format())
    if not args.verify:
      if args.report_json:
        with open(args.report_json, "w", encoding="utf-8") as f:
          json.dump({"ops": result.ops_report.to_dict()}, f, indent=2)
      return 0
    from tfvision.export import verify  # pylint: disable=import-outside-toplevel
    images = _verify_images(args, result.input_size, model)
    postprocess = _load_callable(args.postprocess) if args.postprocess else None
    report = verify.verify_tflite(result.flatbuffer, model, images,
                                  num_threads=args.num_threads, postprocess_fn=postprocess,
                                  dataset=args.dataset,
                                  artifact=f"tflite:{args.quantization}")
    tolerance = TFLITE_FLOAT32_TOLERANCE if args.quantization == "float32" else None
    return _finish(args, report, tolerance, extra={"ops": result.ops_report.to_dict()})
  except ValueError as error:
    parser.error(cli_message(error))
  return 2  # parser.error exits


