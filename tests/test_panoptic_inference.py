"""Model + post-processing as one function: batching, XLA, and the one SavedModel exporter."""
import numpy as np
import pytest
import tensorflow as tf

from tests.test_panoptic_deeplab import TINY_BACKBONE, _tiny
from tfvision.data.panoptic import synthetic_dataset_info, synthetic_panoptic_batch
from tfvision.export import export_saved_model
from tfvision.models import SWideRNet
from tfvision.models.panoptic_inference import PanopticInference
from tfvision.ops.panoptic_postprocess import PanopticDeepLabPostProcessor

INFO = synthetic_dataset_info(5)


@pytest.fixture(scope="module", name="setup")
def _setup():
  """One tiny model shared by the tests of this module (building it is the slow part)."""
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
