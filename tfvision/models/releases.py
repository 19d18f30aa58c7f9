"""The released checkpoints of deeplab2 (google-research/deeplab2), as `Release`s.

Numbers are deeplab2's model zoo (`g3doc/projects/panoptic_deeplab.md`,
`axial_deeplab.md`; Cityscapes val, single scale, 1025 x 2049): `pq` and `miou` by the
official Cityscapes script, `pq_deeplab2` / `miou_deeplab2` / `ap_mask` by deeplab2's own
pipeline. deeplab2 publishes no ImageNet accuracy for its backbone checkpoints
(`g3doc/projects/imagenet_pretrained_checkpoints.md` lists the files only).

What the presets that load them follow (found while proving parity with deeplab2):
- SWideRNet-SAC checkpoints have no SE (`use_squeeze_and_excite` unset in deeplab2's
  configs); WR-41 has neither SE nor SAC.
- The Cityscapes heads use standard convs in the ASPP and depthwise-separable 5 x 5
  convs in the fusion and heads (`separable_conv="decoder"`); the Axial-DeepLab ones
  reduce the ASPP to its 1 x 1 projection.
- deeplab2's Axial-ResNets have no stem max-pool (the first block of the next stage is
  strided instead): `stem_max_pool=False`.
- SE gate: deeplab2 multiplies relu6(x + 3) by 0.16667, tfvision by 1 / 6 (the paper's
  and MobileNetV3's hard sigmoid). No released checkpoint has SE, and on the SAC + SE
  fixture the two agree to 7e-7 relative, so tfvision keeps the exact 1 / 6.
- ASPP image pooling: deeplab2 averages over a (crop / output stride) window and tiles
  it on larger inputs; tfvision averages the whole map. At Cityscapes' 1025 x 2049 the
  two are the same; at another size tfvision keeps the image-level pooling of the
  papers (deeplab2's tiled pooling is a local average there).
"""
from tfvision.models.registry import Release

DEEPLAB2_CHECKPOINTS = "https://storage.googleapis.com/gresearch/tf-deeplab/checkpoint/"
_IMAGENET_PAGE = "deeplab2 g3doc/projects/imagenet_pretrained_checkpoints.md"
CITYSCAPES_SIZE = (1025, 2049)


def deeplab2_imagenet(stem: str, **arguments) -> Release:
  """An ImageNet-1K backbone of deeplab2 (strong training strategy)."""
  return Release(
      url=f"{DEEPLAB2_CHECKPOINTS}{stem}_imagenet1k_strong_training_strategy.tar.gz",
      converter="deeplab2", dataset="imagenet2012", labels="",
      input_size=(224, 224),
      crop="the encoder only: loaded as a backbone, anything else in the file (a "
           "classifier head) is dropped and listed in the conversion report",
      reference=_IMAGENET_PAGE + " (no accuracy published)",
      arguments={"include_top": False, **arguments},
      notes="the encoder of deeplab2's ImageNet run (root backbone/_encoder/); fine-tune "
            "it with init_checkpoint_modules: backbone")


def deeplab2_cityscapes(stem: str, meta: str, pq: float, miou: float, pq_deeplab2: float,
                        miou_deeplab2: float, ap_mask: float) -> Release:
  """A Cityscapes Panoptic-DeepLab / Axial-DeepLab of deeplab2 (train_fine)."""
  page = "panoptic_deeplab.md" if meta == "panoptic_deeplab" else "axial_deeplab.md"
  return Release(
      url=f"{DEEPLAB2_CHECKPOINTS}{stem}_os16_{meta}_cityscapes_trainfine.tar.gz",
      converter="deeplab2", dataset="cityscapes", labels="cityscapes19",
      input_size=CITYSCAPES_SIZE, crop="full image (1025 x 2049), single scale",
      metrics={"pq": pq, "miou": miou, "pq_deeplab2": pq_deeplab2,
               "miou_deeplab2": miou_deeplab2, "ap_mask": ap_mask},
      reference=f"deeplab2 g3doc/projects/{page}, configs/cityscapes/{meta}/{stem}_os16.textproto")
