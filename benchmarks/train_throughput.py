#!/usr/bin/env python3
"""Training throughput (images/second) of the `make demo` model, one and two replicas.

    python benchmarks/train_throughput.py [--steps 20] [--batch 8] [--size 96]
        [--deterministic] [--replicas 1,2]

The model and loss are the demo's (`tfvision_panoptic_deeplab_swidernet_shapes`:
Panoptic-DeepLab + SWideRNet-(0.25, 0.25, 0.75), narrowed decoders, built by the task
from the experiment config) trained with `model.fit` and Adam on one cached batch of the
built-in dataset (so the input pipeline is not timed):

- 1 replica: the default strategy on the CPU;
- 2 replicas: `MirroredStrategy` over two logical CPU devices (the global batch is split
  between them; on a 2-core machine both share the same cores, so this measures the
  overhead of the replicated step rather than a speed-up).

`--deterministic` turns TensorFlow's op determinism on first (what `make demo` does), so
its cost can be read off against a run without it. Prints one JSON line per setting:
replicas, global batch, steps/s, images/s (after one warm-up epoch that traces the
step), op determinism, and the machine's CPU and kernel path (oneDNN or Eigen).
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPUs, before TensorFlow initialises its devices.
_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import tf_keras  # noqa: E402
from official.core import exp_factory  # noqa: E402

import tfvision.tasks  # noqa: E402,F401
from tfvision.data import shapes  # noqa: E402
from tfvision.data.keras_datasets import shapes_dataset  # noqa: E402
from tfvision.losses.panoptic import PanopticDeepLabLoss  # noqa: E402
from tfvision.tasks.panoptic_deeplab import build_panoptic_model  # noqa: E402

EXPERIMENT = "tfvision_panoptic_deeplab_swidernet_shapes"


def measure(strategy, batch, size, steps, data_dir):
  params = exp_factory.get_exp_config(EXPERIMENT)
  params.task.model.input_size = [size, size, 3]
  with strategy.scope():
    model = build_panoptic_model(params.task.model)
    model.compile(tf_keras.optimizers.Adam(1e-3),
                  loss=PanopticDeepLabLoss(ignore_label=shapes.IGNORE_LABEL,
                                           top_k_percent=params.task.losses.top_k_percent))
  data = shapes_dataset("panoptic", "train", size=size, batch_size=batch, data_dir=data_dir,
                        seed=0, small_instance_area=0)
  data = data.take(1).cache().repeat()
  model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)  # trace + warm-up
  start = time.perf_counter()
  model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
  elapsed = time.perf_counter() - start
  return {"replicas": strategy.num_replicas_in_sync, "global_batch": batch, "size": size,
          "steps": steps, "steps_per_second": round(steps / elapsed, 3),
          "images_per_second": round(steps * batch / elapsed, 2)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--size", type=int, default=96)
  parser.add_argument("--deterministic", action="store_true",
                      help="tf.config.experimental.enable_op_determinism() first")
  parser.add_argument("--replicas", default="1,2", help="which settings to run")
  parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(),
                                                         "tfvision_tfds"))
  args = parser.parse_args(argv)
  from run import machine  # pylint: disable=import-outside-toplevel  (benchmarks/run.py)
  if args.deterministic:
    tf.config.experimental.enable_op_determinism()
  devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
  strategies = {"1": lambda: tf.distribute.OneDeviceStrategy(devices[0]),
                "2": lambda: tf.distribute.MirroredStrategy(devices)}
  results = []
  for replicas in args.replicas.split(","):
    if replicas not in strategies:
      raise SystemExit(f"--replicas takes 1 and/or 2, received --replicas={args.replicas!r}")
    result = measure(strategies[replicas](), args.batch, args.size, args.steps,
                     args.data_dir)
    result.update(deterministic=args.deterministic, machine=machine())
    results.append(result)
    print(json.dumps(results[-1]), flush=True)
  return results


if __name__ == "__main__":
  main()
