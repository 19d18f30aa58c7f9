"""Semantic segmentation task config (DeepLabV3 / V3+) and its experiments.

- `tfvision_deeplabv3_resnest101_ade20k`, `..._cityscapes`: resnest.md Sec. 7.3 and
  Tables 7-8: DeepLabV3 on the dilated (output stride 8) ResNeSt-101, synchronized BN,
  the "poly" schedule, per-pixel cross-entropy on the logits upsampled to the input, 120
  epochs on ADE20K. The paper ran GluonCV's DeepLabV3 scripts, which decide the rest
  (recipe cards: `tfvision-train --describe NAME`): ADE20K as GluonCV's
  `deeplab_resnest101_ade.sh` (lr 0.01 with the head at 10x (`lr_mult` 10 in
  `gluoncv/model_zoo/deeplabv3.py`, the paper's "0.1"), batch 16, crop 480, 120 epochs,
  SGD momentum 0.9, weight decay 1e-4, poly power 0.9, random scale [0.5, 2.0] and
  flip); Cityscapes as GluonCV's only stored Cityscapes recipe of that script
  (`psp_resnet101_citys.sh`: lr 0.01, 240 epochs, crop 768). DropBlock 0.1 stays on
  during fine-tuning (GluonCV builds the backbone with `dropblock_prob=0.1` and runs no
  DropBlock schedule). Not reproduced (see RECIPES.md): the auxiliary FCN head (weight
  0.5) needs the model; the random scale is relative to the image, not to GluonCV's
  `base_size`; GluonCV's random Gaussian blur; the paper's multi-scale + flip evaluation.
  ADE20K reads TFDS `scene_parse150` (its "test" split is the ADE20K validation set),
  Cityscapes TFDS `cityscapes/semantic_segmentation`.
- `tfvision_deeplabv3_swidernet_shapes`: the built-in dataset's semantic maps, a
  laptop-sized check of the task.
"""
import dataclasses
from typing import List, Optional

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams
from official.vision.configs import common

from tfvision.configs import backbones
from tfvision.models.deeplab import DeepLabV3PlusSpec, DeepLabV3Spec
from tfvision.configs.image_classification import sgd, warmup_schedule


@dataclasses.dataclass
class SegmentationParser(hyperparams.Config):
  """Augmentation (`tfvision.data.dense_parsers.SemanticParser`)."""
  aug_scale_min: float = 1.0
  aug_scale_max: float = 1.0
  aug_rand_hflip: bool = True
  autoaugment_policy: Optional[str] = None
  aug_scale_step: float = 0.0


@dataclasses.dataclass
class SegmentationDataConfig(cfg.DataConfig):
  """Input config: TFDS name or Model Garden-format TFRecords.

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
  parser: SegmentationParser = dataclasses.field(default_factory=SegmentationParser)


@dataclasses.dataclass
class DeepLabDecoder(hyperparams.OneOfConfig):
  """DeepLabV3 (`type: v3`) or DeepLabV3+ (`type: v3plus`), each field its model's spec."""
  type: str = "v3"
  v3: DeepLabV3Spec = dataclasses.field(default_factory=DeepLabV3Spec)
  v3plus: DeepLabV3PlusSpec = dataclasses.field(default_factory=DeepLabV3PlusSpec)


@dataclasses.dataclass
class DeepLabModel(hyperparams.Config):
  """`tfvision.models.DeepLabV3` / `DeepLabV3Plus` on a backbone config.

  The decoder's fields are its model's spec (tfvision/models/deeplab.py); the output
  stride is the backbone's.
  """
  num_classes: int = 150
  input_size: List[int] = dataclasses.field(default_factory=lambda: [480, 480, 3])
  backbone: backbones.Backbone = dataclasses.field(
      default_factory=lambda: backbones.preset_config("resnest101", output_stride=8))
  norm_activation: common.NormActivation = dataclasses.field(
      default_factory=lambda: common.NormActivation(
          activation="relu", norm_momentum=0.9, norm_epsilon=1e-5, use_sync_bn=True))
  decoder: DeepLabDecoder = dataclasses.field(default_factory=DeepLabDecoder)


@dataclasses.dataclass
class SegmentationLosses(hyperparams.Config):
  ignore_label: int = 255
  top_k_percent: float = 1.0
  l2_weight_decay: float = 1e-4


@dataclasses.dataclass
class SemanticSegmentationTask(cfg.TaskConfig):
  """Config of `tfvision.tasks.semantic_segmentation.SemanticSegmentationTask`.

  head_learning_rate_multiplier scales the gradients of every variable outside the
  backbone (GluonCV's `lr_mult` on the DeepLab head).
  """
  model: DeepLabModel = dataclasses.field(default_factory=DeepLabModel)
  train_data: SegmentationDataConfig = dataclasses.field(
      default_factory=lambda: SegmentationDataConfig(is_training=True))
  validation_data: SegmentationDataConfig = dataclasses.field(
      default_factory=lambda: SegmentationDataConfig(is_training=False,
                                                     drop_remainder=False))
  losses: SegmentationLosses = dataclasses.field(default_factory=SegmentationLosses)
  head_learning_rate_multiplier: float = 1.0
  init_checkpoint: Optional[str] = None
  init_checkpoint_modules: str = "all"


# Per dataset: (TFDS name, train split, validation split, classes, train examples,
# validation examples, epochs, crop) from resnest.md Sec. 7.3 and GluonCV's scripts.
_RESNEST_SEGMENTATION = {
    "ade20k": ("scene_parse150", "train", "test", 150, 20210, 2000, 120, 480),
    "cityscapes": ("cityscapes/semantic_segmentation", "train", "validation", 19, 2975,
                   500, 240, 768),
}
# GluonCV's segmentation `train.py` defaults (batch 16) and the scripts' `--lr 0.01`.
SEGMENTATION_BATCH = 16
SEGMENTATION_LEARNING_RATE = 0.01
SEGMENTATION_HEAD_LR_MULTIPLIER = 10.0


def _deeplabv3_resnest101(dataset):
  (tfds_name, train_split, val_split, classes, examples, _, epochs,
   crop) = _RESNEST_SEGMENTATION[dataset]
  batch = SEGMENTATION_BATCH
  steps_per_epoch = examples // batch
  train_steps = epochs * steps_per_epoch
  model = DeepLabModel(
      num_classes=classes, input_size=[crop, crop, 3],
      backbone=backbones.preset_config("resnest101", output_stride=8))
  parser = SegmentationParser(aug_scale_min=0.5, aug_scale_max=2.0)
  return cfg.ExperimentConfig(
      runtime=cfg.RuntimeConfig(distribution_strategy="tpu",
                                mixed_precision_dtype="bfloat16"),
      task=SemanticSegmentationTask(
          model=model,
          train_data=SegmentationDataConfig(tfds_name=tfds_name, tfds_split=train_split,
                                            is_training=True, global_batch_size=batch,
                                            parser=parser),
          validation_data=SegmentationDataConfig(
              tfds_name=tfds_name, tfds_split=val_split, is_training=False,
              global_batch_size=batch, drop_remainder=False, pad_to_global_batch=True),
          losses=SegmentationLosses(ignore_label=255, l2_weight_decay=1e-4),
          head_learning_rate_multiplier=SEGMENTATION_HEAD_LR_MULTIPLIER),
      trainer=cfg.TrainerConfig(
          train_steps=train_steps, validation_steps=-1,
          validation_interval=10 * steps_per_epoch, steps_per_loop=steps_per_epoch,
          summary_interval=steps_per_epoch, checkpoint_interval=steps_per_epoch,
          optimizer_config=warmup_schedule(sgd(0.9), SEGMENTATION_LEARNING_RATE,
                                           train_steps, 0, schedule="poly"),
          best_checkpoint_eval_metric="mean_iou", best_checkpoint_metric_comp="higher"),
      restrictions=["task.train_data.is_training != None",
                    "task.validation_data.is_training != None"])


@exp_factory.register_config_factory("tfvision_deeplabv3_resnest101_ade20k")
def deeplabv3_resnest101_ade20k():
  """DeepLabV3 + dilated ResNeSt-101 on ADE20K (resnest.md Sec. 7.3, Table 8)."""
  return _deeplabv3_resnest101("ade20k")


@exp_factory.register_config_factory("tfvision_deeplabv3_resnest101_cityscapes")
def deeplabv3_resnest101_cityscapes():
  """DeepLabV3 + dilated ResNeSt-101 on Cityscapes (resnest.md Sec. 7.3, Table 7)."""
  return _deeplabv3_resnest101("cityscapes")


@exp_factory.register_config_factory("tfvision_deeplabv3_swidernet_shapes")
def deeplabv3_swidernet_shapes():
  """DeepLabV3 + SWideRNet-(0.25, 0.25, 0.75) on the built-in tfvision_shapes maps."""
  train_steps = 600
  model = DeepLabModel(
      num_classes=6, input_size=[64, 64, 3],
      backbone=backbones.preset_config("swidernet_0.25_0.25_0.75", output_stride=16,
                                       drop_path_rate=0.0),
      norm_activation=common.NormActivation(use_sync_bn=False, norm_momentum=0.99,
                                            norm_epsilon=1e-3),
      decoder=DeepLabDecoder(type="v3", v3=DeepLabV3Spec(aspp_filters=64, head_filters=64)))
  data = dict(tfds_name="tfvision_shapes/s64", global_batch_size=16)
  return cfg.ExperimentConfig(
      runtime=cfg.RuntimeConfig(distribution_strategy="mirrored", num_gpus=0),
      task=SemanticSegmentationTask(
          model=model,
          train_data=SegmentationDataConfig(tfds_split="train", is_training=True, **data),
          validation_data=SegmentationDataConfig(tfds_split="validation",
                                                 is_training=False, drop_remainder=False,
                                                 **data),
          losses=SegmentationLosses(ignore_label=255, l2_weight_decay=0.0)),
      trainer=cfg.TrainerConfig(
          train_steps=train_steps, validation_steps=-1, validation_interval=200,
          steps_per_loop=50, summary_interval=50, checkpoint_interval=200,
          optimizer_config=warmup_schedule({"type": "adam", "adam": {}}, 1e-3,
                                           train_steps, 0, schedule="poly"),
          best_checkpoint_eval_metric="mean_iou", best_checkpoint_metric_comp="higher"),
      restrictions=["task.train_data.is_training != None",
                    "task.validation_data.is_training != None"])
