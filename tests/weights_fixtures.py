"""The tfvision models of the committed weight fixtures (tests/data/weights).

`scripts/make_deeplab2_fixtures.py` wrote the deeplab2 checkpoints with deeplab2's own
code from its released Cityscapes configs at width 1/32, with narrow decoders; these
are the same models in tfvision's terms.
"""
import os
import tarfile

import numpy as np

from tfvision.models import AxialResNet, PanopticDeepLab, SWideRNet

DATA = os.path.join(os.path.dirname(__file__), "data", "weights")
PANOPTIC = os.path.join(DATA, "panoptic_swidernet_sac_se")
IMAGENET = os.path.join(DATA, "imagenet_swidernet_sac")
AXIAL_TAR = os.path.join(DATA, "axial_max_deeplab_s.tar.gz")
WIDTH = 1 / 32
# The fixture's narrow heads (DECODER in the generating script), in tfvision's arguments.
HEADS = dict(num_classes=19, separable_conv="decoder", semantic_aspp_filters=16,
             semantic_decoder_filters=16, semantic_low_level_filters=[8, 4],
             semantic_head_filters=16, instance_aspp_filters=8, instance_decoder_filters=8,
             instance_low_level_filters=[4, 4], center_head_filters=8,
             offset_head_filters=8)


def swidernet_sac_se_backbone(**kwargs):
  """deeplab2 `swidernet` (1/32, 1/32, 1) with SE and SAC beyond stride 32, OS 16."""
  return SWideRNet(w1=WIDTH, w2=WIDTH, l=1.0, use_se=True, sac_beyond_stride=32,
                   output_stride=16, include_top=False, **kwargs)


def swidernet_sac_backbone(**kwargs):
  """deeplab2 `swidernet` (1/32, 1/32, 1) as released: SAC beyond stride 32, no SE."""
  return SWideRNet(w1=WIDTH, w2=WIDTH, l=1.0, use_se=False, sac_beyond_stride=32,
                   include_top=False, **kwargs)


def panoptic_swidernet_sac_se():
  return PanopticDeepLab(backbone=swidernet_sac_se_backbone(), **HEADS)


def max_deeplab_s_backbone(**kwargs):
  """deeplab2 `max_deeplab_s_backbone` at width 1/32, output stride 16."""
  return AxialResNet(width_multiplier=WIDTH, stem_width_multiplier=WIDTH, stem="inception",
                     stem_max_pool=False, use_axial_beyond_stride=16,
                     attention_bottleneck_expansion=2, output_stride=16, include_top=False,
                     **kwargs)


def axial_max_deeplab_s():
  return PanopticDeepLab(backbone=max_deeplab_s_backbone(), aspp_projection_only=True,
                         **HEADS)


def outputs(path):
  """The reference outputs stored beside a fixture (in a directory or a .tar.gz)."""
  if path.endswith(".tar.gz"):
    name = os.path.basename(path)[:-len(".tar.gz")]
    with tarfile.open(path) as archive:
      with archive.extractfile(f"{name}/outputs.npz") as f:
        return dict(np.load(f))
  return dict(np.load(os.path.join(path, "outputs.npz")))


def relative_error(actual, expected):
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))
