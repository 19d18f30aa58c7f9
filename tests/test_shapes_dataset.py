"""The built-in `tfvision_shapes` TFDS dataset."""
import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfvision.data import shapes


def test_generation_is_deterministic_and_labels_are_consistent():
  a = shapes.generate_example(7, 64)
  b = shapes.generate_example(7, 64)
  np.testing.assert_array_equal(a["image"], b["image"])
  assert not np.array_equal(a["image"], shapes.generate_example(8, 64)["image"])
  for seed in range(20):
    ex = shapes.generate_example(seed, 64)
    semantic, instance = ex["semantic"][..., 0], ex["instance"][..., 0]
    things = np.isin(semantic, shapes.THING_IDS)
    # Thing pixels carry an instance id, stuff and void pixels none.
    assert (instance[things] > 0).all() and (instance[~things] == 0).all()
    ids = sorted(set(np.unique(instance)) - {0})
    assert ids == list(range(1, len(ex["objects"]["label"]) + 1))
    for index, label in enumerate(ex["objects"]["label"]):
      mask = instance == index + 1
      # One class per instance, matching its object entry, and the recorded area.
      assert set(np.unique(semantic[mask])) == {shapes.THING_IDS[label]}
      assert ex["objects"]["area"][index] == mask.sum()
    assert set(np.unique(semantic)) <= set(range(shapes.NUM_CLASSES)) | {shapes.IGNORE_LABEL}
    if ex["objects"]["area"]:
      largest = int(np.argmax(ex["objects"]["area"]))
      assert ex["label"] == ex["objects"]["label"][largest]


def test_bad_size():
  with pytest.raises(ValueError, match="size"):
    shapes.generate_example(0, 16)


def test_tfds_prepare_and_load_roundtrip(tmp_path):
  builder = tfds.builder("tfvision_shapes/s64", data_dir=str(tmp_path))
  builder.download_and_prepare()
  assert builder.info.splits["train"].num_examples == 1024
  assert builder.info.splits["validation"].num_examples == 128
  ds = tfds.load("tfvision_shapes/s64", split="validation", data_dir=str(tmp_path),
                 shuffle_files=False)
  seen = 0
  for example in ds.take(3):
    seed = int(example["image/id"])
    expected = shapes.generate_example(seed, 64)
    # PNG encoding is lossless: decoded tensors equal the generated arrays.
    np.testing.assert_array_equal(example["image"].numpy(), expected["image"])
    np.testing.assert_array_equal(example["semantic"].numpy(), expected["semantic"])
    np.testing.assert_array_equal(example["instance"].numpy(), expected["instance"])
    assert int(example["label"]) == expected["label"]
    seen += 1
  assert seen == 3
