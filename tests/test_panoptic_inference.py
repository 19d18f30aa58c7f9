"""Model + post-processing as one function: batching, XLA, and the one SavedModel exporter."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests.test_panoptic_deeplab import TINY_BACKBONE, _tiny
from tfvision.data.panoptic import synthetic_dataset_info, synthetic_panoptic_batch
from tfvision.export import export_saved_model
from tfvision.models import SWideRNet
from tfvision.models.panoptic_inference import PanopticInference, multi_scale_predictions
from tfvision.ops.panoptic_postprocess import PanopticDeepLabPostProcessor

INFO = synthetic_dataset_info(5)


@pytest.fixture(scope="module", name="setup")
def _setup():
  """One tiny model shared by the tests of this module (building it is the slow part).

  Seeded here: a module fixture is built before the per-test seeding of conftest.py, so
  its weights would otherwise depend on the tests that ran before it."""
  tf_keras.utils.set_random_seed(1234)
  backbone = SWideRNet(include_top=False, output_stride=16, **TINY_BACKBONE)
  model = _tiny(backbone=backbone, backbone_kwargs=None)
  # A permissive post-processor so that the untrained model yields instances and stuff.
  post = PanopticDeepLabPostProcessor(
      thing_classes=INFO.thing_classes, label_divisor=INFO.label_divisor,
      void_label=INFO.ignore_label, center_threshold=0.0, nms_kernel=3, keep_k_centers=20,
      stuff_area_limit=8)
  images, _ = synthetic_panoptic_batch(2, 33, INFO, seed=7)
  return PanopticInference(model, post), images.astype("uint8")


def test_pipeline_batches_and_compiles_with_xla(setup):
  inference, images = setup
  eager = {k: v.numpy() for k, v in inference(images).items()}
  assert eager["panoptic"].shape == (2, 33, 33) and eager["panoptic"].dtype == np.int32
  assert len(np.unique(eager["instance"])) > 1
  for b in range(2):
    single = inference(images[b:b + 1])
    np.testing.assert_array_equal(single["panoptic"].numpy(), eager["panoptic"][b:b + 1])
  compiled = tf.function(inference.__call__, jit_compile=True)
  # XLA may fuse the convolutions differently; the maps agree up to pixels whose
  # argmax / nearest center is decided by float noise.
  xla = compiled(images)
  agreement = np.mean(xla["panoptic"].numpy() == eager["panoptic"])
  assert agreement > 0.99, agreement


def test_the_exporter_serves_exactly_the_pipelines_maps(setup, tmp_path):
  """tfvision.export's SavedModel: uint8 pixels in, the same maps as PanopticInference.

  At the image's own size the served predictions are the model's (the exporter takes
  them before the model's last upsampling and resizes once, the same op).
  """
  inference, images = setup
  path = str(tmp_path / "panoptic")
  export_saved_model(inference.model, path, signatures=("image_tensor",),
                     postprocess_fn=inference.postprocessor)
  serve = tf.saved_model.load(path).signatures["serving_default"]
  assert serve.structured_input_signature[1]["inputs"].dtype == tf.uint8
  served = serve(inputs=tf.constant(images[:1]))
  want = inference(images[:1])
  for key, name in (("panoptic", "panoptic_map"), ("semantic", "semantic_map"),
                    ("instance", "instance_map")):
    np.testing.assert_array_equal(served[name].numpy(), want[key].numpy())
  outputs = inference.model(tf.cast(images[:1], tf.float32), training=False)
  np.testing.assert_allclose(served["offsets"].numpy(), outputs["offsets"].numpy(),
                             atol=1e-5)


# ---- test-time augmentation (issue 18) -------------------------------------------------
def _ramp_model(calls):
  """A model whose outputs are linear in the pixel position, so that bilinear resizing
  with aligned corners is exact: semantic logits (x, -x) from a ramp image, the heatmap
  the ramp itself, offsets pointing to the grid's centre (in grid pixels)."""
  def model_fn(images):
    calls.append(tuple(images.shape[1:3]))
    ramp = images[..., :1]
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    ys = tf.cast(tf.range(height), tf.float32)[:, None] + tf.zeros([1, width])
    xs = tf.zeros([height, 1]) + tf.cast(tf.range(width), tf.float32)[None, :]
    centre = tf.stack([tf.cast(height - 1, tf.float32) / 2 - ys,
                       tf.cast(width - 1, tf.float32) / 2 - xs], -1)
    return {"semantic_logits": tf.concat([ramp, -ramp], -1) / 10.0,
            "center_heatmap": ramp, "offsets": tf.tile(centre[None], [shape[0], 1, 1, 1]),
            "ignored": ramp}
  return model_fn


def test_multi_scale_and_flip_average_in_the_image_frame():
  size = 33
  ramp = np.tile(np.arange(size, dtype="float32")[None, :, None], (size, 1, 3))[None]
  calls = []
  model_fn = _ramp_model(calls)
  want = model_fn(tf.constant(ramp))
  got = multi_scale_predictions(model_fn, tf.constant(ramp), (0.5, 1.0, 1.75), flip=True)
  # deeplab2's scaled sizes (size - 1) * scale + 1, each also mirrored.
  assert calls[1:] == [(17, 17)] * 2 + [(33, 33)] * 2 + [(57, 57)] * 2
  assert set(got) == {"semantic_logits", "center_heatmap", "offsets"}
  # Mirrored back (x offsets negated) and rescaled to the image's pixels: every pass
  # gives the same prediction here, so the average is that prediction.
  np.testing.assert_allclose(got["offsets"].numpy(), want["offsets"].numpy(), atol=1e-4)
  np.testing.assert_allclose(got["center_heatmap"].numpy(),
                             want["center_heatmap"].numpy(), atol=1e-4)
  # Semantic: the log of the averaged probabilities.
  np.testing.assert_allclose(got["semantic_logits"].numpy(),
                             tf.nn.log_softmax(want["semantic_logits"]).numpy(), atol=1e-5)
  # Without undoing the mirror the average would be symmetric in x, the ramp is not.
  assert got["center_heatmap"].numpy()[0, 0, -1, 0] > 30


def test_without_augmentation_the_model_runs_once_unchanged():
  calls = []
  model_fn = _ramp_model(calls)
  images = tf.ones([1, 9, 9, 3])
  out = multi_scale_predictions(model_fn, images, (1.0,), flip=False)
  assert calls == [(9, 9)] and "ignored" in out


@pytest.mark.parametrize("kwargs, arg", [
    (dict(eval_scales=()), "eval_scales"), (dict(eval_scales=(1.0, 0.0)), "eval_scales"),
    (dict(eval_scales="1"), "eval_scales"), (dict(flip="yes"), "flip"),
])
def test_bad_test_time_augmentation_names_the_argument(kwargs, arg, setup):
  inference, _ = setup
  with pytest.raises(ValueError, match=arg):
    PanopticInference(inference.model, inference.postprocessor, **kwargs)


def test_panoptic_inference_with_scales_and_flip(setup):
  inference, images = setup
  augmented = PanopticInference(inference.model, inference.postprocessor,
                                eval_scales=(0.75, 1.25), flip=True)
  maps = augmented(images)
  assert maps["panoptic"].shape == (2, 33, 33)
  want = inference.postprocessor(multi_scale_predictions(
      lambda x: inference.model(x, training=False), tf.cast(images, tf.float32),
      (0.75, 1.25), True))
  np.testing.assert_array_equal(maps["panoptic"].numpy(), want["panoptic"].numpy())
