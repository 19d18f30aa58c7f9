#!/usr/bin/env python3
"""tfvision against its peers, and TFLite int8 against float32: every row in one command.

    TF_USE_LEGACY_KERAS=1 python benchmarks/peers.py --deeplab2 /path/to/deeplab2 \\
        [--rows resnest50,botnet50,...] [--kernel-paths onednn,eigen] [--rounds 5] \\
        [--json peers.jsonl]

Rows (inference; each row runs in a process of its own, per kernel path):

    resnest50      ResNeSt-50 / keras_cv_attention_models ResNest50, 224, batch 8
    botnet50       BoTNet-50 / kecam BotNet50(strides=2) (the same layout), 224, batch 8
    botnet_s1_50   BoT-S1-50 / kecam BotNet50() (its default strides=1: the S1 layout)
    axial_resnet_s AxialResNetS with stem_max_pool=False (deeplab2's graph) / deeplab2
                   axial_resnet_s, backbones at output stride 32, 224, batch 8
    swidernet_os16, swidernet_os32
                   SWideRNet-(0.25, 0.25, 0.75) with SE and SAC / deeplab2 `swidernet`
                   with the same multipliers, SE and SAC beyond stride 32 (its Cityscapes
                   config), backbones at 641, batch 1
    tflite:<model>[@size]
                   TFLite float32 vs int8 in LiteRT (XNNPACK), batch 1, `--threads`
                   threads, median of `--tflite-runs` runs per round (default: Pale-T,
                   ResNeSt-50, BoTNet-50, AxialResNetS at 224 and the demo's
                   Panoptic-DeepLab at 513); int8 keeps `--keep-float-ops` in float
                   ("auto": the op types XNNPACK cannot run in int8)

Each row builds both models, warms them up, then times them alternately in `--rounds`
rounds (`--min-seconds` per model per round) and reports each one's median round. The
ratio is the median over rounds of the peer's time over ours in the same round
(> 1: tfvision is faster; for TFLite rows int8 time over float32 time): on a shared
machine each time drifts between rounds, the ratio of two neighbouring ones much less
(`ratio_of_medians` is in the JSON too). Every row
prints and appends to `--json` one JSON line with the machine (CPU model, AVX-512 or
not, kernel path), the load average before and after, and every round.

Kernel paths: `onednn` sets TF_ENABLE_ONEDNN_OPTS=1, `eigen` sets it to 0 (TensorFlow's
generic kernels, the default on AMD and older Intel CPUs). The deeplab2 rows need
`--deeplab2 PATH`, a deeplab2 source checkout (the folder named `deeplab2`, with its
protos compiled: `python -m grpc_tools.protoc -I.. --python_out=.. ../deeplab2/*.proto`
from inside it, which this script runs when grpcio-tools is installed); they are
skipped without it. keras_cv_attention_models is the optional `[bench]` extra.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))

PEER_ROWS = ("resnest50", "botnet50", "botnet_s1_50", "axial_resnet_s", "swidernet_os16",
             "swidernet_os32")
TFLITE_MODELS = ("pale_tiny@224", "resnest50@224", "botnet50@224", "axial_resnet_s@224",
                 "panoptic_deeplab_swidernet_0.25_0.25_0.75@513")
KERNEL_PATHS = {"onednn": "1", "eigen": "0"}
SWIDERNET = dict(w1=0.25, w2=0.25, l=0.75)


def _deeplab2(path):
  """Imports deeplab2's encoder from a source checkout (compiling its protos if needed)."""
  from deeplab2_source import import_deeplab2  # pylint: disable=import-outside-toplevel
  import_deeplab2(path)
  from deeplab2.model.encoder import axial_resnet_instances  # pylint: disable=import-outside-toplevel
  return axial_resnet_instances


def build_pair(row, deeplab2):
  """(ours, peer, size, batch) for a peer row."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfvision.models import create_model  # pylint: disable=import-outside-toplevel
  if row in ("resnest50", "botnet50", "botnet_s1_50"):
    from keras_cv_attention_models import botnet, resnest  # pylint: disable=import-outside-toplevel
    shape = (224, 224, 3)
    peer_kwargs = dict(input_shape=shape, pretrained=None, classifier_activation=None)
    if row == "resnest50":
      peer = resnest.ResNest50(**peer_kwargs)
    else:
      peer = botnet.BotNet50(strides=2 if row == "botnet50" else 1, **peer_kwargs)
    return create_model(row, input_shape=shape), peer, 224, 8
  instances = _deeplab2(deeplab2)
  bn = tf.keras.layers.BatchNormalization
  if row == "axial_resnet_s":
    ours = create_model("axial_resnet_s", include_top=False, stem_max_pool=False,
                        input_shape=(224, 224, 3))
    peer = instances.get_model("axial_resnet_s", output_stride=32, bn_layer=bn)
    return ours, peer, 224, 8
  stride = 16 if row == "swidernet_os16" else 32
  ours = create_model("swidernet_0.25_0.25_0.75", include_top=False, output_stride=stride,
                      input_shape=(641, 641, 3))
  peer = instances.get_model(
      "swidernet", output_stride=stride, stem_width_multiplier=SWIDERNET["w1"],
      width_multiplier=SWIDERNET["w2"], backbone_layer_multiplier=SWIDERNET["l"],
      block_group_config={"use_squeeze_and_excite": True, "use_sac_beyond_stride": 32},
      bn_layer=bn)
  return ours, peer, 641, 1


def interleaved(steps, inputs, rounds, min_seconds, min_iters):
  """Median seconds per call of each step, timed alternately over `rounds` rounds."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import run as bench  # pylint: disable=import-outside-toplevel
  times = [[] for _ in steps]
  for _ in range(rounds):
    for index, step in enumerate(steps):
      times[index].append(bench.seconds_per_batch(step, inputs, min_seconds, min_iters))
  return [float(np.median(t)) for t in times], times


def paired_ratio(numerators, denominators):
  """Median over rounds of numerator / denominator measured in the same round.

  On a loaded machine a model's time drifts by 2-4x between rounds; the two models of
  one round run seconds apart, so their ratio drifts much less than either time.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  return float(np.median(np.asarray(numerators) / np.asarray(denominators)))


def peer_row(args):
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import run as bench  # pylint: disable=import-outside-toplevel
  ours, peer, size, batch = build_pair(args.worker, args.deeplab2)
  images = tf.constant(np.random.RandomState(0).uniform(
      0, 255, (batch, size, size, 3)).astype("float32"))
  steps = [bench.inference_step(model, False) for model in (ours, peer)]
  for step in steps:
    for _ in range(3):
      step(images)
  (mine, theirs), rounds = interleaved(steps, images, args.rounds, args.min_seconds,
                                       args.min_iters)
  return dict(ours_seconds=mine, peer_seconds=theirs, ratio=paired_ratio(rounds[1], rounds[0]),
              ratio_of_medians=theirs / mine,
              ours_images_per_second=batch / mine, peer_images_per_second=batch / theirs,
              size=size, batch=batch, rounds=rounds,
              params=[int(sum(np.prod(v.shape) for v in m.trainable_variables))
                      for m in (ours, peer)])


def tflite_row(args):
  """float32 vs int8 latency of one full-size model (random weights), interleaved."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from tfvision import export  # pylint: disable=import-outside-toplevel
  from tfvision.export import profile  # pylint: disable=import-outside-toplevel
  from tfvision.models import get_preset  # pylint: disable=import-outside-toplevel
  name, _, size = args.worker[len("tflite:"):].partition("@")
  entry = get_preset(name)
  size = int(size) if size else entry.default_size
  model = entry.build()
  keep = args.keep_float_ops
  keep = keep if keep in ("auto", "") else keep.split(",")
  results = {}
  for quantization in ("float32", "int8"):
    results[quantization] = export.export_tflite(
        model, None, input_size=size, quantization=quantization,
        representative_data="shapes", representative_count=args.calibration_images,
        keep_float_ops=(keep or ()) if quantization == "int8" else ())
  image = export.load_images("shapes", 1, (size, size)).astype("float32")
  runners = []
  for quantization in ("float32", "int8"):
    interpreter = export.verify.tflite_interpreter(results[quantization].flatbuffer,
                                                   args.threads)
    runner = interpreter.get_signature_runner()
    runners.append((interpreter, runner))
  medians = [[] for _ in runners]
  for _ in range(args.rounds):
    for index, (_, runner) in enumerate(runners):
      medians[index].append(profile.median_ms(
          lambda runner=runner: runner(image=image), args.tflite_runs, 2))
  float_ms, int8_ms = (float(np.median(m)) for m in medians)
  int8_report = results["int8"].ops_report
  return dict(model=name, size=size, float32_ms=float_ms, int8_ms=int8_ms,
              ratio=paired_ratio(medians[1], medians[0]), ratio_of_medians=int8_ms / float_ms,
              rounds=medians, threads=args.threads,
              keep_float_ops=args.keep_float_ops, int8_float_ops=int8_report.float_ops,
              int8_outside_xnnpack={k: v for k, v in int8_report.outside_xnnpack.items()
                                    if v},
              float32_outside_xnnpack={
                  k: v for k, v in results["float32"].ops_report.outside_xnnpack.items()
                  if v},
              int8_ops_report=int8_report.format())


def worker(args):
  """Runs one row in this process and prints its JSON line."""
  import run as bench  # pylint: disable=import-outside-toplevel
  load_before = os.getloadavg()
  start = time.time()
  row = tflite_row(args) if args.worker.startswith("tflite:") else peer_row(args)
  row.update(row=args.worker, machine=bench.machine(), load_before=load_before,
             load_after=os.getloadavg(), seconds=time.time() - start,
             rounds_requested=args.rounds, date=time.strftime("%Y-%m-%d %H:%M"))
  print("ROW " + json.dumps(row), flush=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--rows", default=None,
                      help="comma-separated rows (default: every peer row and "
                           + ", ".join(f"tflite:{m}" for m in TFLITE_MODELS) + ")")
  parser.add_argument("--kernel-paths", default="onednn,eigen",
                      help="comma-separated: onednn, eigen (TF_ENABLE_ONEDNN_OPTS=1 / 0)")
  parser.add_argument("--deeplab2", default=None, help="deeplab2 source folder")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--min-seconds", type=float, default=3.0,
                      help="seconds per model per round")
  parser.add_argument("--min-iters", type=int, default=2)
  parser.add_argument("--threads", type=int, default=2, help="LiteRT threads (TFLite rows)")
  parser.add_argument("--tflite-runs", type=int, default=10)
  parser.add_argument("--calibration-images", type=int, default=16)
  parser.add_argument("--keep-float-ops", default="auto",
                      help="int8 op types kept in float: 'auto', '' (none) or a list")
  parser.add_argument("--json", default=None, help="append one JSON line per row here")
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.rounds < 1:
    parser.error(f"--rounds must be >= 1, received {args.rounds}")
  if args.worker:
    worker(args)
    return 0

  rows = (args.rows.split(",") if args.rows else
          list(PEER_ROWS) + [f"tflite:{m}" for m in TFLITE_MODELS])
  unknown = [r for r in rows if r not in PEER_ROWS and not r.startswith("tflite:")]
  paths = [p for p in args.kernel_paths.split(",") if p]
  if unknown or not paths or any(p not in KERNEL_PATHS for p in paths):
    parser.error(f"rows must be out of {list(PEER_ROWS)} or tflite:MODEL[@SIZE] and kernel "
                 f"paths out of {list(KERNEL_PATHS)}, received rows={rows}, "
                 f"kernel paths={paths}")
  passthrough = ["--rounds", str(args.rounds), "--min-seconds", str(args.min_seconds),
                 "--min-iters", str(args.min_iters), "--threads", str(args.threads),
                 "--tflite-runs", str(args.tflite_runs), "--calibration-images",
                 str(args.calibration_images), "--keep-float-ops", args.keep_float_ops]
  if args.deeplab2:
    passthrough += ["--deeplab2", args.deeplab2]
  summary = []
  for path in paths:
    for row in rows:
      if row.startswith("tflite:") and path != paths[0]:
        continue  # LiteRT does not use TensorFlow's kernels: one kernel path is enough
      if row in PEER_ROWS[3:] and not args.deeplab2:
        print(f"# {row}: skipped (needs --deeplab2 PATH)", flush=True)
        continue
      env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=KERNEL_PATHS[path],
                 TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
      process = subprocess.run(
          [sys.executable, os.path.abspath(__file__), "--worker", row] + passthrough,
          env=env, capture_output=True, text=True, check=False)
      lines = [l for l in process.stdout.splitlines() if l.startswith("ROW ")]
      if process.returncode or not lines:
        tail = (process.stderr or process.stdout).strip().splitlines()[-5:]
        print(f"# {row} ({path}): failed: {' | '.join(tail)}", flush=True)
        continue
      result = json.loads(lines[-1][4:])
      result["kernel_path"] = path if not row.startswith("tflite:") else "LiteRT XNNPACK"
      summary.append(result)
      if args.json:
        with open(args.json, "a", encoding="utf-8") as handle:
          handle.write(json.dumps(result) + "\n")
      what = ("int8 / float32 time" if row.startswith("tflite:")
              else "peer time / ours (speed-up)")
      extra = (f"float32 {result['float32_ms']:.1f} ms, int8 {result['int8_ms']:.1f} ms"
               if row.startswith("tflite:") else
               f"ours {result['ours_images_per_second']:.2f} img/s, peer "
               f"{result['peer_images_per_second']:.2f} img/s")
      print(f"{row:40s} {result['kernel_path']:14s} {what} {result['ratio']:.3f}  "
            f"({extra}; load {result['load_before'][0]:.1f} -> "
            f"{result['load_after'][0]:.1f})  # {result['machine']}", flush=True)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
