"""SavedModel export: signatures, parity with Keras, image decoding, dense outputs, errors."""
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from PIL import Image

from tests import export_models
from tfvision import export
from tfvision.export import serving, verify
from tfvision.models.panoptic_inference import PanopticInference, multi_scale_predictions
from tfvision.models import get_preset

NAME = "swidernet_0.25_0.25_0.75"
SIZE = 64


def _encode(array, fmt="PNG", mode=None):
  buffer = io.BytesIO()
  Image.fromarray(array, mode).save(buffer, fmt)
  return buffer.getvalue()


@pytest.fixture(scope="module")
def images():
  return export.load_images("shapes", 6, (SIZE, SIZE))


@pytest.fixture(scope="module")
def classifier():
  tf_keras.utils.set_random_seed(7)
  return get_preset(NAME).build_tiny(num_classes=3)


@pytest.fixture(scope="module")
def classifier_export(classifier, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("export") / "classifier")
  export.export_saved_model(classifier, path, input_size=SIZE)
  return path, tf.saved_model.load(path)


@pytest.fixture(scope="module")
def panoptic_export(tmp_path_factory):
  model = export_models.tiny_panoptic()
  path = str(tmp_path_factory.mktemp("export") / "panoptic")
  export.export_saved_model(model, path, input_size=SIZE, dataset="shapes",
                            signatures=["image_bytes", "image_tensor"])
  return model, path, tf.saved_model.load(path)


def test_classification_signatures_equal_keras(classifier, classifier_export, images):
  path, loaded = classifier_export
  assert set(loaded.signatures) == {"image_tensor", "image_bytes", "tf_example",
                                    "serving_default"}
  for signature in export.SIGNATURES:
    report = export.verify_saved_model(path, classifier, images, signature=signature,
                                       loaded=loaded)
    assert report.failures(max_abs_error=1e-5, min_agreement=1.0) == [], report.format()
    assert report.max_abs_error["logits"] <= 1e-5
  # And directly against the plain Keras call (no serving code on the Keras side).
  outputs = loaded.signatures["serving_default"](inputs=tf.constant(images))
  keras_logits = classifier(images.astype("float32"), training=False).numpy()
  np.testing.assert_allclose(outputs["logits"].numpy(), keras_logits, atol=1e-5, rtol=0)
  np.testing.assert_allclose(outputs["probs"].numpy().sum(-1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(outputs["top_k_classes"].numpy()[:, 0],
                                keras_logits.argmax(-1))
  assert outputs["top_k_classes"].shape == (len(images), 3)  # k clipped to num_classes
  metadata = export.read_metadata(path)
  assert metadata["task"] == "classification" and metadata["input_size"] == [SIZE, SIZE]
  assert metadata["signatures"] == list(export.SIGNATURES)


def test_image_bytes_rejects_corrupt_jpeg_and_keeps_serving(classifier_export, images):
  _, loaded = classifier_export
  serve = loaded.signatures["image_bytes"]
  jpeg = _encode(images[0], "JPEG")
  good = serve(inputs=tf.constant([jpeg]))["logits"].numpy()
  corrupt = [jpeg[:len(jpeg) // 2],                       # truncated
             jpeg[:20] + b"\x00" * 64 + jpeg[84:],        # damaged header tables
             b"definitely not an image", b""]
  for item in corrupt:
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="JPEG|Unknown image file format|Input is empty"):
      serve(inputs=tf.constant([item]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="JPEG"):
    serve(inputs=tf.constant([jpeg, corrupt[0]]))  # one bad image fails its request only
  again = serve(inputs=tf.constant([jpeg]))["logits"].numpy()
  np.testing.assert_array_equal(again, good)
  assert np.all(np.isfinite(again))


def test_image_bytes_png_grayscale_rgba_and_mixed_sizes(classifier, classifier_export):
  path, loaded = classifier_export
  spec = serving.ServingSpec("classification", (SIZE, SIZE), num_classes=3)
  computation = serving.ServingComputation(lambda x: classifier(x, training=False), spec)
  rng = np.random.RandomState(3)
  rgb = export.load_images("shapes", 1, (40, 56))[0]
  gray = rgb.mean(-1).astype("uint8")
  rgba = np.concatenate([rgb, rng.randint(0, 256, (40, 56, 1)).astype("uint8")], -1)
  cases = [(_encode(rgb), rgb), (_encode(gray, mode="L"), np.repeat(gray[..., None], 3, -1)),
           (_encode(rgba, mode="RGBA"), rgb)]
  for encoded, as_rgb in cases:
    got = loaded.signatures["image_bytes"](inputs=tf.constant([encoded]))["logits"].numpy()
    want = computation.from_image_tensor(tf.constant(as_rgb[None]))["logits"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  # Grayscale JPEG decodes to three equal channels too.
  gray_jpeg = _encode(gray, "JPEG", mode="L")
  decoded = serving.decode_image(tf.constant(gray_jpeg)).numpy()
  assert decoded.shape == (40, 56, 3)
  np.testing.assert_array_equal(decoded[..., 0], decoded[..., 2])
  # Images of different sizes in one request: each is resized to the export size.
  other = export.load_images("shapes", 1, (SIZE + 16, SIZE))[0]
  batch = loaded.signatures["image_bytes"](
      inputs=tf.constant([_encode(rgb), _encode(other)]))["logits"].numpy()
  single = loaded.signatures["image_bytes"](inputs=tf.constant([_encode(other)]))["logits"]
  np.testing.assert_allclose(batch[1], single.numpy()[0], atol=1e-5, rtol=0)


def test_semantic_export_at_native_size_restores_size(tmp_path):
  model = export_models.tiny_semantic()
  path = str(tmp_path / "semantic")
  export.export_saved_model(model, path, signatures=["image_tensor", "image_bytes"])
  assert export.read_metadata(path)["input_size"] is None
  loaded = tf.saved_model.load(path)
  images = export.load_images("shapes", 2, (40, 56))
  report = export.verify_saved_model(path, model, images, signature="image_tensor",
                                     loaded=loaded)
  assert report.failures(max_abs_error=1e-5, min_agreement=1.0) == [], report.format()
  outputs = loaded.signatures["image_tensor"](inputs=tf.constant(images))
  assert outputs["semantic_map"].shape == (2, 40, 56)
  assert outputs["semantic_probs"].shape == (2, 40, 56, export_models.NUM_CLASSES)
  np.testing.assert_array_equal(outputs["image_size"].numpy(), [[40, 56], [40, 56]])
  keras_logits = model(images.astype("float32")).numpy()  # DeepLabV3: one logits tensor
  np.testing.assert_allclose(outputs["semantic_logits"].numpy(), keras_logits, atol=1e-5)
  same = [verify.encode_png(image) for image in images]
  np.testing.assert_array_equal(
      loaded.signatures["image_bytes"](inputs=tf.constant(same))["semantic_map"].numpy(),
      outputs["semantic_map"].numpy())
  # Without an export size, one request's images must share their size.
  mixed = [verify.encode_png(images[0]), verify.encode_png(images[1][:32])]
  with pytest.raises(tf.errors.InvalidArgumentError, match="must share their size"):
    loaded.signatures["image_bytes"](inputs=tf.constant(mixed))


def test_panoptic_export_matches_keras_and_restores_each_size(panoptic_export):
  model, path, loaded = panoptic_export
  images = export.load_images("shapes", 4, (SIZE, SIZE))
  for signature in ("image_tensor", "image_bytes"):
    report = export.verify_saved_model(path, model, images, signature=signature,
                                       loaded=loaded)
    assert report.failures(max_abs_error=1e-5, min_agreement=1.0) == [], report.format()
    assert set(report.agreement) == {"semantic_map", "instance_map", "panoptic_map"}
  info = export.shapes_panoptic_info()
  assert export.read_metadata(path)["panoptic_postprocess"] == info.postprocess_kwargs()
  # At the export size nothing is resized: the maps are exactly those of the package's
  # own end-to-end PanopticInference (same post-processor, batched).
  served = loaded.signatures["image_tensor"](inputs=tf.constant(images))
  pipeline = PanopticInference(model, dataset=info)(tf.constant(images))
  for key, name in (("semantic", "semantic_map"), ("instance", "instance_map"),
                    ("panoptic", "panoptic_map")):
    np.testing.assert_array_equal(served[name].numpy(), pipeline[key].numpy())
  raw = model(images.astype("float32"), training=False)
  np.testing.assert_allclose(served["center_heatmap"].numpy(),
                             raw["center_heatmap"].numpy()[..., 0], atol=1e-5, rtol=0)
  np.testing.assert_allclose(served["offsets"].numpy(), raw["offsets"].numpy(), atol=1e-5,
                             rtol=0)
  # Two images of different sizes in one request: each restored to its own size,
  # padded to the largest, with image_size telling the valid region.
  tall = export.load_images("shapes", 1, (SIZE, 40))[0]
  wide = export.load_images("shapes", 1, (48, SIZE))[0]
  serve = loaded.signatures["image_bytes"]
  batch = serve(inputs=tf.constant([verify.encode_png(tall), verify.encode_png(wide)]))
  np.testing.assert_array_equal(batch["image_size"].numpy(), [[SIZE, 40], [48, SIZE]])
  for key in ("semantic_map", "instance_map", "panoptic_map", "center_heatmap"):
    assert batch[key].shape == (2, SIZE, SIZE), key
  assert (batch["panoptic_map"].numpy()[0, :, 40:] == -1).all()
  assert (batch["semantic_map"].numpy()[1, 48:] == -1).all()
  assert (batch["center_heatmap"].numpy()[1, 48:] == 0).all()
  for index, (image, (height, width)) in enumerate([(tall, (SIZE, 40)), (wide, (48, SIZE))]):
    alone = serve(inputs=tf.constant([verify.encode_png(image)]))
    assert alone["panoptic_map"].shape == (1, height, width)
    np.testing.assert_array_equal(batch["panoptic_map"].numpy()[index, :height, :width],
                                  alone["panoptic_map"].numpy()[0])
  # Panoptic ids: an instance's pixels share one id, its majority thing class *
  # label_divisor + its number within the class; kept stuff is semantic *
  # label_divisor; the rest is void_label * label_divisor.
  panoptic = served["panoptic_map"].numpy()
  semantic = served["semantic_map"].numpy()
  instance = served["instance_map"].numpy()
  assert len(np.unique(instance)) >= 3, np.unique(instance)  # instances to compare
  divisor = info.label_divisor
  void = panoptic == info.ignore_label * divisor
  assert (instance[~np.isin(semantic, export_models.THING_IDS)] == 0).all()
  for image in range(len(images)):
    for number in set(np.unique(instance[image])) - {0}:
      ids = np.unique(panoptic[image][instance[image] == number])
      assert len(ids) == 1 and ids[0] // divisor in export_models.THING_IDS, ids
      assert ids[0] % divisor >= 1
  stuff = (instance == 0) & ~void
  np.testing.assert_array_equal(panoptic[stuff], semantic[stuff] * divisor)


def test_bad_arguments_name_the_argument(classifier, classifier_export, tmp_path, images):
  path = str(tmp_path / "bad")
  with pytest.raises(ValueError, match="signatures=.*'image_jpeg'"):
    export.export_saved_model(classifier, path, signatures=["image_tensor", "image_jpeg"])
  with pytest.raises(ValueError, match="signatures="):
    export.export_saved_model(classifier, path, signatures=["image_tensor", "image_tensor"])
  with pytest.raises(ValueError, match="task='semantic'"):
    export.export_saved_model(classifier, path, input_size=SIZE, task="semantic")
  with pytest.raises(ValueError, match="task='detection'"):
    export.export_saved_model(classifier, path, task="detection")
  with pytest.raises(ValueError, match="top_k=0"):
    export.export_saved_model(classifier, path, top_k=0)
  for bad_size in (0, (64,), "64", (64, 64.5)):
    with pytest.raises(ValueError, match="input_size="):
      export.export_saved_model(classifier, path, input_size=bad_size)
  with pytest.raises(ValueError, match="model="):
    export.export_saved_model(lambda x: x, path)
  picky = export_models.fixed_size_classifier(multiple=32)
  with pytest.raises(ValueError, match=r"cannot take input_size=40"):
    export.export_saved_model(picky, path, input_size=40)
  built_for_64 = get_preset(NAME).build_tiny(num_classes=3, input_shape=(SIZE, SIZE, 3))
  with pytest.raises(ValueError, match=r"built for input size \(64, 64\).*input_size=96"):
    export.export_saved_model(built_for_64, path, input_size=96)
  panoptic = export_models.tiny_panoptic()
  with pytest.raises(ValueError, match="6 classes.*dataset=None"):
    export.export_saved_model(panoptic, path, input_size=SIZE)
  with pytest.raises(ValueError, match="19.*dataset='cityscapes'"):
    export.export_saved_model(panoptic, path, input_size=SIZE, dataset="cityscapes")
  assert not os.path.exists(path)
  saved, loaded = classifier_export
  with pytest.raises(ValueError, match="signature='image_jpeg'"):
    export.verify_saved_model(saved, classifier, images, signature="image_jpeg")
  with pytest.raises(ValueError, match="images dtype=float32"):
    export.verify_saved_model(saved, classifier, images.astype("float32"), loaded=loaded)
  with pytest.raises(ValueError, match="saved_model_dir="):
    export.verify_saved_model(str(tmp_path), classifier, images)


def _write_model_garden_checkpoint(model, model_dir):
  """What Model Garden's trainer writes: model, optimizer and step under one checkpoint."""
  optimizer = tf_keras.optimizers.SGD(0.1)
  # Batch 2: a batch-1 eager gradient of the tiny SWideRNet crashes oneDNN on CPU.
  pixels = tf.random.uniform([2, SIZE, SIZE, 3], 0, 255, seed=1)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model(pixels, training=True) ** 2)
  optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                model.trainable_variables))
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                   global_step=tf.Variable(1, dtype=tf.int64))
  manager = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=2)
  return manager.save(checkpoint_number=1)


def test_load_model_from_model_garden_checkpoint(tmp_path, images):
  model_dir = str(tmp_path / "model_dir")
  tf_keras.utils.set_random_seed(21)
  trained = get_preset(NAME).build_tiny(num_classes=3)
  prefix = _write_model_garden_checkpoint(trained, model_dir)
  restored = export.load_model(NAME, model_kwargs='{"num_classes": 3}', checkpoint=model_dir,
                               tiny=True)
  for want, got in zip(trained.get_weights(), restored.get_weights()):
    np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(restored(images.astype("float32")).numpy(),
                                trained(images.astype("float32")).numpy())
  assert export.load_model(NAME, model_kwargs={"num_classes": 3}, checkpoint=prefix,
                           tiny=True) is not None
  with pytest.raises(ValueError, match="does not match.*checkpoint="):
    export.load_model(NAME, model_kwargs={"num_classes": 4}, checkpoint=model_dir, tiny=True)
  with pytest.raises(ValueError, match="does not match.*checkpoint="):
    export.load_model(NAME, model_kwargs={"num_classes": 3, "use_se": False},
                      checkpoint=model_dir, tiny=True)
  with pytest.raises(ValueError, match="checkpoint="):
    export.load_model(NAME, checkpoint=str(tmp_path / "missing"), tiny=True)
  with pytest.raises(ValueError, match="checkpoint=None"):
    export.load_model(NAME, tiny=True)
  with pytest.raises(ValueError, match="model_kwargs="):
    export.load_model(NAME, model_kwargs="{num_classes: 3}", checkpoint=model_dir)
  with pytest.raises(ValueError, match="name='swidernet_9'"):
    export.load_model("swidernet_9", checkpoint=model_dir)
  other_item = str(tmp_path / "other_item")
  tf.train.Checkpoint(network=trained).save(os.path.join(other_item, "ckpt"))
  with pytest.raises(ValueError, match="no 'model' item"):
    export.load_model(NAME, model_kwargs={"num_classes": 3}, checkpoint=other_item, tiny=True)
  # A .keras file holds architecture and weights.
  keras_file = str(tmp_path / "model.keras")
  trained.save(keras_file)
  from_file = export.load_model(keras_file=keras_file)
  np.testing.assert_allclose(from_file(images.astype("float32")).numpy(),
                             trained(images.astype("float32")).numpy(), atol=1e-6)
  with pytest.raises(ValueError, match="keras_file="):
    export.load_model(keras_file=str(tmp_path / "none.keras"))


def test_parity_report_thresholds():
  report = verify.ParityReport("x", "classification", 4, max_abs_error={"logits": 2e-5},
                               mean_abs_error={"logits": 1e-6},
                               reference_scale={"logits": 3.0}, agreement={"top1": 0.9},
                               metrics={"accuracy_drop": 2.5})
  assert report.failures(max_abs_error=1e-5) == []  # 2e-5 <= 1e-5 * 3
  assert len(report.failures(max_abs_error=5e-6)) == 1
  assert report.failures(min_agreement=0.95) == ["top1: agreement 0.9000 < 0.95"]
  assert report.failures(max_metric_drop=2.0) == ["accuracy_drop 2.50 points > 2"]
  assert json.loads(json.dumps(report.to_dict()))["agreement"] == {"top1": 0.9}
  labels = np.array([[0, 1], [1, 255]])
  assert verify.mean_iou(np.array([[0, 1], [0, 0]]), labels, 2) == pytest.approx(
      100 * (1 / 2 + 1 / 2) / 2)


def test_panoptic_export_with_test_time_augmentation(tmp_path):
  """eval_scales / flip: the SavedModel averages the scaled and mirrored predictions as
  PanopticInference does; the metadata records them and verify repeats them."""
  model = export_models.tiny_panoptic()
  path = str(tmp_path / "augmented")
  export.export_saved_model(model, path, input_size=SIZE, dataset="shapes",
                            signatures=["image_tensor"], eval_scales=(0.5, 1.0), flip=True)
  metadata = export.read_metadata(path)
  assert metadata["eval_scales"] == [0.5, 1.0] and metadata["flip"] is True
  images = export.load_images("shapes", 2, (SIZE, SIZE))
  report = export.verify_saved_model(path, model, images, signature="image_tensor")
  assert report.failures(max_abs_error=1e-5, min_agreement=1.0) == [], report.format()
  served = tf.saved_model.load(path).signatures["image_tensor"](inputs=tf.constant(images))
  want = multi_scale_predictions(lambda x: model(x, training=False),
                                 tf.constant(images, tf.float32), (0.5, 1.0), True)
  # The SavedModel resizes each pass's prediction grid straight to the image (one
  # resize); the Keras model upsamples to its input first (two): float32 rounding.
  np.testing.assert_allclose(served["semantic_probs"].numpy(),
                             tf.nn.softmax(want["semantic_logits"]).numpy(), atol=3e-5)
  plain = model(images.astype("float32"), training=False)["offsets"].numpy()
  assert np.abs(served["offsets"].numpy() - plain).max() > 1e-3  # it did augment


def test_classification_export_refuses_test_time_augmentation(classifier, tmp_path):
  with pytest.raises(ValueError, match="eval_scales"):
    export.export_saved_model(classifier, str(tmp_path / "c"), input_size=SIZE,
                              eval_scales=(0.5, 1.0))
