"""Kill `tfvision-train` with SIGKILL after a checkpoint, rerun it, compare with a clean run.

    python scripts/resume_after_sigkill.py --work-dir /tmp/sigkill [--train-steps 12]

Runs the same tiny `tfvision-train --seed=...` command (`python -m tfvision.train`,
experiment `tfvision_shapes_classification` on the built-in `tfvision_shapes/tiny`,
SWideRNet at the registry's tiny widths, train_and_eval) three times:

1. uninterrupted, in WORK/clean;
2. in WORK/killed, sent SIGKILL as soon as its checkpoint at `--kill-at` steps is on disk;
3. the same command as 2 again: it restores the latest checkpoint and trains to the end.

Prints a JSON summary: the step run 3 resumed from (read from the trainer's own
"train | step: N | training until ..." line), the checkpoints of each run, the final
evaluation (accuracy, loss) of the clean and the resumed run, and the largest
difference between the clean and the killed/resumed run's variables in each common
checkpoint.

The comparison is exact by construction. --seed makes initialisation repeat, and the
input order is fixed: a seeded single-reader TFDS read, no shuffle, no random flip,
and `--kill-at` a whole number of epochs of the 64 training images. Model Garden does
not checkpoint the tf.data iterator, so the resumed run reads its input from the start
again; at an epoch boundary of an unshuffled pipeline that start is exactly where the
clean run was. So the resumed run must reproduce the clean run's weights and metrics:
only a restore that loses something (optimizer slots, the step of the learning-rate
schedule, a variable) makes them differ.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

# The children import tfvision from this checkout, wherever they are started from.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENT = "tfvision_shapes_classification"
TRAIN_EXAMPLES = 64  # tfvision_shapes/tiny
BATCH = 8
CHECKPOINT = re.compile(r"ckpt-(\d+)\.index$")
TRAIN_LINE = re.compile(r"train \| step:\s+(\d+) \| training until step (\d+)")
EVAL_LINE = re.compile(r"eval \| step:\s+(\d+) \| .*output:", re.S)


def _pythonpath():
  return os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)


def overrides(data_dir, train_steps, checkpoint_every, batch=BATCH, size=32):
  """The --params_override making the experiment tiny (a YAML-compatible dict)."""
  data = {"tfds_name": "tfvision_shapes/tiny", "tfds_data_dir": data_dir,
          "global_batch_size": batch}
  return {
      "runtime": {"distribution_strategy": "mirrored", "num_gpus": 0},
      "task": {
          "model": {"input_size": [size, size, 3],
                    "backbone": {"swidernet": {"w1": 0.0625, "w2": 0.0625}}},
          # Input order fixed (see the module docstring): no shuffle, no random flip,
          # a seeded TFDS read (unseeded, TFDS lets tf.data reorder), and one reader:
          # TFDS repeats the file list for training, so with the default interleave
          # the one file of the split is read by several readers at once and each
          # example comes out cycle_length times in a row.
          "train_data": dict(data, shuffle_buffer_size=1, aug_rand_hflip=False,
                             seed=0, cycle_length=1),
          "validation_data": data,
      },
      "trainer": {
          "train_steps": train_steps, "steps_per_loop": checkpoint_every,
          "summary_interval": checkpoint_every, "checkpoint_interval": checkpoint_every,
          "validation_interval": train_steps, "max_to_keep": 10,
          "optimizer_config": {"learning_rate": {"cosine": {"decay_steps": train_steps}},
                               "warmup": {"linear": {"warmup_steps": 2}}},
      },
  }


def command(model_dir, params, seed=0):
  return [sys.executable, "-m", "tfvision.train", f"--experiment={EXPERIMENT}",
          "--mode=train_and_eval", f"--model_dir={model_dir}", "--nocount_flops",
          f"--seed={seed}", f"--params_override={json.dumps(params)}"]


def checkpoints(model_dir):
  if not os.path.isdir(model_dir):
    return []
  return sorted(int(m.group(1)) for m in map(CHECKPOINT.search, os.listdir(model_dir)) if m)


def run(cmd, log_path, kill_at=None, model_dir=None, timeout=900):
  """Runs cmd; with kill_at, SIGKILLs it once ckpt-kill_at exists. Returns (rc, log)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
             PYTHONPATH=_pythonpath())
  with open(log_path, "w") as log:
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    start = time.time()
    while process.poll() is None:
      if kill_at is not None and kill_at in checkpoints(model_dir):
        # The index file is written last: the checkpoint is complete.
        process.send_signal(signal.SIGKILL)
        process.wait()
        break
      if time.time() - start > timeout:
        process.kill()
        raise RuntimeError(f"{cmd} ran past {timeout} s; see {log_path}")
      time.sleep(0.2)
  with open(log_path) as log:
    return process.returncode, log.read()


def checkpoint_difference(dir_a, dir_b, step):
  """The largest absolute difference between the variables of two runs' ckpt-`step`."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  readers = [tf.train.load_checkpoint(os.path.join(d, f"ckpt-{step}")) for d in (dir_a, dir_b)]
  shapes = [r.get_variable_to_shape_map() for r in readers]
  if set(shapes[0]) != set(shapes[1]):
    return float("inf")
  largest = 0.0
  for name in shapes[0]:
    if name == "_CHECKPOINTABLE_OBJECT_GRAPH":  # bookkeeping, not a variable
      continue
    a, b = (np.asarray(r.get_tensor(name)) for r in readers)
    if not np.issubdtype(a.dtype, np.number):
      if not np.array_equal(a, b):
        return float("inf")
      continue
    difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
    largest = max(largest, float(np.max(difference, initial=0.0)))
  return largest


def final_eval(log_text):
  """The last evaluation's accuracy and loss from Model Garden's log."""
  tail = log_text[log_text.rfind(" eval | step:"):]
  values = {}
  for key in ("accuracy", "validation_loss"):
    match = re.search(rf"'{key}': (?:np\.float32\()?([-0-9.e]+)", tail)
    if match:
      values[key] = float(match.group(1))
  return values


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--work-dir", required=True)
  parser.add_argument("--train-steps", type=int, default=12)
  parser.add_argument("--checkpoint-every", type=int, default=4)
  parser.add_argument("--kill-at", type=int, default=8,
                      help="SIGKILL once the checkpoint of this step is written")
  args = parser.parse_args(argv)
  if args.kill_at % args.checkpoint_every or not 0 < args.kill_at < args.train_steps:
    raise ValueError(f"kill_at must be a checkpoint step before the end, received "
                     f"kill_at={args.kill_at!r}")
  epoch_steps = TRAIN_EXAMPLES // BATCH
  if args.kill_at % epoch_steps:
    raise ValueError(f"kill_at must be a whole number of epochs ({epoch_steps} steps) "
                     f"for the exact comparison, received kill_at={args.kill_at!r}")
  os.makedirs(args.work_dir, exist_ok=True)
  data_dir = os.path.join(args.work_dir, "tfds")
  prepare = ("import tensorflow_datasets as tfds, tfvision.data.shapes; "
             f"tfds.builder('tfvision_shapes/tiny', data_dir={data_dir!r})"
             ".download_and_prepare()")
  subprocess.run([sys.executable, "-c", prepare], check=True, capture_output=True,
                 env=dict(os.environ, PYTHONPATH=_pythonpath()))
  params = overrides(data_dir, args.train_steps, args.checkpoint_every)

  clean_dir = os.path.join(args.work_dir, "clean")
  killed_dir = os.path.join(args.work_dir, "killed")
  rc_clean, clean_log = run(command(clean_dir, params),
                            os.path.join(args.work_dir, "clean.log"))
  rc_killed, _ = run(command(killed_dir, params), os.path.join(args.work_dir, "killed.log"),
                     kill_at=args.kill_at, model_dir=killed_dir)
  after_kill = checkpoints(killed_dir)
  rc_resumed, resumed_log = run(command(killed_dir, params),
                                os.path.join(args.work_dir, "resumed.log"))
  first = TRAIN_LINE.search(resumed_log)
  summary = {
      "clean_returncode": rc_clean, "killed_returncode": rc_killed,
      "resumed_returncode": rc_resumed,
      "checkpoints_after_kill": after_kill,
      "resumed_from_step": int(first.group(1)) if first else None,
      "checkpoints_clean": checkpoints(clean_dir),
      "checkpoints_resumed": checkpoints(killed_dir),
      "clean_eval": final_eval(clean_log), "resumed_eval": final_eval(resumed_log),
  }
  common = sorted(set(summary["checkpoints_clean"]) & set(summary["checkpoints_resumed"]))
  summary["max_variable_difference"] = {
      str(step): checkpoint_difference(clean_dir, killed_dir, step) for step in common}
  print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
