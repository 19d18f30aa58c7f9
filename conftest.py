"""pytest setup shared by every test (DESIGN.md, "The harness every model goes through")."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

# Model Garden code reads absl flags; under pytest nobody parses them.
flags.FLAGS.mark_as_parsed()

# Two logical CPU devices so that MirroredStrategy can run two replicas on any machine.
# This must happen before TensorFlow initialises its devices.
_CPUS = tf.config.list_physical_devices("CPU")
try:
  tf.config.set_logical_device_configuration(
      _CPUS[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:
  pass  # already initialised by an earlier import; tests needing two devices check.


@pytest.fixture(autouse=True)
def _seed_and_policy():
  """Deterministic weights per test and the float32 policy restored afterwards."""
  import tf_keras  # pylint: disable=import-outside-toplevel
  tf_keras.utils.set_random_seed(1234)
  yield
  tf_keras.mixed_precision.set_global_policy("float32")
  tf_keras.backend.clear_session()
