#!/usr/bin/env python3
"""Writes the MaX-DeepLab-L backbone fixture of tests/test_max_deeplab_backbone.py.

    TF_USE_LEGACY_KERAS=1 .venv/bin/python scripts/make_max_deeplab_l_fixture.py \\
        --deeplab2 /path/to/deeplab2 [--out tests/data/weights/max_deeplab_l_backbone]

`--deeplab2` is a deeplab2 source checkout (the folder named `deeplab2`; its protos are
compiled here when missing, as in scripts/make_deeplab2_fixtures.py). deeplab2's own code
(`axial_resnet_instances.get_model("max_deeplab_l_backbone", ...)`) builds its MaX-DeepLab-L
backbone, stacked decoder included, at width 1/32 (stem and body), layer multiplier 1/3
(blocks [3, 1, 2, 1, 1]: a strided basic block then an axial one at stride 16, so every
kind of block is there, and the checkpoint stays under 1 MB) and output stride 16
(deeplab2's default, the stride its ImageNet checkpoint initialises the Cityscapes model
at): tfvision's `max_deeplab_l_backbone.tiny`. Every variable is filled with random
values (batch-norm statistics and zero-initialised gammas too, so that no tensor can be
mapped to the wrong place unnoticed); it runs on a fixed [0, 255] input of 65 x 97
normalised to x / 127.5 - 1, as deeplab2 does before its encoder. The folder holds:

  ckpt-1.*      `tf.train.Checkpoint(encoder=encoder)`: deeplab2's own root (`encoder/`)
  outputs.npz   the input in [0, 255], res2 .. res5 (the encoder's stages) and
                backbone_output (the stacked decoder's activated output)
  fixture.json  what was built
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from deeplab2_source import import_deeplab2, randomise  # noqa: E402

SIZE = (65, 97)        # odd, non-square: corner-aligned resizing, both axes differ
WIDTH = 1 / 32
# deeplab2 scale_int_list: [3] + [1, 2, 1, 1] blocks, every kind of block still present.
LAYERS = 1 / 3
OUTPUT_STRIDE = 16
ENDPOINTS = ("res2", "res3", "res4", "res5", "backbone_output")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--deeplab2", required=True)
  parser.add_argument("--out", default=os.path.join(
      os.path.dirname(__file__), "..", "tests", "data", "weights", "max_deeplab_l_backbone"))
  args = parser.parse_args(argv)
  if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise SystemExit("run with TF_USE_LEGACY_KERAS=1 (deeplab2 builds on tf.keras)")
  import_deeplab2(args.deeplab2)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from deeplab2.model.encoder import axial_resnet_instances  # pylint: disable=import-outside-toplevel
  tf.keras.utils.set_random_seed(0)
  rng = np.random.RandomState(0)
  encoder = axial_resnet_instances.get_model(
      "max_deeplab_l_backbone", width_multiplier=WIDTH, stem_width_multiplier=WIDTH,
      output_stride=OUTPUT_STRIDE, backbone_layer_multiplier=LAYERS,
      bn_layer=tf.keras.layers.BatchNormalization)
  image = rng.uniform(0, 255, (1, *SIZE, 3)).astype(np.float32)
  normalised = tf.constant(image) / 127.5 - 1.0
  encoder(normalised, training=False)
  randomise(encoder.variables, rng)
  features = encoder(normalised, training=False)
  shutil.rmtree(args.out, ignore_errors=True)
  os.makedirs(args.out)
  checkpoint = tf.train.Checkpoint(encoder=encoder)
  tf.train.CheckpointManager(checkpoint, args.out, max_to_keep=1).save(1)
  np.savez(os.path.join(args.out, "outputs.npz"), image=image,
           **{key: features[key].numpy() for key in ENDPOINTS})
  trainable = int(sum(np.prod(v.shape) for v in encoder.trainable_variables))
  with open(os.path.join(args.out, "fixture.json"), "w") as f:
    json.dump(dict(deeplab2_model="max_deeplab_l_backbone", width_multiplier=WIDTH,
                   stem_width_multiplier=WIDTH, backbone_layer_multiplier=LAYERS,
                   output_stride=OUTPUT_STRIDE, size=SIZE, root="encoder/",
                   variables=len(encoder.variables), trainable_parameters=trainable),
              f, indent=1)


if __name__ == "__main__":
  main()
