"""The recipe card of every registered experiment: config path -> source.

`tfvision.configs.recipes` computes which settings of an experiment differ from Model
Garden's defaults; this module says where each comes from. Papers are those in
/work/shared/papers (resnest.md, botnet.md, pale-transformer.md, swidernet.md,
axial-deeplab-excerpt.txt); code is cited as "owner/repository path". A card may also
source a setting that equals Model Garden's default, when the recipe depends on it
(printed as such).

Backbone architecture fields are keyed by their config path like every other setting
(`task.model.backbone.<type>.<field>`); when a backbone spec renames a field, the card
entry under the old name fails `recipes.check_card` until it is renamed.
"""
from tfvision.configs import image_classification as classification_cfg
from tfvision.configs import panoptic_deeplab as panoptic_cfg
from tfvision.configs.recipes import code, paper, tfvision, unsourced
from tfvision.models.registry import get_preset

OPT = "trainer.optimizer_config.optimizer."
LR = "trainer.optimizer_config.learning_rate."
WARMUP = "trainer.optimizer_config.warmup."
TRAIN = "task.train_data."
VAL = "task.validation_data."

# Reference code, "owner/repository path".
RESNEST_TRAIN = "zhanghang1989/ResNeSt scripts/gluon/train.py"
RESNEST_VERIFY = "zhanghang1989/ResNeSt scripts/gluon/verify.py"
RESNEST_GLUON = "zhanghang1989/ResNeSt resnest/gluon/resnest.py"
MG_CLASSIFICATION = "tensorflow/models official/vision/configs/image_classification.py"
TPU_RESNET = "tensorflow/tpu models/official/resnet/resnet_model.py"
AXIAL_TRAIN = "csrhddlam/axial-deeplab train.py"
AXIAL_README = "csrhddlam/axial-deeplab README.md (training command)"
AXIAL_SCHEDULE = "csrhddlam/axial-deeplab lib/utils.py (adjust_learning_rate)"
DEEPLAB2 = "google-research/deeplab2"
DEEPLAB2_IMAGENET = f"{DEEPLAB2} g3doc/projects/imagenet_pretrained_checkpoints.md"
DEEPLAB2_CITYSCAPES = (f"{DEEPLAB2} "
                       "configs/cityscapes/panoptic_deeplab/swidernet_sac_1_1_1_os16.textproto")
DEEPLAB2_COCO = f"{DEEPLAB2} configs/coco/panoptic_deeplab/resnet50_os16.textproto"
DEEPLAB2_TRAINER = "google-research/deeplab2 trainer.proto"
DEEPLAB2_DATASET = "google-research/deeplab2 dataset.proto"
DEEPLAB2_EVALUATOR = "google-research/deeplab2 evaluator.proto"
DEEPLAB2_BN = f"{DEEPLAB2} trainer.proto (solver_options.batchnorm_momentum / _epsilon)"
DEEPLAB2_DOC = "google-research/deeplab2 g3doc/projects/panoptic_deeplab.md"
GLUON_ADE = "dmlc/web-data gluoncv/logs/segmentation/deeplab_resnest101_ade.sh"
GLUON_CITYSCAPES = "dmlc/web-data gluoncv/logs/segmentation/psp_resnet101_citys.sh"
GLUON_TRAIN = "dmlc/gluon-cv scripts/segmentation/train.py"
GLUON_DEEPLAB = "dmlc/gluon-cv gluoncv/model_zoo/deeplabv3.py"
GLUON_RESNEST = "dmlc/gluon-cv gluoncv/model_zoo/resnest.py"
DEIT = "facebookresearch/deit main.py"
SWIN = "microsoft/Swin-Transformer config.py"
CSWIN = "microsoft/CSWin-Transformer main.py"
TIMM = "rwightman/pytorch-image-models timm/data/transforms_factory.py"
TIMM_OPTIM = "rwightman/pytorch-image-models timm/optim/optim_factory.py"

TPU_PLATFORM = ("the package's target (the product card): Cloud TPU with bfloat16; "
                "configs/*_gpu.yaml run the same recipe on GPUs")


def _runtime(precision_source=None):
  return {
      "runtime.distribution_strategy": tfvision(TPU_PLATFORM),
      "runtime.mixed_precision_dtype": precision_source or tfvision(TPU_PLATFORM),
  }


def _eval_batch(reason):
  return {VAL + "global_batch_size": tfvision(reason),
          VAL + "pad_to_global_batch": tfvision(
              "padded evaluation: the last global batch is completed with empty, "
              "zero-weight examples, so TPUs see static shapes and every validation "
              "example counts once (tfvision/tasks/inputs.py)")}


# What the recipes cannot express yet, or deliberately leave out (RECIPES.md prints it).
NOTES = (
    "ResNeSt ImageNet: DropBlock ramps linearly from 0 to 0.1 over training in "
    f"{RESNEST_TRAIN} (DropBlockScheduler); tfvision's DropBlock rate is constant until "
    "the model takes a schedule (pending the specs issue).",
    "DeepLabV3 + ResNeSt: GluonCV's auxiliary FCN head on the stride-8 stage-3 features "
    f"(--aux, weight 0.5, lr x10; {GLUON_DEEPLAB}) needs a model output (pending the specs "
    "issue); its random scale is of a fixed base size (520 ADE20K, 2048 Cityscapes) where "
    "tfvision scales the image; its random Gaussian blur (p 0.5, "
    "dmlc/gluon-cv gluoncv/data/segbase.py) is not applied; the paper's multi-scale + "
    "flip evaluation (resnest.md Sec. 7.3) is not available for semantic segmentation.",
    "Panoptic-DeepLab: the experiments evaluate single-scale without flipping, as "
    "swidernet.md Tables 3 and 5; the multi-scale + flip numbers of Tables 6-9 need the "
    "test-time augmentation of issue 18 (pending: an evaluation setting for it). COCO "
    "images are not first resized to a 641 long side as deeplab2's COCO configs do "
    "(most COCO images are at most 640 pixels wide, a factor within 0.2%).",
    "SWideRNet ImageNet pre-training: no published recipe; its optimiser, schedule and "
    "regularisation values are the Axial-ResNet recipe's and counted as unsourced.",
    "Padded evaluation is exact when one input pipeline reads the whole validation split "
    "(one TPU host); on multi-host slices every host's shard must need the same number of "
    "steps (Model Garden shards files per host).",
)


# --- ImageNet ------------------------------------------------------------------------

IMAGENET_EVAL = _eval_batch(
    "1024 divides every TPU slice up to 1024 cores; the evaluation batch does not change "
    "the result")


def _cosine(peak, decay, warmup, offset=None, end=None, warmup_start=None, kind=None):
  """Entries of a linear warm-up + cosine schedule.

  Args:
    peak: source of the peak learning rate; decay: of the cosine's length;
    warmup: of the warm-up; offset: of decaying only after the warm-up; end: of the
    final learning rate; warmup_start: of the warm-up's first learning rate; kind: of
    the schedule being cosine (default: `peak`).
  """
  cards = {
      LR + "type": kind or peak,
      LR + "cosine.initial_learning_rate": peak,
      LR + "cosine.decay_steps": decay,
      WARMUP + "type": warmup,
      WARMUP + "linear.warmup_steps": warmup,
  }
  if offset is not None:
    cards[LR + "cosine.offset"] = offset
  if end is not None:
    cards[LR + "cosine.alpha"] = end
  if warmup_start is not None:
    cards[WARMUP + "linear.warmup_learning_rate"] = warmup_start
  return cards


def _resnest_card(depth, size):
  large = size >= classification_cfg.RESNEST_LARGE_CROP
  card = {
      **_runtime(),
      **IMAGENET_EVAL,
      "trainer.train_steps": paper("resnest.md Sec. 6.1: 270 epochs"),
      TRAIN + "global_batch_size": paper(
          "resnest.md Sec. 6.1: 8192 (ResNeSt-50), 4096 (101), 2048 (200, 269)"),
      OPT + "type": paper("resnest.md Sec. 6.1: momentum 0.9 (SGD)"),
      OPT + "sgd.momentum": paper("resnest.md Sec. 6.1: momentum 0.9"),
      OPT + "sgd.nesterov": code(f"{RESNEST_TRAIN}: optimizer 'nag' (Nesterov)"),
      **_cosine(
          peak=paper("resnest.md Sec. 5.2: lr = 0.1 x batch / 256, cosine schedule"),
          warmup=paper("resnest.md Sec. 5.2: linear warm-up from 0 over the first 5 "
                       "epochs"),
          decay=code(f"{RESNEST_TRAIN}: GluonCV CosineScheduler decays to 0 over the "
                     f"steps after the warm-up"),
          offset=code(f"{RESNEST_TRAIN}: GluonCV CosineScheduler starts the cosine after "
                      f"the warm-up")),
      "task.losses.l2_weight_decay": paper(
          "resnest.md Sec. 6.1: weight decay 1e-4 (on the kernels: --no-wd in "
          f"{RESNEST_TRAIN}'s README command exempts BN and biases)"),
      "task.losses.one_hot": paper("resnest.md Sec. 5.2: mixup makes soft labels"),
      "task.losses.soft_labels": paper("resnest.md Sec. 5.2: mixup makes soft labels"),
      TRAIN + "mixup_and_cutmix.mixup_alpha": paper(
          "resnest.md Sec. 5.2: lambda ~ Beta(0.2), sampled per example"),
      TRAIN + "mixup_and_cutmix.cutmix_alpha": paper("resnest.md Sec. 5.2: mixup only"),
      TRAIN + "mixup_and_cutmix.prob": paper("resnest.md Sec. 6.1: every batch is mixed"),
      TRAIN + "mixup_and_cutmix.switch_prob": paper("resnest.md Sec. 5.2: mixup only"),
      TRAIN + "mixup_and_cutmix.label_smoothing": code(
          f"{RESNEST_TRAIN}: label smoothing eta 0.1 (resnest.md Sec. 5.2 gives only the "
          f"formula)"),
      TRAIN + "aug_type.type": paper("resnest.md Sec. 5.2, 6.1: AutoAugment"),
      TRAIN + "aug_type.autoaug.augmentation_name": code(
          "the AutoAugment paper's ImageNet policy (Model Garden 'reduced_imagenet'), as "
          "zhanghang1989/ResNeSt resnest/gluon/data_utils.py autoaug_imagenet_policies; "
          "Model Garden applies it after the random crop, GluonCV before"),
      TRAIN + "color_jitter": code(f"{RESNEST_TRAIN}: jitter_param 0.4 (brightness, "
                                   f"contrast, saturation); resnest.md Sec. 6.1"),
      TRAIN + "pca_lighting": code(f"{RESNEST_TRAIN}: RandomLighting(0.1); resnest.md "
                                   f"Sec. 6.1 'changing the lighting'"),
      "task.model.norm_activation.norm_momentum": code(
          "MXNet BatchNorm default momentum 0.9 (the framework of resnest.md Sec. 6.1)"),
      "task.model.norm_activation.norm_epsilon": code(
          "MXNet BatchNorm default epsilon 1e-5"),
      "task.model.norm_activation.use_sync_bn": code(
          f"{RESNEST_TRAIN}: per-GPU BatchNorm (128 images per GPU, Horovod)"),
      "task.model.backbone.resnest.dropblock_rate": tfvision(
          f"0.1 in the last two stages (resnest.md Sec. 5.2; {RESNEST_GLUON}), but "
          f"{RESNEST_TRAIN} ramps it linearly from 0 to 0.1 over the epochs "
          f"(DropBlockScheduler); constant here until the model takes a schedule "
          f"(pending the specs issue)"),
      "task.model.backbone.resnest.zero_init_last_bn": paper(
          "resnest.md Sec. 5.2: last BN gamma of each block initialised to zero"),
  }
  if depth != 50:
    card["task.model.backbone.resnest.depth"] = paper(f"ResNeSt-{depth}")
  if size != 224:
    card["task.model.input_size"] = paper(
        f"resnest.md Table 4: crop {size} (Sec. 6.3's text says 256 / 320 for "
        f"ResNeSt-200 / 269; Table 4, which reports the accuracies, and "
        f"{RESNEST_VERIFY}'s released-model check use 320 / 416)")
  if large:
    large_note = (f"{RESNEST_TRAIN} and {RESNEST_VERIFY}, input size >= 320: bicubic "
                  f"resizing (resnest.md Sec. 6.3: 'bicubic up-sampling for input-size "
                  f"greater than 256')")
    card.update({
        TRAIN + "tf_resize_method": code(large_note),
        VAL + "tf_resize_method": code(large_note),
        TRAIN + "crop_area_range": code(
            f"{RESNEST_TRAIN}: ERandomCrop (resnest/gluon/transforms.py) samples areas in "
            f"[0.1, 1.0] for input size >= 320"),
        VAL + "center_crop_fraction": code(
            f"{RESNEST_VERIFY}: ECenterCrop crops size / (size + 32) of the short side "
            f"for input size >= 320 (resnest.md Sec. 6.1 states 0.875, which its code "
            f"uses below 320)"),
    })
  return card


def _botnet_card(s1):
  rs = f"{MG_CLASSIFICATION} resnet_rs_imagenet (ResNet-RS, botnet.md [3] / Sec. 4.7.4)"
  card = {
      **_runtime(paper("botnet.md Sec. 4: bfloat16 on TPU-v3")),
      **IMAGENET_EVAL,
      "task.model.backbone.type": paper("botnet.md Table 1: BoT50"),
      "trainer.train_steps": paper("botnet.md Table 10: 200 epochs"),
      TRAIN + "global_batch_size": paper("botnet.md Table 10: batch 4096"),
      "task.losses.l2_weight_decay": paper("botnet.md Table 10: weight decay 8e-5"),
      "task.losses.label_smoothing": paper("botnet.md Table 10: label smoothing 0.1"),
      TRAIN + "aug_type.type": paper("botnet.md Table 10: RandAugment (2 layers, "
                                     "magnitude 10; Model Garden's defaults)"),
      OPT + "type": paper("botnet.md Sec. 2: SGD with momentum"),
      OPT + "sgd.momentum": code(f"{rs}: momentum 0.9"),
      LR + "type": paper("botnet.md Sec. 4.7 (Table 9's setting): cosine schedule"),
      LR + "cosine.initial_learning_rate": code(f"{rs}: 0.1 x batch / 256 (1.6 at 4096)"),
      LR + "cosine.decay_steps": code(f"{rs}: cosine over all steps, the warm-up "
                                      f"overriding the first ones"),
      WARMUP + "type": code(f"{rs}: linear warm-up from 0"),
      WARMUP + "linear.warmup_steps": code(f"{rs}: 5 epochs"),
      "task.model.norm_activation.norm_momentum": code(
          f"{TPU_RESNET}: MOVING_AVERAGE_DECAY 0.9 (the TPU ResNet BoTNet builds on)"),
      "task.model.norm_activation.norm_epsilon": code(f"{TPU_RESNET}: EPSILON 1e-5"),
      "task.model.norm_activation.use_sync_bn": code(
          f"{TPU_RESNET} and {rs}: per-core batch norm"),
      "trainer.optimizer_config.ema": tfvision(
          f"no EMA: {rs} keeps one (0.9999) and dropout 0.25, but botnet.md Table 10 "
          f"lists its improved setting without them"),
  }
  if s1:
    card["task.model.backbone.botnet.output_stride"] = paper(
        "botnet.md Sec. 4.7.1: BoT-S1, stride 1 in the final block group (output stride "
        "16)")
  return card


AXIAL_COMMON = {
    **_runtime(),
    **IMAGENET_EVAL,
    "trainer.train_steps": code(f"{AXIAL_TRAIN}: --epochs 130"),
    TRAIN + "global_batch_size": code(
        f"{AXIAL_README}: --batch_size 128, the global batch (the Stand-Alone "
        f"Self-Attention protocol Axial-DeepLab Sec. 4.1 follows is not in "
        f"/work/shared/papers)"),
    OPT + "type": code(f"{AXIAL_TRAIN}: --optim sgd"),
    OPT + "sgd.momentum": code(f"{AXIAL_TRAIN}: --momentum 0.9"),
    OPT + "sgd.nesterov": code(f"{AXIAL_README}: --nesterov"),
    **_cosine(
        peak=code(f"{AXIAL_README}: --lr 0.05 at batch 128"),
        warmup=code(f"{AXIAL_TRAIN}: --warmup_epochs 10, linear from 0"),
        decay=code(f"{AXIAL_SCHEDULE}: cosine to 0 over the epochs after the warm-up"),
        offset=code(f"{AXIAL_SCHEDULE}: the cosine starts after the warm-up"),
        kind=code(f"{AXIAL_TRAIN}: --lr_scheduler cosine")),
    "task.losses.l2_weight_decay": code(
        f"{AXIAL_TRAIN}: --weight_decay 8e-5 (PyTorch SGD decays every parameter; "
        f"tfvision's L2 is on the kernels)"),
    "task.model.norm_activation.norm_momentum": code(
        "PyTorch BatchNorm2d default momentum 0.1 (a moving-average decay of 0.9), the "
        f"framework of {AXIAL_TRAIN}"),
    "task.model.norm_activation.norm_epsilon": code("PyTorch BatchNorm2d default eps 1e-5"),
    "task.model.norm_activation.use_sync_bn": code(
        f"{AXIAL_TRAIN}: DataParallel, per-GPU batch norm"),
    "task.losses.label_smoothing": code(
        f"{AXIAL_README}: the command does not pass --label_smoothing (off)"),
}


def _axial_card(name):
  return {**AXIAL_COMMON,
          "task.model.backbone.type": paper("axial-deeplab-excerpt.txt Sec. 4.1"),
          "task.model.backbone.axial_resnet.width_multiplier": paper(
              f"Axial-DeepLab Sec. 4.1: Axial-ResNet-{name[-1].upper()} (Fig. 3; width "
              f"{get_preset(name).fixed['width_multiplier']})")}


SWIDERNET_IMAGENET = {
    **AXIAL_COMMON,
    "trainer.train_steps": unsourced(
        "swidernet.md and deeplab2 give no ImageNet schedule; 130 epochs of the "
        f"Axial-ResNet recipe ({AXIAL_TRAIN}), same authors"),
    TRAIN + "global_batch_size": unsourced(
        "no SWideRNet ImageNet recipe is published; the Axial-ResNet recipe's 128"),
    OPT + "type": unsourced("no SWideRNet ImageNet recipe; the Axial-ResNet recipe's SGD"),
    OPT + "sgd.momentum": unsourced("no SWideRNet ImageNet recipe; Axial-ResNet's 0.9"),
    OPT + "sgd.nesterov": unsourced("no SWideRNet ImageNet recipe; Axial-ResNet's"),
    **_cosine(
        peak=unsourced("no SWideRNet ImageNet recipe; Axial-ResNet's 0.05 at batch 128"),
        warmup=unsourced("no SWideRNet ImageNet recipe; Axial-ResNet's 10 epochs"),
        decay=unsourced("no SWideRNet ImageNet recipe; Axial-ResNet's cosine"),
        offset=unsourced("no SWideRNet ImageNet recipe; Axial-ResNet's cosine")),
    "task.losses.l2_weight_decay": unsourced(
        "no SWideRNet ImageNet recipe; Axial-ResNet's 8e-5"),
    "task.losses.label_smoothing": unsourced(
        f"{DEEPLAB2_IMAGENET} names label smoothing in the 'strong training strategy' of "
        f"its SWideRNet checkpoints but not its value; 0.1"),
    TRAIN + "aug_type.type": code(
        f"{DEEPLAB2_IMAGENET}: the SWideRNet checkpoints' 'strong training strategy' "
        f"uses AutoAugment"),
    TRAIN + "aug_type.autoaug.augmentation_name": unsourced(
        "deeplab2 names no policy; Model Garden's 'v0' (the TPU codebase's ImageNet "
        "policy)"),
    "task.model.norm_activation.norm_momentum": code(f"{DEEPLAB2_BN}: momentum 0.99"),
    "task.model.norm_activation.norm_epsilon": code(f"{DEEPLAB2_BN}: epsilon 1e-3"),
    "task.model.norm_activation.use_sync_bn": code(
        f"{DEEPLAB2_TRAINER}: use_sync_batchnorm defaults to true"),
    "task.model.backbone.type": paper("swidernet.md Table 1: SWideRNet-(1, 1, 1)"),
    "task.model.backbone.swidernet.drop_path_rate": unsourced(
        f"{DEEPLAB2_IMAGENET} names drop path but not its ImageNet rate; 0.2 as the "
        f"paper's panoptic rate (swidernet.md Sec. 4.1)"),
}


def _pale_card(name, drop_path):
  three = f"{DEIT}, {SWIN}, {CSWIN}"
  return {
      **_runtime(),
      **IMAGENET_EVAL,
      "task.model.backbone.type": paper("pale-transformer.md Table 2"),
      "task.model.backbone.pale.embed_dim": paper(
          f"pale-transformer.md Table 1: {name}, C = "
          f"{get_preset(name).fixed['embed_dim']}"),
      "task.model.backbone.pale.num_heads": paper(
          f"pale-transformer.md Table 1: {name}'s heads"),
      "task.model.backbone.pale.drop_path_rate": paper(
          f"pale-transformer.md appendix: maximal stochastic depth {drop_path}"),
      "task.model.norm_activation.activation": code(
          f"the MLP's GELU (pale-transformer.md Eq. 8 follows {CSWIN}: nn.GELU)"),
      "trainer.train_steps": paper("pale-transformer.md appendix: 300 epochs"),
      TRAIN + "global_batch_size": paper("pale-transformer.md appendix: batch 1024"),
      OPT + "type": paper("pale-transformer.md appendix: AdamW"),
      OPT + "adamw.weight_decay_rate": paper("pale-transformer.md appendix: 0.05"),
      OPT + "adamw.epsilon": code(f"{DEIT} --opt-eps 1e-8; {SWIN} OPTIMIZER.EPS 1e-8"),
      OPT + "adamw.exclude_from_weight_decay": code(
          f"{TIMM_OPTIM}: no weight decay on 1-D weights (norms, biases), as {three}"),
      OPT + "adamw.gradient_clip_norm": code(
          f"{DEIT} and {CSWIN}: --clip-grad None (no clipping; {SWIN} clips at 5.0; "
          f"Model Garden's AdamW default of 1.0 is in none of them)"),
      LR + "type": paper("pale-transformer.md appendix: cosine, per iteration"),
      LR + "cosine.initial_learning_rate": paper("pale-transformer.md appendix: 1e-3"),
      LR + "cosine.decay_steps": code(f"{SWIN}: WARMUP_PREFIX, cosine after the warm-up"),
      LR + "cosine.offset": code(f"{SWIN}: WARMUP_PREFIX, cosine after the warm-up"),
      LR + "cosine.alpha": code(
          f"final lr 1e-5: {DEIT} and {CSWIN} --min-lr 1e-5; {SWIN} MIN_LR 5e-6 x "
          f"batch / 512"),
      WARMUP + "type": paper("pale-transformer.md appendix: linear warm-up"),
      WARMUP + "linear.warmup_steps": paper("pale-transformer.md appendix: 20 epochs"),
      WARMUP + "linear.warmup_learning_rate": code(
          f"{DEIT} and {CSWIN} --warmup-lr 1e-6; {SWIN} WARMUP_LR 5e-7 x batch / 512"),
      "task.losses.one_hot": paper("pale-transformer.md appendix: Mixup / CutMix labels"),
      "task.losses.soft_labels": paper(
          "pale-transformer.md appendix: Mixup / CutMix labels"),
      TRAIN + "mixup_and_cutmix.mixup_alpha": code(f"{three}: --mixup 0.8"),
      TRAIN + "mixup_and_cutmix.cutmix_alpha": code(f"{three}: --cutmix 1.0"),
      TRAIN + "mixup_and_cutmix.prob": code(f"{three}: mixup prob 1.0"),
      TRAIN + "mixup_and_cutmix.switch_prob": code(f"{three}: switch prob 0.5"),
      TRAIN + "mixup_and_cutmix.label_smoothing": code(
          f"{three}: --smoothing 0.1 (pale-transformer.md appendix: label smoothing)"),
      TRAIN + "aug_type.type": code(
          f"pale-transformer.md's 'AutoAugment' is the --aa option of {three}, "
          f"'rand-m9-mstd0.5-inc1': RandAugment (Model Garden has no 'inc1' "
          f"increasing-severity variants)"),
      TRAIN + "aug_type.randaug.magnitude": code(f"{three}: rand-m9 (magnitude 9)"),
      TRAIN + "aug_type.randaug.magnitude_std": code(f"{three}: mstd0.5"),
      TRAIN + "aug_type.randaug.exclude_ops": code(
          f"timm's RandAugment has no Cutout; {MG_CLASSIFICATION} deit_imagenet_pretrain "
          f"excludes it the same way"),
      TRAIN + "random_erasing.probability": code(f"{three}: --reprob 0.25"),
      TRAIN + "random_erasing.min_area": code(f"{three}: timm RandomErasing min_area 0.02"),
      TRAIN + "random_erasing.max_area": code(f"{three}: timm RandomErasing max_area 1/3"),
      TRAIN + "random_erasing.min_aspect": code(
          f"{three}: timm RandomErasing min_aspect 0.3"),
      TRAIN + "color_jitter": tfvision(
          f"0: pale-transformer.md lists color jitter, but {TIMM} "
          f"(transforms_imagenet_train), which {three} use, applies it only when no "
          f"auto-augment policy is set"),
      TRAIN + "tf_resize_method": code(f"{DEIT} --train-interpolation bicubic"),
      VAL + "tf_resize_method": code(f"{SWIN} DATA.INTERPOLATION bicubic; {DEIT}: "
                                     f"bicubic evaluation resize"),
      VAL + "center_crop_fraction": paper(
          "pale-transformer.md appendix: resize to 256, center crop 224"),
      "task.model.norm_activation.norm_momentum": code(
          f"PyTorch BatchNorm2d default momentum 0.1 (decay 0.9), as {three}"),
      "task.model.norm_activation.norm_epsilon": code(
          "PyTorch BatchNorm2d default eps 1e-5"),
  }


# --- Panoptic-DeepLab -----------------------------------------------------------------

PANOPTIC_COMMON = {
    **_runtime(),
    "task.losses.top_k_percent": code(
        f"{DEEPLAB2_CITYSCAPES}: semantic top_k_percent 0.2 (Panoptic-DeepLab's loss, "
        f"swidernet.md Sec. 4)"),
    "task.losses.center_weight": code(f"{DEEPLAB2_CITYSCAPES}: center_loss weight 200"),
    "task.losses.offset_weight": code(
        f"{DEEPLAB2_CITYSCAPES}: regression_loss weight 0.01"),
    "task.losses.l2_weight_decay": paper("swidernet.md Sec. 4: no weight decay"),
    TRAIN + "parser.sigma": code(f"{DEEPLAB2_DATASET}: sigma 8"),
    TRAIN + "parser.small_instance_weight": code(
        f"{DEEPLAB2_CITYSCAPES}: small_instance_weight 3.0"),
    "task.post_process.center_threshold": code(
        f"{DEEPLAB2_CITYSCAPES}: center_score_threshold 0.1"),
    OPT + "type": paper("swidernet.md Sec. 4: Adam, no weight decay"),
    OPT + "adam.epsilon": code(
        f"{DEEPLAB2_TRAINER}: optimizer 'adam' is tf.keras Adam with its default "
        f"epsilon 1e-7"),
    LR + "type": paper("swidernet.md Sec. 4: 'poly' learning rate policy"),
    LR + "polynomial.initial_learning_rate": paper("swidernet.md Sec. 4: 0.0001"),
    LR + "polynomial.power": code(f"{DEEPLAB2_TRAINER}: poly_learning_power 0.9"),
    LR + "polynomial.end_learning_rate": code(
        f"{DEEPLAB2_TRAINER}: poly_end_learning_rate 0"),
    LR + "polynomial.decay_steps": paper("swidernet.md Sec. 4: the training iterations"),
    "task.model.norm_activation.use_sync_bn": code(
        f"{DEEPLAB2_TRAINER}: use_sync_batchnorm true (swidernet.md Sec. 4 fine-tunes BN)"),
    "task.model.backbone.swidernet.output_stride": paper(
        "swidernet.md Sec. 4 / Table 3: output stride 16 (deeplab2 *_os16 configs)"),
    "task.model.backbone.swidernet.drop_path_rate": paper(
        "swidernet.md Sec. 4.1: drop path, survival rate 0.8"),
    "task.model.backbone.swidernet.drop_path_schedule": paper(
        f"swidernet.md Sec. 4.1: a constant survival rate (the released deeplab2 config "
        f"uses 'linear': tfvision_panoptic_deeplab_swidernet_sac_cityscapes_deeplab2)"),
    "task.model.backbone.swidernet.use_se": paper("swidernet.md Table 3: SE"),
    "task.model.backbone.swidernet.sac_beyond_stride": paper(
        f"swidernet.md Table 3: SAC in the last stage ({DEEPLAB2_CITYSCAPES}: "
        f"use_sac_beyond_stride 32)"),
    TRAIN + "parser.aug_scale_step": code(
        f"{DEEPLAB2_CITYSCAPES} and {DEEPLAB2_COCO}: scale_factor_step_size 0.1"),
}


def _panoptic_dataset(dataset):
  if dataset == "coco":
    return {
        "trainer.train_steps": paper("swidernet.md Sec. 4: 500K iterations on COCO"),
        TRAIN + "global_batch_size": paper("swidernet.md Sec. 4: batch 64 on COCO"),
        "task.model.input_size": paper("swidernet.md Sec. 4: crop 641 x 641 on COCO"),
        "task.model.num_classes": code(
            "COCO panoptic: 133 classes at 1..133 and void 0 (deeplab2's "
            "coco_panoptic dataset layout)"),
        "task.labels.thing_classes": code("COCO panoptic: the 80 thing classes, 1..80"),
        "task.labels.ignore_label": code("deeplab2 coco_panoptic: void is 0"),
        "task.labels.label_divisor": code("deeplab2 coco_panoptic: label divisor 256"),
        TRAIN + "parser.aug_scale_min": code(f"{DEEPLAB2_COCO}: min_scale_factor 0.5"),
        TRAIN + "parser.aug_scale_max": code(f"{DEEPLAB2_COCO}: max_scale_factor 1.5"),
        "task.post_process.stuff_area_limit": paper(
            "swidernet.md Sec. 4: stuff below 4096 pixels -> void on COCO"),
        "task.post_process.nms_kernel": code(f"{DEEPLAB2_COCO}: nms_kernel 41"),
        "task.post_process.keep_k_centers": tfvision(
            f"200: {DEEPLAB2_EVALUATOR}'s keep_k_centers 400 exceeds COCO's label divisor "
            f"256, and tfvision's post-processor needs every instance id below it"),
        **_eval_batch("64 divides 8 to 64 TPU cores (5000 images: padded); the paper "
                      "reports single-image timing only"),
    }
  return {
      "trainer.train_steps": paper("swidernet.md Sec. 4: 60K iterations on Cityscapes"),
      "task.model.input_size": paper("swidernet.md Sec. 4: crop 1025 x 2049 on Cityscapes"),
      "task.model.num_classes": paper("swidernet.md Sec. 4: Cityscapes' 19 classes (8 "
                                      "things, 11 stuff)"),
      TRAIN + "global_batch_size": paper("swidernet.md Sec. 4: batch 32 on Cityscapes"),
      TRAIN + "parser.aug_scale_min": code(f"{DEEPLAB2_CITYSCAPES}: min_scale_factor 0.5"),
      TRAIN + "parser.aug_scale_max": code(f"{DEEPLAB2_CITYSCAPES}: max_scale_factor 2.0"),
      "task.post_process.stuff_area_limit": paper(
          "swidernet.md Sec. 4: stuff below 2048 pixels -> void on Cityscapes"),
      "task.post_process.nms_kernel": code(f"{DEEPLAB2_CITYSCAPES}: nms_kernel 13"),
      "task.post_process.keep_k_centers": code(
          f"{DEEPLAB2_EVALUATOR}: keep_k_centers 400 (no config overrides it)"),
      **_eval_batch("32 divides 8, 16 and 32 TPU cores (swidernet.md Sec. 4 trains on 32; "
                    "500 images: padded)"),
  }


def _panoptic_card(dataset, scales=None, deeplab2=False):
  card = {**PANOPTIC_COMMON, **_panoptic_dataset(dataset)}
  if scales is None:
    card["task.model.separable_conv"] = paper(
        "swidernet.md Table 3: the strong regime's baseline has standard convolutions "
        "in ASPP, decoders and heads ('Sep-Conv' is a separate row)")
  if deeplab2:
    card["task.model.separable_conv"] = code(
        f"{DEEPLAB2_CITYSCAPES}: standard ASPP, depthwise-separable fusion and heads "
        f"(deeplab2's decoder default); tfvision separable_conv='decoder'")
  if scales is not None:
    card.update({
        "task.model.backbone.swidernet.w2": paper(
            f"swidernet.md Table 5: SWideRNet-{scales}"),
        "task.model.backbone.swidernet.w1": paper(
            f"swidernet.md Table 5: SWideRNet-{scales}"),
        "task.model.separable_conv": paper(
            "swidernet.md Sec. 4.1: separable convolutions in ASPP and decoders for the "
            "fast regime"),
    })
    if scales[2] != 1.0:
      card["task.model.backbone.swidernet.l"] = paper(
          f"swidernet.md Table 5: SWideRNet-{scales}")
  if deeplab2:
    card.update({
        "task.model.backbone.swidernet.use_se": code(
            f"{DEEPLAB2_DOC}: SWideRNet-SAC 'only employs the SAC without the SE modules'"),
        "task.model.backbone.swidernet.drop_path_schedule": code(
            f"{DEEPLAB2_CITYSCAPES}: drop_path_schedule 'linear', drop_path_keep_prob 0.8 "
            f"(the config of deeplab2's released checkpoint)"),
        TRAIN + "parser.autoaugment_policy": code(
            f"{DEEPLAB2_CITYSCAPES}: 'simple_classification_policy_magnitude_scale_0.2', "
            f"which is swidernet.md Table 2"),
    })
  return card


# --- DeepLabV3 + ResNeSt --------------------------------------------------------------

def _deeplabv3_card(dataset):
  script = GLUON_ADE if dataset == "ade20k" else GLUON_CITYSCAPES
  card = {
      **_runtime(),
      "task.model.backbone.resnest.output_stride": paper(
          "resnest.md Sec. 7.3: dilated network, stride 8"),
      OPT + "type": code(f"{GLUON_TRAIN}: --optimizer sgd"),
      OPT + "sgd.momentum": code(f"{GLUON_TRAIN}: --momentum 0.9"),
      LR + "type": paper("resnest.md Sec. 7.3: polynomial-like learning rate schedule"),
      LR + "polynomial.power": code(f"{GLUON_TRAIN}: LRScheduler('poly', power=0.9)"),
      LR + "polynomial.end_learning_rate": code(f"{GLUON_TRAIN}: poly decays to 0"),
      LR + "polynomial.decay_steps": code(f"{GLUON_TRAIN}: over all iterations"),
      LR + "polynomial.initial_learning_rate": code(
          f"{script}: --lr 0.01 (the backbone's; the head trains at 0.1, resnest.md "
          f"Sec. 7.3's 'initial learning rate = 0.1')"),
      "task.head_learning_rate_multiplier": code(
          f"{GLUON_DEEPLAB}: lr_mult 10 on the head (and the auxiliary head)"),
      TRAIN + "global_batch_size": code(f"{GLUON_TRAIN}: --batch-size 16 (8 GPUs)"),
      TRAIN + "parser.aug_scale_min": code(
          f"dmlc/gluon-cv gluoncv/data/segbase.py _sync_transform: long side random in "
          f"[0.5, 2.0] x base_size (here relative to the image: a deviation)"),
      TRAIN + "parser.aug_scale_max": code(
          "dmlc/gluon-cv gluoncv/data/segbase.py _sync_transform: [0.5, 2.0] x base_size"),
      "task.model.backbone.resnest.dropblock_rate": code(
          f"{GLUON_RESNEST}: resnest101(dropblock_prob=0.1); {GLUON_TRAIN} runs no "
          f"DropBlock schedule, so 0.1 throughout fine-tuning"),
      "task.model.norm_activation.use_sync_bn": paper(
          f"resnest.md Sec. 7.3: synchronized BN ({script}: --syncbn)"),
      "task.losses.l2_weight_decay": code(
          f"{GLUON_TRAIN}: --weight-decay 1e-4 (on every parameter, the scripts do not pass "
          f"--no-wd; tfvision's L2 is on the kernels)"),
  }
  if dataset == "ade20k":
    card.update({
        "trainer.train_steps": paper("resnest.md Sec. 7.3: 120 epochs on ADE20K"),
        **_eval_batch("GluonCV --test-batch-size 16; 2000 images fill whole batches"),
    })
  else:
    card.update({
        "trainer.train_steps": code(f"{GLUON_CITYSCAPES}: --epochs 240"),
        "task.model.input_size": code(f"{GLUON_CITYSCAPES}: --crop-size 768"),
        "task.model.num_classes": paper("resnest.md Sec. 7.3: 19 Cityscapes classes"),
        **_eval_batch("GluonCV --test-batch-size 16; 500 images: padded"),
    })
  return card


# --- The CPU-sized demos on the built-in tfvision_shapes dataset --------------------------

DEMO = "tfvision/demo.py lists the demo's deviations from the paper recipe"


def _demo(keys):
  return {key: tfvision(f"laptop-sized demo on tfvision_shapes ({DEMO})") for key in keys}


def _panoptic_demo_keys():
  return [
      "runtime.num_gpus", "task.model.input_size", "task.model.num_classes",
      "task.model.separable_conv", "task.model.semantic_aspp_filters",
      "task.model.semantic_decoder_filters", "task.model.semantic_low_level_filters",
      "task.model.semantic_head_filters", "task.model.instance_aspp_filters",
      "task.model.instance_decoder_filters", "task.model.instance_low_level_filters",
      "task.model.center_head_filters", "task.model.offset_head_filters",
      "task.model.backbone.swidernet.w1", "task.model.backbone.swidernet.w2",
      "task.model.backbone.swidernet.l", "task.model.backbone.swidernet.output_stride",
      "task.model.backbone.swidernet.drop_path_rate",
      "task.labels.thing_classes", "task.labels.ignore_label", "task.labels.label_divisor",
      "task.post_process.nms_kernel", "task.post_process.stuff_area_limit",
      "task.losses.top_k_percent", TRAIN + "global_batch_size", TRAIN + "seed",
      TRAIN + "shuffle_buffer_size", TRAIN + "parser.sigma",
      TRAIN + "parser.small_instance_area", VAL + "global_batch_size",
      VAL + "parser.sigma", VAL + "parser.small_instance_area", "trainer.train_steps",
      OPT + "type", LR + "type", LR + "polynomial.initial_learning_rate",
      LR + "polynomial.decay_steps", LR + "polynomial.power",
      LR + "polynomial.end_learning_rate"]


CARDS = {}
for _depth, (_batch, _size) in classification_cfg.RESNEST_SETTINGS.items():
  CARDS[f"tfvision_resnest{_depth}_imagenet"] = _resnest_card(_depth, _size)
CARDS["tfvision_botnet50_imagenet"] = _botnet_card(s1=False)
CARDS["tfvision_botnet_s1_50_imagenet"] = _botnet_card(s1=True)
for _name in classification_cfg.AXIAL_MODELS:
  CARDS[f"tfvision_{_name}_imagenet"] = _axial_card(_name)
CARDS["tfvision_swidernet_imagenet"] = SWIDERNET_IMAGENET
for _name in classification_cfg.PALE_MODELS:
  CARDS[f"tfvision_{_name}_imagenet"] = _pale_card(
      _name, get_preset(_name).defaults["drop_path_rate"])
for _dataset in panoptic_cfg.DATASET_EXPERIMENTS:
  CARDS[f"tfvision_panoptic_deeplab_swidernet_{_dataset}"] = _panoptic_card(_dataset)
  for _scales in panoptic_cfg.FAST_REGIME:
    CARDS[panoptic_cfg.fast_experiment_name(_scales, _dataset)] = _panoptic_card(
        _dataset, _scales)
CARDS["tfvision_panoptic_deeplab_swidernet_sac_cityscapes_deeplab2"] = _panoptic_card(
    "cityscapes", deeplab2=True)
CARDS["tfvision_deeplabv3_resnest101_ade20k"] = _deeplabv3_card("ade20k")
CARDS["tfvision_deeplabv3_resnest101_cityscapes"] = _deeplabv3_card("cityscapes")
CARDS["tfvision_panoptic_deeplab_swidernet_shapes"] = _demo(_panoptic_demo_keys())
CARDS["tfvision_deeplabv3_swidernet_shapes"] = _demo([
    "runtime.num_gpus", "task.model.input_size", "task.model.num_classes",
    "task.model.decoder.v3.aspp_filters", "task.model.decoder.v3.head_filters",
    "task.model.backbone.type", "task.model.backbone.swidernet.w1",
    "task.model.backbone.swidernet.w2", "task.model.backbone.swidernet.l",
    "task.model.backbone.swidernet.output_stride",
    "task.model.backbone.swidernet.drop_path_rate",
    "task.model.norm_activation.use_sync_bn", "task.model.norm_activation.norm_momentum",
    "task.model.norm_activation.norm_epsilon", "task.losses.l2_weight_decay",
    TRAIN + "global_batch_size", VAL + "global_batch_size", "trainer.train_steps",
    OPT + "type", LR + "type", LR + "polynomial.initial_learning_rate",
    LR + "polynomial.decay_steps", LR + "polynomial.power",
    LR + "polynomial.end_learning_rate"])
CARDS["tfvision_shapes_classification"] = _demo([
    "runtime.num_gpus", "task.model.input_size", "task.model.num_classes",
    "task.model.backbone.type", "task.model.backbone.swidernet.w1",
    "task.model.backbone.swidernet.w2", "task.model.backbone.swidernet.l",
    "task.model.backbone.swidernet.drop_path_rate",
    "task.losses.label_smoothing", "task.evaluation.top_k", TRAIN + "aug_crop",
    VAL + "aug_crop", TRAIN + "shuffle_buffer_size", TRAIN + "global_batch_size",
    VAL + "global_batch_size", "trainer.train_steps", OPT + "type", LR + "type",
    LR + "cosine.initial_learning_rate", LR + "cosine.decay_steps", WARMUP + "type",
    WARMUP + "linear.warmup_steps"])
