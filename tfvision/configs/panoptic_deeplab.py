"""Panoptic-DeepLab task config and its experiments (swidernet.md Sec. 4).

Experiments (`official.core.exp_factory` names; each setting's source is on its recipe
card, `tfvision-train --describe NAME`):

- `tfvision_panoptic_deeplab_swidernet_coco`: COCO panoptic (TFDS
  `coco/2017_panoptic`), crop 641 x 641, batch 64, 500K iterations;
- `tfvision_panoptic_deeplab_swidernet_cityscapes`: Cityscapes panoptic (deeplab2
  TFRecords: TFDS' `cityscapes` has no instance labels), crop 1025 x 2049, batch 32, 60K
  iterations;
- `tfvision_panoptic_deeplab_swidernet_{w1}_{w2}_{l}_{coco,cityscapes}`: the five
  fast-regime variants of Table 5 (SWideRNet-(0.25, 0.25, 0.75), (0.25, 0.35, 0.75),
  (0.25, 0.35, 1), (0.25, 0.5, 1), (0.25, 0.75, 1)) with separable convolutions in ASPP
  and decoders (Sec. 4.1), otherwise the recipe above;
- `tfvision_panoptic_deeplab_swidernet_sac_cityscapes_deeplab2`: deeplab2's released
  `configs/cityscapes/panoptic_deeplab/swidernet_sac_1_1_1_os16.textproto`, which
  produced its released SWideRNet-SAC-(1, 1, 1) Cityscapes checkpoint: no SE, drop path
  with a *linear* schedule (keep probability 0.8 at the last block), and the Table 2
  AutoAugment policy (deeplab2's "simple_classification_policy_magnitude_scale_0.2");
- `tfvision_panoptic_deeplab_swidernet_shapes`: the built-in `tfvision_shapes` dataset,
  the `make demo` job (its deviations from the paper recipe are listed in
  `tfvision/demo.py`).

The paper recipe (swidernet.md Sec. 4, "Experimental setup", and Sec. 4.1): Adam with
learning rate 1e-4 and the "poly" schedule (power 0.9, deeplab2's default), no weight
decay, BN fine-tuned, random scale augmentation (deeplab2's ranges and grid: [0.5, 1.5]
COCO, [0.5, 2.0] Cityscapes, step 0.1), drop path with a constant survival rate of 0.8
(Sec. 4.1; the released deeplab2 config uses the linear schedule, see above),
Panoptic-DeepLab's losses and weights (bootstrapped cross-entropy on the top 20%
pixels, center MSE x 200, offset L1 x 0.01, center sigma 8), and at evaluation stuff
segments below 4096 (COCO) / 2048 (Cityscapes) pixels re-assigned to void, at most 400
centers on Cityscapes (deeplab2's `keep_k_centers`; 200 on COCO, whose label divisor 256
must exceed it). The backbone is SWideRNet-(1, 1, 1) with SE and
SAC at output stride 16 and standard convs in ASPP and decoder (the strong regime
baseline, Table 3). AutoAugment with Table 2's policy (`train_data.parser.
autoaugment_policy: swidernet_table2`) is only for the strongest model (Sec. 4.1), so
off here. Evaluation is single-scale without flipping, as Tables 3 and 5; the paper's
multi-scale + flip numbers (Tables 6-9) need the test-time augmentation of issue 18.
Training batches divide 8, 16 and 32 TPU cores (swidernet.md trains on 32), COCO's 64
too; the validation sets are evaluated in padded global batches of 32 (Cityscapes) and
64 (COCO).
"""
import dataclasses
from typing import List, Optional

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams
from official.modeling import optimization
from official.vision.configs import common

from tfvision.configs import backbones
from tfvision.data.panoptic import CITYSCAPES_PANOPTIC, COCO_PANOPTIC
from tfvision.models.panoptic_deeplab import PanopticDeepLabSpec
from tfvision.models.swidernet import variant_name

COCO_TRAIN_EXAMPLES = 118287
COCO_VAL_EXAMPLES = 5000
CITYSCAPES_TRAIN_EXAMPLES = 2975
CITYSCAPES_VAL_EXAMPLES = 500


@dataclasses.dataclass
class PanopticParser(hyperparams.Config):
  """Augmentation and target settings (`tfvision.data.dense_parsers.PanopticParser`)."""
  aug_scale_min: float = 1.0
  aug_scale_max: float = 1.0
  aug_rand_hflip: bool = True
  autoaugment_policy: Optional[str] = None
  aug_scale_step: float = 0.0
  sigma: float = 8.0
  small_instance_area: int = 4096
  small_instance_weight: float = 3.0


@dataclasses.dataclass
class PanopticDataConfig(cfg.DataConfig):
  """Input config: TFDS name or TFRecords (deeplab2 layout), batch, parser.

  pad_to_global_batch: evaluation: pad the last global batch with empty examples
  (`tfvision.tasks.inputs`).
  """
  input_path: str = ""
  tfds_name: str = ""
  tfds_split: str = ""
  global_batch_size: int = 0
  is_training: bool = True
  drop_remainder: bool = True
  shuffle_buffer_size: int = 1000
  file_type: str = "tfrecord"
  pad_to_global_batch: bool = False
  parser: PanopticParser = dataclasses.field(default_factory=PanopticParser)


@dataclasses.dataclass
class PanopticLabels(hyperparams.Config):
  """Label scheme: panoptic id = semantic * label_divisor + instance."""
  thing_classes: List[int] = dataclasses.field(
      default_factory=lambda: list(CITYSCAPES_PANOPTIC.thing_classes))
  ignore_label: int = CITYSCAPES_PANOPTIC.ignore_label
  label_divisor: int = CITYSCAPES_PANOPTIC.label_divisor


@dataclasses.dataclass
class PanopticPostProcess(hyperparams.Config):
  """Post-processing (`tfvision.ops.panoptic_postprocess`)."""
  center_threshold: float = 0.1
  nms_kernel: int = CITYSCAPES_PANOPTIC.nms_kernel
  keep_k_centers: int = 200
  stuff_area_limit: int = CITYSCAPES_PANOPTIC.stuff_area_limit


@dataclasses.dataclass
class PanopticDeepLabModel(PanopticDeepLabSpec):
  """`tfvision.models.PanopticDeepLab`: its decoder spec's fields, and the backbone.

  The decoder and head fields are `PanopticDeepLabSpec`'s (declared once, in
  tfvision/models/panoptic_deeplab.py); the output stride is the backbone's.
  """
  num_classes: int = 19
  input_size: List[int] = dataclasses.field(default_factory=lambda: [1025, 2049, 3])
  backbone: backbones.Backbone = dataclasses.field(
      default_factory=lambda: backbones.preset_config("swidernet_1_1_1", output_stride=16))
  norm_activation: common.NormActivation = dataclasses.field(
      default_factory=lambda: common.NormActivation(
          activation="relu", norm_momentum=0.99, norm_epsilon=1e-3, use_sync_bn=False))


@dataclasses.dataclass
class PanopticLosses(hyperparams.Config):
  """Panoptic-DeepLab loss weights (`tfvision.losses.panoptic.PanopticDeepLabLoss`)."""
  top_k_percent: float = 0.2
  semantic_weight: float = 1.0
  center_weight: float = 200.0
  offset_weight: float = 0.01
  l2_weight_decay: float = 0.0


@dataclasses.dataclass
class PanopticDeepLabTask(cfg.TaskConfig):
  """The task config of `tfvision.tasks.panoptic_deeplab.PanopticDeepLabTask`."""
  model: PanopticDeepLabModel = dataclasses.field(default_factory=PanopticDeepLabModel)
  train_data: PanopticDataConfig = dataclasses.field(
      default_factory=lambda: PanopticDataConfig(is_training=True))
  validation_data: PanopticDataConfig = dataclasses.field(
      default_factory=lambda: PanopticDataConfig(is_training=False, drop_remainder=False))
  labels: PanopticLabels = dataclasses.field(default_factory=PanopticLabels)
  post_process: PanopticPostProcess = dataclasses.field(default_factory=PanopticPostProcess)
  losses: PanopticLosses = dataclasses.field(default_factory=PanopticLosses)
  init_checkpoint: Optional[str] = None
  init_checkpoint_modules: str = "all"


def poly_adam(learning_rate, train_steps, power=0.9):
  """Adam, no weight decay, lr * (1 - step / train_steps) ^ power (deeplab2's "poly")."""
  return optimization.OptimizationConfig({
      "optimizer": {"type": "adam", "adam": {"beta_1": 0.9, "beta_2": 0.999,
                                              "epsilon": 1e-7}},
      "learning_rate": {"type": "polynomial", "polynomial": {
          "initial_learning_rate": learning_rate, "decay_steps": train_steps,
          "end_learning_rate": 0.0, "power": power}},
  })


def _swidernet_backbone(w1, w2, l, drop_path=0.2, use_se=True, schedule="constant"):
  return backbones.preset_config(
      variant_name(w1, w2, l), use_se=use_se, sac_beyond_stride=32, output_stride=16,
      drop_path_rate=drop_path, drop_path_schedule=schedule)


# swidernet.md Table 5: the fast-regime backbones, SWideRNet-(w1, w2, l).
FAST_REGIME = ((0.25, 0.25, 0.75), (0.25, 0.35, 0.75), (0.25, 0.35, 1.0), (0.25, 0.5, 1.0),
               (0.25, 0.75, 1.0))
# deeplab2's `keep_k_centers` (evaluator.proto default, not overridden by its configs);
# COCO keeps 200: the post-processor needs fewer centers than COCO's label divisor (256)
# so that every instance id fits.
KEEP_K_CENTERS = {"coco": 200, "cityscapes": 400}
# deeplab2's `scale_factor_step_size` in its COCO and Cityscapes configs.
SCALE_STEP = 0.1
# Evaluation global batches: divide 8, 16, 32 (and COCO's 64) cores; padded.
EVAL_BATCH = {"coco": 64, "cityscapes": 32}


def _panoptic_experiment(info, input_size, train_batch, train_steps, train_data,
                         validation_data, scale_range, eval_batch, keep_k, backbone=None,
                         separable_conv="none", autoaugment_policy=None):
  model = PanopticDeepLabModel(num_classes=info.num_classes, input_size=list(input_size),
                               backbone=backbone or _swidernet_backbone(1, 1, 1),
                               separable_conv=separable_conv)
  model.norm_activation.use_sync_bn = True
  train_data.global_batch_size = train_batch
  train_data.parser = PanopticParser(aug_scale_min=scale_range[0],
                                     aug_scale_max=scale_range[1], aug_scale_step=SCALE_STEP,
                                     autoaugment_policy=autoaugment_policy)
  validation_data.global_batch_size = eval_batch
  validation_data.pad_to_global_batch = True
  task = PanopticDeepLabTask(
      model=model, train_data=train_data, validation_data=validation_data,
      labels=PanopticLabels(thing_classes=list(info.thing_classes),
                            ignore_label=info.ignore_label,
                            label_divisor=info.label_divisor),
      post_process=PanopticPostProcess(nms_kernel=info.nms_kernel,
                                       stuff_area_limit=info.stuff_area_limit,
                                       keep_k_centers=keep_k))
  return cfg.ExperimentConfig(
      runtime=cfg.RuntimeConfig(distribution_strategy="tpu",
                                mixed_precision_dtype="bfloat16"),
      task=task,
      trainer=cfg.TrainerConfig(
          train_steps=train_steps, validation_steps=-1,
          validation_interval=10000, steps_per_loop=1000, summary_interval=1000,
          checkpoint_interval=1000, max_to_keep=5,
          optimizer_config=poly_adam(1e-4, train_steps),
          best_checkpoint_eval_metric="panoptic_quality",
          best_checkpoint_metric_comp="higher"),
      restrictions=["task.train_data.is_training != None",
                    "task.validation_data.is_training != None"])


def coco_experiment(**kwargs):
  """COCO panoptic: 641 x 641 crops, batch 64, 500K iterations (swidernet.md Sec. 4)."""
  return _panoptic_experiment(
      COCO_PANOPTIC, (641, 641, 3), 64, 500000,
      PanopticDataConfig(tfds_name="coco/2017_panoptic", tfds_split="train",
                         is_training=True),
      PanopticDataConfig(tfds_name="coco/2017_panoptic", tfds_split="validation",
                         is_training=False, drop_remainder=False),
      scale_range=(0.5, 1.5), eval_batch=EVAL_BATCH["coco"],
      keep_k=KEEP_K_CENTERS["coco"], **kwargs)


def cityscapes_experiment(**kwargs):
  """Cityscapes panoptic: 1025 x 2049 crops, batch 32, 60K iterations (Sec. 4).

  Reads deeplab2's Cityscapes TFRecords (`build_cityscapes_data.py`, panoptic labels
  as raw int32 with label divisor 1000); set `input_path` to their location.
  """
  return _panoptic_experiment(
      CITYSCAPES_PANOPTIC, (1025, 2049, 3), 32, 60000,
      PanopticDataConfig(input_path="cityscapes/tfrecord/train*", is_training=True),
      PanopticDataConfig(input_path="cityscapes/tfrecord/val*", is_training=False,
                         drop_remainder=False),
      scale_range=(0.5, 2.0), eval_batch=EVAL_BATCH["cityscapes"],
      keep_k=KEEP_K_CENTERS["cityscapes"], **kwargs)


DATASET_EXPERIMENTS = {"coco": coco_experiment, "cityscapes": cityscapes_experiment}


@exp_factory.register_config_factory("tfvision_panoptic_deeplab_swidernet_coco")
def panoptic_deeplab_swidernet_coco():
  """COCO panoptic with SWideRNet-(1, 1, 1) (swidernet.md Sec. 4, Table 3)."""
  return coco_experiment()


@exp_factory.register_config_factory("tfvision_panoptic_deeplab_swidernet_cityscapes")
def panoptic_deeplab_swidernet_cityscapes():
  """Cityscapes panoptic with SWideRNet-(1, 1, 1) (swidernet.md Sec. 4)."""
  return cityscapes_experiment()


def fast_experiment_name(scales, dataset):
  """`tfvision_panoptic_deeplab_swidernet_0.25_0.5_1_coco` for SWideRNet-(0.25, 0.5, 1)."""
  text = "_".join(f"{v:g}" for v in scales)
  return f"tfvision_panoptic_deeplab_swidernet_{text}_{dataset}"


def _register_fast(scales, dataset):
  @exp_factory.register_config_factory(fast_experiment_name(scales, dataset))
  def factory():
    return DATASET_EXPERIMENTS[dataset](backbone=_swidernet_backbone(*scales),
                                        separable_conv="all")
  factory.__doc__ = (f"Fast-regime SWideRNet-{scales} on {dataset} (swidernet.md "
                     f"Table 5, separable ASPP and decoders).")
  return factory


for _scales in FAST_REGIME:
  for _dataset in DATASET_EXPERIMENTS:
    _register_fast(_scales, _dataset)


@exp_factory.register_config_factory(
    "tfvision_panoptic_deeplab_swidernet_sac_cityscapes_deeplab2")
def panoptic_deeplab_swidernet_sac_cityscapes_deeplab2():
  """deeplab2's released SWideRNet-SAC-(1, 1, 1) Cityscapes config (see the docstring)."""
  return cityscapes_experiment(
      backbone=_swidernet_backbone(1, 1, 1, use_se=False, schedule="linear"),
      autoaugment_policy="swidernet_table2",
      # deeplab2's decoder: standard ASPP, depthwise-separable fusion and head convs.
      separable_conv="decoder")


# The `make demo` settings (tfvision/demo.py lists each deviation from the paper recipe).
SHAPES_DEMO = dict(
    size=96, train_batch=8, train_steps=800, learning_rate=1e-3, sigma=3.0,
    decoder_width=64, nms_kernel=7, stuff_area_limit=64, small_instance_area=0,
    scale_range=(1.0, 1.0), top_k_percent=1.0, data_seed=0)


@exp_factory.register_config_factory("tfvision_panoptic_deeplab_swidernet_shapes")
def panoptic_deeplab_swidernet_shapes():
  """Panoptic-DeepLab + SWideRNet-(0.25, 0.25, 0.75) on the built-in tfvision_shapes.

  The CPU-sized `make demo` job: 96 x 96 images, decoders narrowed to
  `SHAPES_DEMO["decoder_width"]`, Adam 1e-3 poly, sigma and post-processing scaled to
  the image size. tfvision/demo.py documents every deviation from the paper recipe.
  """
  from tfvision.data import shapes  # pylint: disable=import-outside-toplevel
  s = SHAPES_DEMO
  width = s["decoder_width"]
  size = s["size"]
  name = f"tfvision_shapes/s{size}"
  model = PanopticDeepLabModel(
      num_classes=shapes.NUM_CLASSES, input_size=[size, size, 3],
      backbone=_swidernet_backbone(0.25, 0.25, 0.75, drop_path=0.0),
      separable_conv="all", semantic_aspp_filters=width, semantic_decoder_filters=width,
      semantic_low_level_filters=[width // 2, width // 4], semantic_head_filters=width,
      instance_aspp_filters=width, instance_decoder_filters=width // 2,
      instance_low_level_filters=[width // 4, width // 8],
      center_head_filters=width // 4, offset_head_filters=width // 4)
  parser = PanopticParser(aug_scale_min=s["scale_range"][0], aug_scale_max=s["scale_range"][1],
                          sigma=s["sigma"], small_instance_area=s["small_instance_area"])
  task = PanopticDeepLabTask(
      model=model,
      # A fixed `seed`: the same input order in every run (`make demo` is repeatable).
      train_data=PanopticDataConfig(tfds_name=name, tfds_split="train", is_training=True,
                                    global_batch_size=s["train_batch"], parser=parser,
                                    shuffle_buffer_size=2048, seed=s["data_seed"]),
      validation_data=PanopticDataConfig(
          tfds_name=name, tfds_split="validation", is_training=False,
          drop_remainder=False, global_batch_size=16,
          parser=PanopticParser(sigma=s["sigma"],
                                small_instance_area=s["small_instance_area"])),
      labels=PanopticLabels(thing_classes=list(shapes.THING_IDS),
                            ignore_label=shapes.IGNORE_LABEL,
                            label_divisor=shapes.LABEL_DIVISOR),
      post_process=PanopticPostProcess(nms_kernel=s["nms_kernel"],
                                       stuff_area_limit=s["stuff_area_limit"]),
      losses=PanopticLosses(top_k_percent=s["top_k_percent"]))
  steps = s["train_steps"]
  return cfg.ExperimentConfig(
      runtime=cfg.RuntimeConfig(distribution_strategy="mirrored", num_gpus=0),
      task=task,
      trainer=cfg.TrainerConfig(
          train_steps=steps, validation_steps=-1, validation_interval=steps,
          steps_per_loop=50, summary_interval=50, checkpoint_interval=100, max_to_keep=3,
          optimizer_config=poly_adam(s["learning_rate"], steps),
          best_checkpoint_eval_metric="panoptic_quality",
          best_checkpoint_metric_comp="higher"),
      restrictions=["task.train_data.is_training != None",
                    "task.validation_data.is_training != None"])
