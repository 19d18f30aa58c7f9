#!/usr/bin/env python3
"""Writes the deeplab2 checkpoint fixtures of tests/test_weights_deeplab2.py.

    TF_USE_LEGACY_KERAS=1 .venv/bin/python scripts/make_deeplab2_fixtures.py \\
        --deeplab2 /path/to/deeplab2 [--out tests/data/weights]

`--deeplab2` is a deeplab2 source checkout (the folder named `deeplab2`; its protos are
compiled here when grpcio-tools is installed, as in benchmarks/peers.py). deeplab2's own
code builds each model from its released Cityscapes config with narrow widths, fills
every variable with random values (batch-norm statistics and zero-initialised gammas
included, so that no tensor can be mapped to the wrong place unnoticed), runs it on a
fixed input and saves the checkpoint as deeplab2's trainer does (`global_step`, the
optimizer with its slots, then `model.checkpoint_items`), next to the outputs:

  panoptic_swidernet_sac_se/  SWideRNet with SAC and SE, Panoptic-DeepLab heads
                              (configs/cityscapes/panoptic_deeplab/swidernet_sac_1_1_1_os16)
  axial_max_deeplab_s/        MaX-DeepLab-S backbone, Axial-DeepLab heads
                              (configs/cityscapes/axial_deeplab/max_deeplab_s_backbone_os16)
  imagenet_swidernet_sac/     SWideRNet-SAC (no SE, as deeplab2 releases it) at output
                              stride 32, the encoder alone under the Model Garden root
                              `backbone/_encoder/` (deeplab2's ImageNet checkpoints),
                              with its res2 / res3 / res5 features
Each folder holds the checkpoint (`ckpt-*`), `outputs.npz` (the input in [0, 255] and
the outputs) and `fixture.json` (what was built). The axial fixture is also packed as
`axial_max_deeplab_s.tar.gz`, the form deeplab2 releases its checkpoints in.
"""
import argparse
import json
import os
import shutil
import tarfile

import numpy as np

from deeplab2_source import cityscapes_config, import_deeplab2, randomise

SIZE = (65, 97)        # odd, non-square: corners-aligned resizing and both axes differ
WIDTH = 1 / 32
DECODER = dict(decoder_channels=16, aspp_channels=16, low_level=(8, 4),
               instance_low_level=(4, 4), instance_decoder=8, semantic_head=16,
               instance_head=8)


def _config(deeplab2_path, name, se):
  config = cityscapes_config(deeplab2_path, name)
  model = config.model_options
  model.backbone.stem_width_multiplier = WIDTH
  model.backbone.backbone_width_multiplier = WIDTH
  if se:
    model.backbone.use_squeeze_and_excite = True
  model.decoder.decoder_channels = DECODER["decoder_channels"]
  model.decoder.aspp_channels = DECODER["aspp_channels"]
  pd = model.panoptic_deeplab
  for low, channels in zip(pd.low_level, DECODER["low_level"]):
    low.channels_project = channels
  for low, channels in zip(pd.instance.low_level_override, DECODER["instance_low_level"]):
    low.channels_project = channels
  pd.instance.instance_decoder_override.decoder_channels = DECODER["instance_decoder"]
  pd.instance.instance_decoder_override.aspp_channels = DECODER["instance_decoder"]
  pd.semantic_head.head_channels = DECODER["semantic_head"]
  pd.instance.center_head.head_channels = DECODER["instance_head"]
  pd.instance.regression_head.head_channels = DECODER["instance_head"]
  config.train_dataset_options.crop_size[:] = list(SIZE)
  return config


def _save_trainer_checkpoint(items, directory, optimizer=True):
  """Saves as deeplab2's trainer: global_step, an optimizer with slots, the items."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if not optimizer:
    checkpoint = tf.train.Checkpoint(global_step=tf.Variable(1000, dtype=tf.int64), **items)
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1).save(1000)
  variables = [v for item in items.values() for v in item.trainable_variables]
  # The optimizer generation deeplab2's releases were trained with: slots are saved
  # beside each variable (`<variable>/.OPTIMIZER_SLOT/optimizer/momentum/...`).
  optimizer = tf.keras.optimizers.legacy.SGD(learning_rate=0.1, momentum=0.9)
  # A zero step creates the momentum slots without moving any weight.
  optimizer.apply_gradients([(tf.zeros_like(v), v) for v in variables])
  checkpoint = tf.train.Checkpoint(global_step=tf.Variable(60000, dtype=tf.int64),
                                   optimizer=optimizer, **items)
  return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1).save(60000)


def _panoptic_fixture(deeplab2_path, name, config_name, se, out, rng):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from deeplab2.data import dataset  # pylint: disable=import-outside-toplevel
  from deeplab2.model import deeplab  # pylint: disable=import-outside-toplevel
  config = _config(deeplab2_path, config_name, se)
  model = deeplab.DeepLab(config, dataset.CITYSCAPES_PANOPTIC_INFORMATION)
  image = rng.uniform(0, 255, (1, *SIZE, 3)).astype(np.float32)
  model(tf.constant(image), training=False)
  randomise(model.variables, rng)
  outputs = model(tf.constant(image), training=False)
  directory = os.path.join(out, name)
  shutil.rmtree(directory, ignore_errors=True)
  _save_trainer_checkpoint(model.checkpoint_items, directory)
  np.savez(os.path.join(directory, "outputs.npz"), image=image,
           semantic_logits=outputs["semantic_logits"].numpy(),
           center_heatmap=outputs["center_heatmap"].numpy()[..., None],
           offsets=outputs["offset_map"].numpy())
  with open(os.path.join(directory, "fixture.json"), "w") as f:
    json.dump(dict(deeplab2_config=config_name, width_multiplier=WIDTH,
                   use_squeeze_and_excite=se, size=SIZE, decoder=DECODER,
                   variables=len(model.variables)), f, indent=1)
  return model, image


def _imagenet_fixture(image, out, rng):
  """deeplab2's ImageNet form: SWideRNet-SAC (no SE, as released) at output stride 32,
  the encoder alone under the Model Garden trainer's root `backbone/_encoder/`."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from deeplab2.model.encoder import axial_resnet_instances  # pylint: disable=import-outside-toplevel
  encoder = axial_resnet_instances.get_model(
      "swidernet", output_stride=32, stem_width_multiplier=WIDTH, width_multiplier=WIDTH,
      backbone_layer_multiplier=1.0,
      block_group_config={"use_squeeze_and_excite": False, "use_sac_beyond_stride": 32},
      bn_layer=tf.keras.layers.BatchNormalization)
  normalised = tf.constant(image) / 127.5 - 1.0
  encoder(normalised, training=False)
  randomise(encoder.variables, rng)
  features = encoder(normalised, training=False)
  directory = os.path.join(out, "imagenet_swidernet_sac")
  shutil.rmtree(directory, ignore_errors=True)
  wrapper = tf.Module()
  wrapper._encoder = encoder  # pylint: disable=protected-access
  _save_trainer_checkpoint({"backbone": wrapper}, directory, optimizer=False)
  np.savez(os.path.join(directory, "outputs.npz"), image=image,
           **{key: features[key].numpy() for key in ("res2", "res3", "res5")})
  with open(os.path.join(directory, "fixture.json"), "w") as f:
    json.dump(dict(deeplab2_model="swidernet", output_stride=32, width_multiplier=WIDTH,
                   use_squeeze_and_excite=False, use_sac_beyond_stride=32,
                   root="backbone/_encoder/"), f, indent=1)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--deeplab2", required=True)
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..",
                                                    "tests", "data", "weights"))
  args = parser.parse_args(argv)
  if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise SystemExit("run with TF_USE_LEGACY_KERAS=1 (deeplab2 builds on tf.keras)")
  import_deeplab2(args.deeplab2)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.keras.utils.set_random_seed(0)
  os.makedirs(args.out, exist_ok=True)
  rng = np.random.RandomState(0)
  _, image = _panoptic_fixture(args.deeplab2, "panoptic_swidernet_sac_se",
                               "panoptic_deeplab/swidernet_sac_1_1_1_os16", True,
                               args.out, rng)
  _imagenet_fixture(image, args.out, rng)
  _panoptic_fixture(args.deeplab2, "axial_max_deeplab_s",
                    "axial_deeplab/max_deeplab_s_backbone_os16", False, args.out, rng)
  with tarfile.open(os.path.join(args.out, "axial_max_deeplab_s.tar.gz"), "w:gz") as tar:
    tar.add(os.path.join(args.out, "axial_max_deeplab_s"), arcname="axial_max_deeplab_s")
  shutil.rmtree(os.path.join(args.out, "axial_max_deeplab_s"))


if __name__ == "__main__":
  main()
