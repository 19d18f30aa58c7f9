"""Two local workers train the demo model with MultiWorkerMirroredStrategy via TF_CONFIG.

    python scripts/multi_worker.py --work-dir /tmp/multi_worker [--steps 4]

Starts two processes on 127.0.0.1 (free ports), each with its own TF_CONFIG:

    {"cluster": {"worker": ["127.0.0.1:P0", "127.0.0.1:P1"]},
     "task": {"type": "worker", "index": i}}

Each builds Panoptic-DeepLab + SWideRNet-(0.25, 0.25, 0.75) at the registry's tiny widths
inside `MultiWorkerMirroredStrategy().scope()`, trains it with `model.fit` on the built-in
`tfvision_shapes/tiny` (global batch 4, each worker reading its own shard), and saves
its final weights to WORK/worker_<i>.npz. The parent prints a JSON summary with the
largest absolute difference between the two workers' weights (all-reduced gradients
keep them identical) and the losses each worker logged.

`tfvision-train` runs multi-worker the same way: `runtime.distribution_strategy:
multi_worker_mirrored` and one TF_CONFIG per worker (README, "Training").
"""
import argparse
import json
import os
import socket
import subprocess
import sys

import numpy as np

# The children import tfvision from this checkout, wherever they are started from.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODEL = "panoptic_deeplab_swidernet_0.25_0.25_0.75"


def _pythonpath():
  return os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)


def free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def worker(index, work_dir, steps, data_dir):
  """One worker: TF_CONFIG is already in the environment."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import tf_keras  # pylint: disable=import-outside-toplevel
  from tfvision.data import shapes  # pylint: disable=import-outside-toplevel
  from tfvision.data.keras_datasets import shapes_dataset  # pylint: disable=import-outside-toplevel
  from tfvision.losses.panoptic import PanopticDeepLabLoss  # pylint: disable=import-outside-toplevel
  from tfvision.models.registry import get_preset  # pylint: disable=import-outside-toplevel

  strategy = tf.distribute.MultiWorkerMirroredStrategy()
  # The same initial weights on both workers come from the strategy (variables are
  # broadcast from worker 0); the seed only makes the run repeatable.
  tf_keras.utils.set_random_seed(index + 1)
  with strategy.scope():
    model = get_preset(MODEL).build_tiny(num_classes=shapes.NUM_CLASSES,
                                              input_shape=(64, 64, 3))
    model.compile(tf_keras.optimizers.Adam(2e-3),
                  loss=PanopticDeepLabLoss(ignore_label=shapes.IGNORE_LABEL))
  data = shapes_dataset("panoptic", "train", size=64, config="tiny", batch_size=4,
                        data_dir=data_dir, seed=0, small_instance_area=0)
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  history = model.fit(data.with_options(options), epochs=1, steps_per_epoch=steps,
                      verbose=0)
  weights = {f"{i:04d}_{v.name}": v.numpy() for i, v in enumerate(model.weights)}
  np.savez(os.path.join(work_dir, f"worker_{index}.npz"), **weights)
  with open(os.path.join(work_dir, f"worker_{index}.json"), "w") as f:
    json.dump({"loss": history.history["loss"],
               "replicas": strategy.num_replicas_in_sync,
               "iterations": int(model.optimizer.iterations.numpy())}, f)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--work-dir", required=True)
  parser.add_argument("--steps", type=int, default=4)
  parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
  parser.add_argument("--timeout", type=int, default=900)
  args = parser.parse_args(argv)
  work_dir = os.path.abspath(args.work_dir)
  data_dir = os.path.join(work_dir, "tfds")
  if args.worker_index is not None:
    worker(args.worker_index, work_dir, args.steps, data_dir)
    return None

  os.makedirs(work_dir, exist_ok=True)
  prepare = ("import tensorflow_datasets as tfds, tfvision.data.shapes; "
             f"tfds.builder('tfvision_shapes/tiny', data_dir={data_dir!r})"
             ".download_and_prepare()")
  subprocess.run([sys.executable, "-c", prepare], check=True, capture_output=True,
                 env=dict(os.environ, PYTHONPATH=_pythonpath()))
  cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=_pythonpath(),
               TF_CONFIG=json.dumps({"cluster": cluster,
                                     "task": {"type": "worker", "index": index}}))
    log = open(os.path.join(work_dir, f"worker_{index}.log"), "w")
    processes.append((subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--work-dir", work_dir,
         "--steps", str(args.steps), "--worker-index", str(index)],
        stdout=log, stderr=subprocess.STDOUT, env=env), log))
  codes = []
  for process, log in processes:
    try:
      codes.append(process.wait(timeout=args.timeout))
    except subprocess.TimeoutExpired:
      for other, _ in processes:
        other.kill()
      raise
    finally:
      log.close()
  summary = {"returncodes": codes, "cluster": cluster}
  if codes == [0, 0]:
    first, second = (np.load(os.path.join(work_dir, f"worker_{i}.npz")) for i in range(2))
    assert sorted(first.files) == sorted(second.files)
    summary["num_weights"] = len(first.files)
    summary["max_abs_difference"] = max(
        float(np.max(np.abs(first[k] - second[k]))) if first[k].size else 0.0
        for k in first.files)
    summary["workers"] = []
    for i in range(2):
      with open(os.path.join(work_dir, f"worker_{i}.json")) as f:
        summary["workers"].append(json.load(f))
  print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
