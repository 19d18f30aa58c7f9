"""Image classification task config and the papers' ImageNet experiments.

The task (`tfvision.tasks.image_classification`) reuses Model Garden's classification
data / loss / evaluation configs and builds the tfvision model itself (its own head,
raw pixels in). Experiments (`official.core.exp_factory` names) and where each recipe
comes from:

- `tfvision_resnest{50,101,200,269}_imagenet`: resnest.md Sec. 5.2 / 6.1: SGD momentum
  0.9, lr 0.1 x batch / 256 with a 5-epoch linear warm-up then cosine decay, 270 epochs,
  weight decay 1e-4, label smoothing 0.1, mixup (alpha 0.2), AutoAugment (the AutoAugment
  paper's ImageNet policy, Model Garden's "reduced_imagenet"), batch 8192 / 4096 / 2048 /
  2048, crops 224 / 256 / 320 / 416, evaluation on a center crop of 0.875 (Sec. 6.1);
  DropBlock 0.1 and dropout 0.2 (depth >= 200) are the model's defaults.
- `tfvision_botnet50_imagenet`, `tfvision_botnet_s1_50_imagenet`: botnet.md Sec. 4.7.3
  (Table 10): 200 epochs, batch 4096, weight decay 8e-5, RandAugment 2 x 10, label
  smoothing 0.1. The paper does not give the optimiser; the authors' TPU ResNet trainer
  (tensorflow/tpu `resnet_main.py`, which BoTNet's code builds on) decides: SGD momentum
  0.9, lr 0.1 x batch / 256, 5-epoch warm-up, cosine decay.
- `tfvision_swidernet_imagenet`: SWideRNet-(1, 1, 1) pre-training. swidernet.md gives
  the ImageNet architecture (Table 1) but no recipe; we use the same recipe as
  Axial-ResNet (same authors and codebase) below.
- `tfvision_axial_resnet_{s,m,l}_imagenet`: Axial-DeepLab trains ImageNet with the protocol of Stand-Alone
  Self-Attention (Ramachandran et al. 2019), whose text we do not have here
  (axial-deeplab-excerpt.txt stops before it): SGD with Nesterov momentum 0.9, batch
  4096, lr 0.1 x batch / 256, 5-epoch warm-up then cosine, 130 epochs, label smoothing
  0.1, weight decay 1e-4. These numbers are our reading of that protocol, not checked
  against the paper's text; adjust them in the YAML if the paper says otherwise.
- `tfvision_pale_{tiny,small,base}_imagenet`: pale-transformer.md appendix: AdamW lr 1e-3 (batch 1024), weight decay
  0.05, 20-epoch linear warm-up then cosine, 300 epochs, random flip, color jitter 0.4,
  Mixup 0.8 + CutMix 1.0 (DeiT's values, which the paper says it follows), AutoAugment,
  label smoothing 0.1, stochastic depth 0.1 / 0.3 / 0.5; evaluation resizes to 256 and
  crops 224.
- `tfvision_shapes_classification`: the built-in `tfvision_shapes` image-level label
  (three thing classes) with SWideRNet-(0.25, 0.25, 0.75), a laptop-sized check.

Every ImageNet experiment reads TFDS `imagenet2012` (set `tfds_data_dir`, or replace
`tfds_name` with `input_path` for Model Garden-format TFRecords) and runs on TPU with
bfloat16 (`configs/*_gpu.yaml` switch to MirroredStrategy).
"""
import dataclasses
from typing import List, Optional

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams
from official.modeling import optimization
from official.vision.configs import common
from official.vision.configs import image_classification as model_garden

from tfvision.configs import backbones

IMAGENET_TRAIN_EXAMPLES = 1281167
IMAGENET_VAL_EXAMPLES = 50000
IMAGENET_CLASSES = 1000

DataConfig = model_garden.DataConfig
Losses = model_garden.Losses
Evaluation = model_garden.Evaluation


@dataclasses.dataclass
class ClassificationModel(hyperparams.Config):
  """A tfvision classifier: a backbone config plus the shared head.

  dropout_rate None keeps the family's default (ResNeSt: 0.2 for depth >= 200).
  """
  num_classes: int = IMAGENET_CLASSES
  input_size: List[int] = dataclasses.field(default_factory=lambda: [224, 224, 3])
  backbone: backbones.Backbone = dataclasses.field(
      default_factory=lambda: backbones.preset_config("resnest50"))
  dropout_rate: Optional[float] = None
  norm_activation: common.NormActivation = dataclasses.field(
      default_factory=lambda: common.NormActivation(use_sync_bn=False))


@dataclasses.dataclass
class ImageClassificationTask(cfg.TaskConfig):
  """Config of `tfvision.tasks.image_classification.ImageClassificationTask`.

  `losses.l2_weight_decay` is the papers' weight decay (the coefficient in the SGD
  update); the model's Keras L2 factor is half of it, as in Model Garden.
  """
  model: ClassificationModel = dataclasses.field(default_factory=ClassificationModel)
  train_data: DataConfig = dataclasses.field(
      default_factory=lambda: DataConfig(is_training=True))
  validation_data: DataConfig = dataclasses.field(
      default_factory=lambda: DataConfig(is_training=False))
  losses: Losses = dataclasses.field(default_factory=Losses)
  evaluation: Evaluation = dataclasses.field(default_factory=Evaluation)
  init_checkpoint: Optional[str] = None
  init_checkpoint_modules: str = "all"


def warmup_schedule(optimizer, learning_rate, decay_steps, warmup_steps, schedule="cosine"):
  """An OptimizationConfig: linear warm-up from 0, then cosine (or poly) decay to 0."""
  if schedule == "cosine":
    decay = {"type": "cosine", "cosine": {"initial_learning_rate": learning_rate,
                                          "decay_steps": decay_steps, "alpha": 0.0}}
  else:
    decay = {"type": "polynomial", "polynomial": {
        "initial_learning_rate": learning_rate, "decay_steps": decay_steps,
        "end_learning_rate": 0.0, "power": 0.9}}
  config = {"optimizer": optimizer, "learning_rate": decay}
  if warmup_steps:
    config["warmup"] = {"type": "linear", "linear": {"warmup_steps": warmup_steps,
                                                     "warmup_learning_rate": 0.0}}
  return optimization.OptimizationConfig(config)


def sgd(momentum=0.9, nesterov=False):
  return {"type": "sgd", "sgd": {"momentum": momentum, "nesterov": nesterov}}


def adamw(weight_decay):
  # Decoupled weight decay (Loshchilov & Hutter), not on norms and biases (DeiT).
  return {"type": "adamw", "adamw": {
      "weight_decay_rate": weight_decay, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8,
      "exclude_from_weight_decay": ["batch_normalization", "layer_normalization",
                                    "gamma", "beta", "bias"]}}


def imagenet_experiment(backbone, input_size, batch_size, epochs, optimizer,
                        base_learning_rate, warmup_epochs, weight_decay, label_smoothing,
                        aug_type=None, mixup=None, color_jitter=0.0,
                        center_crop_fraction=0.875, norm_activation=None,
                        dropout_rate=None, sgd_weight_decay=True):
  """An ImageNet classification experiment from a recipe's numbers.

  Args:
    backbone: a `Backbone` config.
    input_size: training / evaluation crop side.
    batch_size: global batch.
    epochs: training epochs.
    optimizer: an optimizer OneOf dict (`sgd()`, `adamw(...)`).
    base_learning_rate: learning rate for batch 256 (scaled linearly with the batch) or,
      for AdamW, the absolute learning rate.
    warmup_epochs: linear warm-up length.
    weight_decay: the paper's weight decay; L2 in the loss for SGD, decoupled for AdamW.
    label_smoothing: label smoothing (folded into mixup's when mixup is used).
    aug_type: a Model Garden `Augmentation` (AutoAugment / RandAugment) or None.
    mixup: a Model Garden `MixupAndCutmix` or None.
    color_jitter: color jitter strength.
    center_crop_fraction: evaluation center crop.
    norm_activation: a `NormActivation` or None (sync BN, the family's momentum).
    dropout_rate: classifier dropout (None: the family default).
    sgd_weight_decay: False when the optimizer applies the decay itself.
  """
  steps_per_epoch = IMAGENET_TRAIN_EXAMPLES // batch_size
  if optimizer["type"] == "sgd":
    learning_rate = base_learning_rate * batch_size / 256
  else:
    learning_rate = base_learning_rate
  if mixup is not None:
    mixup.label_smoothing = label_smoothing
  losses = Losses(
      l2_weight_decay=weight_decay if sgd_weight_decay else 0.0,
      label_smoothing=0.0 if mixup is not None else label_smoothing,
      one_hot=mixup is None, soft_labels=mixup is not None)
  train_data = DataConfig(
      tfds_name="imagenet2012", tfds_split="train", is_training=True,
      global_batch_size=batch_size, aug_type=aug_type, mixup_and_cutmix=mixup,
      color_jitter=color_jitter, image_field_key="image", label_field_key="label",
      decode_jpeg_only=False, shuffle_buffer_size=10000)
  validation_data = DataConfig(
      tfds_name="imagenet2012", tfds_split="validation", is_training=False,
      global_batch_size=min(batch_size, 1024), drop_remainder=False,
      image_field_key="image", label_field_key="label", decode_jpeg_only=False,
      center_crop_fraction=center_crop_fraction)
  model = ClassificationModel(
      num_classes=IMAGENET_CLASSES, input_size=[input_size, input_size, 3],
      backbone=backbone, dropout_rate=dropout_rate,
      norm_activation=norm_activation or common.NormActivation(
          use_sync_bn=True, norm_momentum=0.9, norm_epsilon=1e-5))
  return cfg.ExperimentConfig(
      runtime=cfg.RuntimeConfig(distribution_strategy="tpu",
                                mixed_precision_dtype="bfloat16"),
      task=ImageClassificationTask(model=model, train_data=train_data,
                                   validation_data=validation_data, losses=losses),
      trainer=cfg.TrainerConfig(
          train_steps=epochs * steps_per_epoch,
          validation_steps=-1,
          validation_interval=steps_per_epoch, steps_per_loop=steps_per_epoch,
          summary_interval=steps_per_epoch, checkpoint_interval=steps_per_epoch,
          optimizer_config=warmup_schedule(
              optimizer, learning_rate, epochs * steps_per_epoch,
              warmup_epochs * steps_per_epoch),
          best_checkpoint_eval_metric="accuracy", best_checkpoint_metric_comp="higher"),
      restrictions=["task.train_data.is_training != None",
                    "task.validation_data.is_training != None"])


def _autoaugment(name="reduced_imagenet"):
  return common.Augmentation(type="autoaug", autoaug=common.AutoAugment(
      augmentation_name=name))


def _randaugment(layers, magnitude):
  return common.Augmentation(type="randaug", randaug=common.RandAugment(
      num_layers=layers, magnitude=magnitude))


# ResNeSt (resnest.md Sec. 6.1): depth -> (batch, crop).
RESNEST_SETTINGS = {50: (8192, 224), 101: (4096, 256), 200: (2048, 320), 269: (2048, 416)}


def _register_resnest(depth, batch, size):
  @exp_factory.register_config_factory(f"tfvision_resnest{depth}_imagenet")
  def factory():
    return imagenet_experiment(
        backbones.preset_config(f"resnest{depth}"),
        input_size=size, batch_size=batch, epochs=270, optimizer=sgd(0.9),
        base_learning_rate=0.1, warmup_epochs=5, weight_decay=1e-4, label_smoothing=0.1,
        aug_type=_autoaugment(), color_jitter=0.4,
        mixup=common.MixupAndCutmix(mixup_alpha=0.2, cutmix_alpha=0.0, prob=1.0,
                                    switch_prob=0.0))
  factory.__doc__ = f"ResNeSt-{depth} on ImageNet (resnest.md Sec. 5.2, 6.1)."
  return factory


for _depth, (_batch, _size) in RESNEST_SETTINGS.items():
  _register_resnest(_depth, _batch, _size)


def _botnet_experiment(backbone, size=224):
  return imagenet_experiment(
      backbone, input_size=size, batch_size=4096, epochs=200, optimizer=sgd(0.9),
      base_learning_rate=0.1, warmup_epochs=5, weight_decay=8e-5, label_smoothing=0.1,
      aug_type=_randaugment(2, 10))


@exp_factory.register_config_factory("tfvision_botnet50_imagenet")
def botnet50_imagenet():
  """BoT50 in botnet.md's improved ImageNet setting (Sec. 4.7.3, Table 10)."""
  return _botnet_experiment(backbones.preset_config("botnet50"))


@exp_factory.register_config_factory("tfvision_botnet_s1_50_imagenet")
def botnet_s1_50_imagenet():
  """BoT-S1-50 in botnet.md's improved ImageNet setting (Table 10)."""
  return _botnet_experiment(backbones.preset_config("botnet_s1_50"))


def _axial_recipe(backbone):
  return imagenet_experiment(
      backbone, input_size=224, batch_size=4096, epochs=130,
      optimizer=sgd(0.9, nesterov=True), base_learning_rate=0.1, warmup_epochs=5,
      weight_decay=1e-4, label_smoothing=0.1,
      norm_activation=common.NormActivation(use_sync_bn=True, norm_momentum=0.99,
                                            norm_epsilon=1e-3))


@exp_factory.register_config_factory("tfvision_swidernet_imagenet")
def swidernet_imagenet():
  """SWideRNet-(1, 1, 1) ImageNet pre-training (see the module docstring)."""
  return _axial_recipe(backbones.preset_config("swidernet_1_1_1"))


def _register_axial(name):
  @exp_factory.register_config_factory(f"tfvision_{name}_imagenet")
  def factory():
    return _axial_recipe(backbones.preset_config(name))
  factory.__doc__ = f"{name} on ImageNet (Stand-Alone Self-Attention's recipe; docstring)."
  return factory


def _register_pale(name):
  @exp_factory.register_config_factory(f"tfvision_{name}_imagenet")
  def factory():
    return imagenet_experiment(
        backbones.preset_config(name), input_size=224, batch_size=1024, epochs=300,
        optimizer=adamw(0.05), base_learning_rate=1e-3, warmup_epochs=20,
        weight_decay=0.05, label_smoothing=0.1, sgd_weight_decay=False,
        aug_type=_autoaugment(), color_jitter=0.4, center_crop_fraction=224 / 256,
        mixup=common.MixupAndCutmix(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0,
                                    switch_prob=0.5),
        # The MLP's GELU and the projections' PyTorch batch norm (pale-transformer.md).
        norm_activation=common.NormActivation(activation="gelu", use_sync_bn=True,
                                              norm_momentum=0.9, norm_epsilon=1e-5))
  factory.__doc__ = f"{name} on ImageNet (pale-transformer.md appendix)."
  return factory


for _name in ("axial_resnet_s", "axial_resnet_m", "axial_resnet_l"):
  _register_axial(_name)
for _name in ("pale_tiny", "pale_small", "pale_base"):
  _register_pale(_name)


@exp_factory.register_config_factory("tfvision_shapes_classification")
def shapes_classification():
  """SWideRNet-(0.25, 0.25, 0.75) on the built-in tfvision_shapes image-level label."""
  train_steps = 600
  train_data = DataConfig(
      tfds_name="tfvision_shapes/s64", tfds_split="train", is_training=True,
      global_batch_size=32, image_field_key="image", label_field_key="label",
      decode_jpeg_only=False, aug_crop=False, shuffle_buffer_size=1024)
  validation_data = DataConfig(
      tfds_name="tfvision_shapes/s64", tfds_split="validation", is_training=False,
      global_batch_size=32, drop_remainder=False, image_field_key="image",
      label_field_key="label", decode_jpeg_only=False, aug_crop=False)
  model = ClassificationModel(
      num_classes=3, input_size=[64, 64, 3],
      backbone=backbones.preset_config("swidernet_0.25_0.25_0.75", drop_path_rate=0.0),
      norm_activation=common.NormActivation(use_sync_bn=False))
  return cfg.ExperimentConfig(
      runtime=cfg.RuntimeConfig(distribution_strategy="mirrored", num_gpus=0),
      task=ImageClassificationTask(model=model, train_data=train_data,
                                   validation_data=validation_data,
                                   losses=Losses(label_smoothing=0.1),
                                   evaluation=Evaluation(top_k=1)),
      trainer=cfg.TrainerConfig(
          train_steps=train_steps, validation_steps=-1, validation_interval=200,
          steps_per_loop=50, summary_interval=50, checkpoint_interval=200,
          optimizer_config=warmup_schedule({"type": "adam", "adam": {}}, 1e-3,
                                           train_steps, 50)),
      restrictions=["task.train_data.is_training != None",
                    "task.validation_data.is_training != None"])
