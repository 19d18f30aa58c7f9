"""`tfvision-train`: Model Garden's training driver with the tfvision experiments.

    tfvision-train --experiment=tfvision_resnest50_imagenet \\
        --config_file=configs/resnest/resnest50_imagenet_tpu.yaml \\
        --params_override="task.train_data.tfds_data_dir=gs://my-bucket/tfds" \\
        --mode=train_and_eval --model_dir=gs://my-bucket/runs/resnest50 --tpu=my-tpu

The flags are Model Garden's (`official.common.flags`: --experiment, --config_file
(repeatable), --params_override, --mode (train, eval, train_and_eval,
continuous_eval), --model_dir, --tpu, --gin_file, --gin_params, ...) and the run is
`official.core.train_lib.run_experiment`, exactly as `official/vision/train.py`; the
difference is that importing `tfvision.tasks` registers the tfvision tasks, experiments
(`tfvision-train --list`) and backbones first, and that a bad experiment name, an
unknown YAML key or an unknown backbone fail with a message naming it.

Distribution comes from `runtime.distribution_strategy`: "tpu" (with --tpu),
"mirrored" (`runtime.num_gpus`; 0 uses the CPU), "multi_worker_mirrored" (every worker
runs the same command with its own TF_CONFIG, e.g. worker 0 of two:
`TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
"task": {"type": "worker", "index": 0}}'`; worker 0 is the chief and writes the
checkpoints and summaries, the others write to temporary directories).

`tfvision-train --describe EXPERIMENT` prints the experiment's recipe card: every
setting that differs from Model Garden's defaults, with its source (paper section /
table, reference code, or why tfvision deviates or no source exists; RECIPES.md has all
of them). With --config_file / --params_override it describes the resulting config.

A run resumes from the latest checkpoint in --model_dir: kill it (even with SIGKILL)
and start the same command again; the step counter continues from the checkpoint.
--seed N seeds Python, NumPy and TensorFlow first, so initialisation repeats.
"""
import contextlib
import difflib
import sys

from absl import app
from absl import flags
from absl import logging
import gin
import tf_keras

from official.common import distribute_utils
from official.common import flags as tfm_flags
from official.core import exp_factory
from official.core import task_factory
from official.core import train_lib
from official.core import train_utils
from official.modeling import hyperparams
from official.modeling import performance
from official.modeling.hyperparams import oneof

FLAGS = flags.FLAGS


class ConfigError(ValueError):
  """A configuration problem, reported without a traceback."""


def _experiment_names():
  import tfvision.tasks  # pylint: disable=import-outside-toplevel
  return tfvision.tasks.list_experiments()


def check_experiment(name):
  """Raises ConfigError with suggestions when `name` is not a registered experiment."""
  if not name:
    raise ConfigError("--experiment is required; tfvision-train --list shows the "
                      "tfvision experiments")
  if name in exp_factory._REGISTERED_CONFIGS:  # pylint: disable=protected-access
    return name
  names = _experiment_names()
  close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
  hint = f" Did you mean {', '.join(close)}?" if close else ""
  raise ConfigError(f"unknown experiment, received --experiment={name!r}.{hint} "
                    f"The tfvision experiments are: {', '.join(names)}")


def parse_configuration(flags_obj):
  """`train_utils.parse_configuration` with clear errors for unknown names and keys."""
  check_experiment(flags_obj.experiment)
  try:
    params = train_utils.ExperimentParser(flags_obj).parse()
  except KeyError as error:
    message = error.args[0] if error.args else str(error)
    raise ConfigError(f"configuration key error: {message} (from --config_file / "
                      f"--params_override)") from None
  _check_oneof_types(params)
  _check_model(params)
  try:
    params.validate()
  except (KeyError, ValueError) as error:
    raise ConfigError(f"invalid configuration: {error}") from None
  params.lock()
  return params


def _check_oneof_types(config, path=""):
  """Names the key of a OneOf (backbone, optimizer, ...) whose `type` does not exist."""
  if isinstance(config, oneof.OneOfConfig):
    if config.type is not None and config.type not in vars(config):
      choices = sorted(k for k in vars(config) if not k.startswith("_") and k != "type")
      raise ConfigError(f"unknown type, received {path}.type={config.type!r}; "
                        f"the choices are {choices}")
  if isinstance(config, hyperparams.Config):
    for key, value in vars(config).items():
      if not key.startswith("_"):
        _check_oneof_types(value, f"{path}.{key}" if path else key)


def _check_model(params):
  """Fails early (before any device setup) on an unknown backbone type or a bad value of
  its spec, naming the key."""
  from tfvision.models import factory  # pylint: disable=import-outside-toplevel
  model = getattr(params.task, "model", None)
  backbone = getattr(model, "backbone", None)
  if backbone is None:
    return
  try:
    factory.family_model(backbone).resolve_arguments((), backbone.get().values())
  except ValueError as error:
    raise ConfigError(f"task.model.backbone.{backbone.type}: {error}") from None


def build_strategy_and_task(params, model_dir):
  """The precision policy, distribution strategy and task of an experiment config."""
  if params.runtime.mixed_precision_dtype:
    performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
  strategy = distribute_utils.get_distribution_strategy(
      distribution_strategy=params.runtime.distribution_strategy,
      all_reduce_alg=params.runtime.all_reduce_alg,
      num_gpus=params.runtime.num_gpus,
      tpu_address=params.runtime.tpu)
  with strategy.scope():
    task = task_factory.get_task(params.task, logging_dir=model_dir)
  return strategy, task


@contextlib.contextmanager
def without_flops_count():
  """Skips the profiler FLOPs count Model Garden logs after a run.

  `OrbitExperimentRunner.run` freezes the model graph and profiles it, tens of seconds
  on a CPU for a number `tfvision.utils.flops.count_macs` gives analytically; the demo
  and the tests turn it off.
  """
  original = train_utils.try_count_flops
  train_utils.try_count_flops = lambda *args, **kwargs: None
  try:
    yield
  finally:
    train_utils.try_count_flops = original


def run(flags_obj):
  """Trains / evaluates as Model Garden's vision driver does; returns the eval logs."""
  gin.parse_config_files_and_bindings(flags_obj.gin_file, flags_obj.gin_params)
  params = parse_configuration(flags_obj)
  model_dir = flags_obj.model_dir
  if "train" in flags_obj.mode:
    train_utils.serialize_config(params, model_dir)
  strategy, task = build_strategy_and_task(params, model_dir)
  count = contextlib.nullcontext() if getattr(flags_obj, "count_flops", True) else (
      without_flops_count())
  with count:
    _, eval_logs = train_lib.run_experiment(
        distribution_strategy=strategy, task=task, mode=flags_obj.mode, params=params,
        model_dir=model_dir)
  train_utils.save_gin_config(flags_obj.mode, model_dir)
  return eval_logs


def seed_everything(seed):
  """Seeds Python, NumPy and TensorFlow (`tf_keras.utils.set_random_seed`) for --seed.

  Model initialisation and the random ops seeded from the global seed (augmentation,
  drop-path) then repeat from run to run. The input order repeats only when the data
  config has its own `seed` too (Model Garden's TFDS read is unordered without one);
  with both, two runs of the same command train the same weights on this project's CPU
  runs (`scripts/resume_after_sigkill.py`).
  """
  if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
    raise ValueError(f"seed must be a non-negative integer, received seed={seed!r}")
  tf_keras.utils.set_random_seed(seed)


def describe(flags_obj):
  """The recipe card of --describe's experiment (with any YAML / overrides applied)."""
  from tfvision.configs import recipes  # pylint: disable=import-outside-toplevel
  name = check_experiment(flags_obj.describe)
  flags_obj.experiment = name
  params = parse_configuration(flags_obj)
  try:
    return recipes.describe(name, params)
  except ValueError as error:
    raise ConfigError(str(error)) from None


def _main(argv):
  del argv
  if FLAGS.list:
    for name in _experiment_names():
      print(name)
    return 0
  if FLAGS.describe:
    try:
      print(describe(FLAGS))
    except ConfigError as error:
      print(f"tfvision-train: error: {error}", file=sys.stderr)
      return 2
    return 0
  for required in ("experiment", "mode", "model_dir"):
    if not getattr(FLAGS, required):
      raise app.UsageError(f"--{required} is required")
  logging.set_verbosity(logging.INFO)
  if FLAGS.seed is not None:
    seed_everything(FLAGS.seed)
  try:
    run(FLAGS)
  except ConfigError as error:
    print(f"tfvision-train: error: {error}", file=sys.stderr)
    return 2
  return 0


def define_flags():
  """Model Garden's training flags plus --list, --describe, --count_flops and --seed."""
  if "experiment" not in FLAGS:
    tfm_flags.define_flags()
  if "list" not in FLAGS:
    flags.DEFINE_bool("list", False, "print the tfvision experiments and exit")
  if "describe" not in FLAGS:
    flags.DEFINE_string("describe", None, "print the recipe card of this experiment "
                        "(each setting that differs from Model Garden's defaults and its "
                        "source) and exit")
  if "count_flops" not in FLAGS:
    flags.DEFINE_bool("count_flops", True, "log Model Garden's profiler FLOPs count "
                      "after training (tens of seconds on a CPU)")
  if "seed" not in FLAGS:
    flags.DEFINE_integer("seed", None, "seed Python, NumPy and TensorFlow before the "
                         "run, so that model initialisation and the input pipeline's "
                         "random ops repeat from run to run", lower_bound=0)


def main(argv=None):
  """Console-script entry point."""
  import tfvision.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  define_flags()
  # Every call parses its own command line: values from an earlier call in the same
  # process (a test, a notebook) must not carry over (--describe would win over
  # --experiment).
  FLAGS.unparse_flags()
  app.run(_main, argv=argv if argv is not None else sys.argv)


if __name__ == "__main__":
  main()
