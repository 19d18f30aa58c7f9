"""Image classification task config and the papers' ImageNet experiments.

The task (`tfvision.tasks.image_classification`) reuses Model Garden's classification
data / loss / evaluation configs and builds the tfvision model itself (its own head,
raw pixels in). Experiments (`official.core.exp_factory` names); every setting that
differs from Model Garden's defaults is listed with its source on the experiment's
recipe card (`tfvision-train --describe NAME`, RECIPES.md,
`tfvision.configs.recipe_cards`):

- `tfvision_resnest{50,101,200,269}_imagenet`: resnest.md Sec. 5.2 / 6.1 (batch, 270
  epochs, lr 0.1 x batch / 256, 5-epoch warm-up, cosine, weight decay 1e-4, mixup 0.2,
  AutoAugment, crops of Table 4) and, where the paper is silent, the authors' training
  script (zhanghang1989/ResNeSt `scripts/gluon/train.py`): Nesterov momentum ("nag"),
  cosine after the warm-up, label smoothing 0.1, color jitter 0.4, PCA lighting 0.1, and
  for crops >= 320 its bicubic resizing, TF-style random crop (area >= 0.1) and center
  crop of size / (size + 32) (`ERandomCrop` / `ECenterCrop`, as its `verify.py`).
- `tfvision_botnet50_imagenet`, `tfvision_botnet_s1_50_imagenet`: botnet.md Sec. 4.7.3
  (Table 10: 200 epochs, batch 4096, weight decay 8e-5, RandAugment 2 x 10, label
  smoothing 0.1), SGD with momentum (Sec. 2) and a cosine schedule (Sec. 4.7). The
  paper gives no momentum, learning rate or warm-up: Model Garden's `resnet_rs_imagenet`
  (the TF2 release of ResNet-RS, the training strategy botnet.md Sec. 4.7.4 follows)
  decides them: momentum 0.9, lr 0.1 x batch / 256, 5-epoch warm-up. Its EMA and
  dropout are not in Table 10's list and are not used.
- `tfvision_axial_resnet_{s,m,l}_imagenet`: Axial-DeepLab trains ImageNet as Stand-Alone Self-Attention (arXiv
  1906.05909), whose text is not in /work/shared/papers; the authors' released ImageNet
  code (csrhddlam/axial-deeplab `train.py` and its README command) decides: batch 128,
  SGD with Nesterov momentum 0.9, lr 0.05 (0.1 per 256 images), 10-epoch warm-up then
  cosine, 130 epochs, weight decay 8e-5, no label smoothing, per-device BN (PyTorch
  momentum 0.1, eps 1e-5).
- `tfvision_swidernet_imagenet`: SWideRNet-(1, 1, 1) pre-training. swidernet.md gives
  no recipe; deeplab2's `imagenet_pretrained_checkpoints.md` names its "strong training
  strategy" (AutoAugment, label smoothing, drop path) without values. The values and
  the optimiser are those of the Axial-ResNet recipe above (same authors); the card
  marks each as unsourced.
- `tfvision_pale_{tiny,small,base}_imagenet`: pale-transformer.md appendix (AdamW, lr 1e-3, weight decay 0.05, 20-epoch
  warm-up, cosine per iteration, 300 epochs, batch 1024, Mixup, CutMix, label smoothing,
  stochastic depth 0.1 / 0.3 / 0.5, resize 256 + crop 224) and the DeiT / Swin / CSWin
  code it follows for what it leaves open: timm's "AutoAugment" flag there is
  RandAugment `rand-m9-mstd0.5-inc1` with random erasing 0.25 (and timm skips the color
  jitter when it is set), Mixup 0.8 / CutMix 1.0 / switch 0.5, warm-up from 1e-6 to a
  final lr of 1e-5, bicubic resizing, no gradient clipping (DeiT and CSWin; Swin clips
  at 5.0), no EMA.
- `tfvision_shapes_classification`: the built-in `tfvision_shapes` image-level label
  (three thing classes) with SWideRNet-(0.25, 0.25, 0.75), a laptop-sized check.

Every ImageNet experiment reads TFDS `imagenet2012` (set `tfds_data_dir`, or replace
`tfds_name` with `input_path` for Model Garden-format TFRecords), runs on TPU with
bfloat16 (`configs/*_gpu.yaml` switch to MirroredStrategy) and evaluates the 50,000
validation images in global batches of 1024, the last one padded
(`pad_to_global_batch`).
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
# Evaluation global batch of the ImageNet experiments: divides every TPU slice up to
# 1024 cores; 50,000 = 48 x 1024 + 848, so the last batch is padded.
IMAGENET_EVAL_BATCH = 1024

Losses = model_garden.Losses
Evaluation = model_garden.Evaluation


@dataclasses.dataclass
class DataConfig(model_garden.DataConfig):
  """Model Garden's classification input config plus two tfvision fields.

  Attributes:
    pca_lighting: standard deviation of AlexNet's PCA lighting noise (0: off;
      `tfvision.data.augment.pca_lighting`).
    pad_to_global_batch: evaluation: pad the last global batch with empty,
      zero-weight examples (`tfvision.tasks.inputs`), so TPUs see whole batches and no
      example is dropped.
  """
  pca_lighting: float = 0.0
  pad_to_global_batch: bool = False


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


def warmup_schedule(optimizer, learning_rate, decay_steps, warmup_steps, schedule="cosine",
                    warmup_prefix=False, end_fraction=0.0, warmup_learning_rate=0.0):
  """An OptimizationConfig: linear warm-up, then cosine (or "poly" 0.9) decay.

  Args:
    optimizer: an optimizer OneOf dict (`sgd()`, `adamw(...)`, ...).
    learning_rate: the peak learning rate.
    decay_steps: the training steps.
    warmup_steps: linear warm-up steps (0: none).
    schedule: "cosine" or "poly" (power 0.9, deeplab2 / GluonCV's default).
    warmup_prefix: decay over the steps after the warm-up, starting at the peak
      (GluonCV's `CosineScheduler`, Swin's `warmup_prefix`); False decays over all steps
      with the warm-up overriding the first ones (Model Garden, timm).
    end_fraction: final learning rate / peak (cosine `alpha`).
    warmup_learning_rate: the learning rate at step 0.
  """
  offset = warmup_steps if warmup_prefix else 0
  if schedule == "cosine":
    decay = {"type": "cosine", "cosine": {"initial_learning_rate": learning_rate,
                                          "decay_steps": decay_steps - offset,
                                          "alpha": end_fraction, "offset": offset}}
  else:
    decay = {"type": "polynomial", "polynomial": {
        "initial_learning_rate": learning_rate, "decay_steps": decay_steps - offset,
        "end_learning_rate": learning_rate * end_fraction, "power": 0.9,
        "offset": offset}}
  config = {"optimizer": optimizer, "learning_rate": decay}
  if warmup_steps:
    config["warmup"] = {"type": "linear", "linear": {
        "warmup_steps": warmup_steps, "warmup_learning_rate": warmup_learning_rate}}
  return optimization.OptimizationConfig(config)


def sgd(momentum=0.9, nesterov=False):
  return {"type": "sgd", "sgd": {"momentum": momentum, "nesterov": nesterov}}


def adamw(weight_decay, gradient_clip_norm=0.0):
  # Decoupled weight decay (Loshchilov & Hutter), not on norms and biases (timm's
  # `param_groups_weight_decay`, which DeiT / Swin / CSWin use: no decay on 1-D weights).
  return {"type": "adamw", "adamw": {
      "weight_decay_rate": weight_decay, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8,
      "gradient_clip_norm": gradient_clip_norm,
      "exclude_from_weight_decay": ["batch_normalization", "layer_normalization",
                                    "gamma", "beta", "bias"]}}


def imagenet_experiment(backbone, input_size, batch_size, epochs, optimizer,
                        base_learning_rate, warmup_epochs, weight_decay, label_smoothing,
                        aug_type=None, mixup=None, color_jitter=0.0,
                        center_crop_fraction=0.875, norm_activation=None,
                        dropout_rate=None, sgd_weight_decay=True, warmup_prefix=False,
                        end_fraction=0.0, warmup_learning_rate=0.0,
                        resize_method="bilinear", crop_area_range=(0.08, 1.0),
                        random_erasing=None, pca_lighting=0.0):
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
    norm_activation: a `NormActivation` or None (per-device BN, momentum 0.9, eps 1e-5).
    dropout_rate: classifier dropout (None: the family default).
    sgd_weight_decay: False when the optimizer applies the decay itself.
    warmup_prefix, end_fraction, warmup_learning_rate: see `warmup_schedule`.
    resize_method: training and evaluation resizing ("bilinear", "bicubic").
    crop_area_range: training random crop area range (fraction of the image).
    random_erasing: a Model Garden `RandomErasing` or None.
    pca_lighting: PCA lighting noise strength (0: off).
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
      decode_jpeg_only=False, shuffle_buffer_size=10000, tf_resize_method=resize_method,
      crop_area_range=list(crop_area_range), random_erasing=random_erasing,
      pca_lighting=pca_lighting)
  validation_data = DataConfig(
      tfds_name="imagenet2012", tfds_split="validation", is_training=False,
      global_batch_size=IMAGENET_EVAL_BATCH, drop_remainder=False,
      pad_to_global_batch=True, image_field_key="image", label_field_key="label",
      decode_jpeg_only=False, center_crop_fraction=center_crop_fraction,
      tf_resize_method=resize_method)
  model = ClassificationModel(
      num_classes=IMAGENET_CLASSES, input_size=[input_size, input_size, 3],
      backbone=backbone, dropout_rate=dropout_rate,
      norm_activation=norm_activation or common.NormActivation(
          use_sync_bn=False, norm_momentum=0.9, norm_epsilon=1e-5))
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
              warmup_epochs * steps_per_epoch, warmup_prefix=warmup_prefix,
              end_fraction=end_fraction, warmup_learning_rate=warmup_learning_rate),
          best_checkpoint_eval_metric="accuracy", best_checkpoint_metric_comp="higher"),
      restrictions=["task.train_data.is_training != None",
                    "task.validation_data.is_training != None"])


def _autoaugment(name="reduced_imagenet"):
  return common.Augmentation(type="autoaug", autoaug=common.AutoAugment(
      augmentation_name=name))


def _randaugment(layers, magnitude, magnitude_std=0.0, exclude_ops=()):
  return common.Augmentation(type="randaug", randaug=common.RandAugment(
      num_layers=layers, magnitude=magnitude, magnitude_std=magnitude_std,
      exclude_ops=list(exclude_ops)))


# ResNeSt (resnest.md Sec. 6.1 and Table 4): depth -> (batch, crop).
RESNEST_SETTINGS = {50: (8192, 224), 101: (4096, 256), 200: (2048, 320), 269: (2048, 416)}
# ResNeSt's training script switches to its large-crop pipeline from this crop on.
RESNEST_LARGE_CROP = 320


def resnest_eval_crop_fraction(size):
  """ResNeSt's evaluation center crop: 0.875, or size / (size + 32) for crops >= 320."""
  return size / (size + 32) if size >= RESNEST_LARGE_CROP else 0.875


def _register_resnest(depth, batch, size):
  large = size >= RESNEST_LARGE_CROP

  @exp_factory.register_config_factory(f"tfvision_resnest{depth}_imagenet")
  def factory():
    return imagenet_experiment(
        backbones.preset_config(f"resnest{depth}"),
        input_size=size, batch_size=batch, epochs=270, optimizer=sgd(0.9, nesterov=True),
        base_learning_rate=0.1, warmup_epochs=5, warmup_prefix=True, weight_decay=1e-4,
        label_smoothing=0.1, aug_type=_autoaugment(), color_jitter=0.4, pca_lighting=0.1,
        mixup=common.MixupAndCutmix(mixup_alpha=0.2, cutmix_alpha=0.0, prob=1.0,
                                    switch_prob=0.0),
        center_crop_fraction=resnest_eval_crop_fraction(size),
        resize_method="bicubic" if large else "bilinear",
        crop_area_range=(0.1, 1.0) if large else (0.08, 1.0))
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


def _axial_recipe(backbone, **kwargs):
  """The Axial-DeepLab authors' ImageNet recipe (csrhddlam/axial-deeplab train.py)."""
  return imagenet_experiment(
      backbone, input_size=224, batch_size=128, epochs=130,
      optimizer=sgd(0.9, nesterov=True), base_learning_rate=0.1, warmup_epochs=10,
      warmup_prefix=True, weight_decay=8e-5, **kwargs)


@exp_factory.register_config_factory("tfvision_swidernet_imagenet")
def swidernet_imagenet():
  """SWideRNet-(1, 1, 1) ImageNet pre-training (see the module docstring)."""
  return _axial_recipe(
      backbones.preset_config("swidernet_1_1_1"),
      label_smoothing=0.1, aug_type=_autoaugment("v0"),
      norm_activation=common.NormActivation(use_sync_bn=True, norm_momentum=0.99,
                                            norm_epsilon=1e-3))


def _register_axial(name):
  @exp_factory.register_config_factory(f"tfvision_{name}_imagenet")
  def factory():
    return _axial_recipe(backbones.preset_config(name), label_smoothing=0.0)
  factory.__doc__ = f"{name} on ImageNet (the authors' released recipe; docstring)."
  return factory


def _register_pale(name):
  @exp_factory.register_config_factory(f"tfvision_{name}_imagenet")
  def factory():
    return imagenet_experiment(
        backbones.preset_config(name), input_size=224, batch_size=1024, epochs=300,
        optimizer=adamw(0.05), base_learning_rate=1e-3, warmup_epochs=20,
        warmup_prefix=True, warmup_learning_rate=1e-6, end_fraction=0.01,
        weight_decay=0.05, label_smoothing=0.1, sgd_weight_decay=False,
        aug_type=_randaugment(2, 9, magnitude_std=0.5, exclude_ops=["Cutout"]),
        random_erasing=common.RandomErasing(probability=0.25), color_jitter=0.0,
        center_crop_fraction=224 / 256, resize_method="bicubic",
        mixup=common.MixupAndCutmix(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0,
                                    switch_prob=0.5),
        # The MLP's GELU and the projections' PyTorch batch norm (per device, as DeiT /
        # CSWin's DistributedDataParallel runs it).
        norm_activation=common.NormActivation(activation="gelu", use_sync_bn=False,
                                              norm_momentum=0.9, norm_epsilon=1e-5))
  factory.__doc__ = f"{name} on ImageNet (pale-transformer.md appendix)."
  return factory


AXIAL_MODELS = ("axial_resnet_s", "axial_resnet_m", "axial_resnet_l")
PALE_MODELS = ("pale_tiny", "pale_small", "pale_base")
for _name in AXIAL_MODELS:
  _register_axial(_name)
for _name in PALE_MODELS:
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
