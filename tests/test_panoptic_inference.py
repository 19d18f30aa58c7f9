"""Model + post-processing as one function: batching, XLA, SavedModel with uint8 input."""
import numpy as np
import pytest
import tensorflow as tf

from tests.test_panoptic_deeplab import _tiny
from tfvision.data.panoptic import synthetic_dataset_info, synthetic_panoptic_batch
from tfvision.models.panoptic_inference import PanopticInference, export_panoptic_saved_model
from tfvision.ops.panoptic_postprocess import PanopticDeepLabPostProcessor

INFO = synthetic_dataset_info(5)


@pytest.fixture(scope="module", name="setup")
def _setup():
  """One tiny model shared by the tests of this module (building it is the slow part)."""
  model = _tiny()
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


def test_exports_one_saved_model_from_uint8_pixels_to_panoptic_maps(setup, tmp_path):
  inference, images = setup
  path = str(tmp_path / "panoptic")
  export_panoptic_saved_model(inference.model, path, inference.postprocessor)
  loaded = tf.saved_model.load(path)
  serve = loaded.signatures["serving_default"]
  assert serve.structured_input_signature[1]["image"].dtype == tf.uint8
  served = serve(image=tf.constant(images[:1]))
  want = inference(images[:1])
  for key in ("panoptic", "semantic", "instance"):
    np.testing.assert_array_equal(served[key].numpy(), want[key].numpy())
