"""The Keras path: `model.compile` / `model.fit` under MirroredStrategy over two logical
CPUs, and `tf_keras.callbacks.BackupAndRestore` resuming an interrupted `fit`.

The Panoptic-DeepLab `fit` path (its `compute_loss`) is tested in
tests/test_panoptic_deeplab.py and, distributed, by tests/test_multi_worker.py.
"""
import numpy as np
import pytest
import tensorflow_datasets as tfds
import tf_keras

from tests.harness import two_cpu_strategy
from tfvision.data import shapes
from tfvision.data.keras_datasets import shapes_dataset
from tfvision.models.registry import get_preset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("tfds"))
  tfds.builder("tfvision_shapes/tiny", data_dir=directory).download_and_prepare()
  return directory


def _replicas_agree(strategy, model):
  for variable in model.trainable_variables[:4] + model.trainable_variables[-2:]:
    values = [v.numpy() for v in strategy.experimental_local_results(variable)]
    assert len(values) == 2
    np.testing.assert_array_equal(values[0], values[1])


class _Interrupt(tf_keras.callbacks.Callback):
  """Raises at the start of one epoch, as a preempted job would stop."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.epoch:
      raise RuntimeError("interrupted")


class _Epochs(tf_keras.callbacks.Callback):
  """Records the epochs run and the weights the first of them started from."""

  def __init__(self):
    super().__init__()
    self.seen = []
    self.start_weights = None

  def on_epoch_begin(self, epoch, logs=None):
    if not self.seen:
      self.start_weights = [v.numpy() for v in self.model.trainable_variables]
    self.seen.append(epoch)


def _classifier(strategy):
  with strategy.scope():
    model = get_preset("swidernet_0.25_0.25_0.75").build_tiny(
        num_classes=len(shapes.THING_CLASSES), input_shape=(32, 32, 3))
    model.compile(tf_keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
  return model


def test_fit_under_mirrored_strategy_resumes_with_backup_and_restore(data_dir, tmp_path):
  strategy = two_cpu_strategy()
  assert strategy.num_replicas_in_sync == 2
  data = shapes_dataset("classification", "train", size=32, config="tiny", batch_size=4,
                        data_dir=data_dir, seed=0)
  backup = str(tmp_path / "backup")

  model = _classifier(strategy)
  history = _Epochs()
  with pytest.raises(RuntimeError, match="interrupted"):
    model.fit(data, epochs=4, steps_per_epoch=3, verbose=0,
              callbacks=[tf_keras.callbacks.BackupAndRestore(backup), history,
                         _Interrupt(2)])
  assert history.seen == [0, 1, 2]
  assert int(model.optimizer.iterations.numpy()) == 6
  _replicas_agree(strategy, model)
  weights_at_interrupt = [v.numpy() for v in model.trainable_variables]

  # The interrupted 4-epoch run, restarted with a fresh model (as a new process would
  # build): it starts from the backed-up weights, only epochs 2 and 3 run, and the
  # optimizer step counter continues from 6.
  tf_keras.utils.set_random_seed(99)
  resumed = _classifier(strategy)
  epochs = _Epochs()
  logs = resumed.fit(data, epochs=4, steps_per_epoch=3, verbose=0,
                     callbacks=[tf_keras.callbacks.BackupAndRestore(backup), epochs])
  assert epochs.seen == [2, 3]
  for expected, restored in zip(weights_at_interrupt, epochs.start_weights):
    np.testing.assert_array_equal(expected, restored)
  assert int(resumed.optimizer.iterations.numpy()) == 12
  assert all(np.isfinite(logs.history["loss"]))
  assert any(not np.array_equal(a, b.numpy())
             for a, b in zip(weights_at_interrupt, resumed.trainable_variables))
  _replicas_agree(strategy, resumed)
