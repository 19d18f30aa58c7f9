"""`init_checkpoint_modules: backbone`: a dense model initialised from a classifier's run."""
import numpy as np
import pytest
import tensorflow as tf

from tests import harness
from tfvision.models import DeepLabV3, create_model
from tfvision.tasks.common import backbone_of, initialize_from_checkpoint, restore_backbone

BACKBONE = "swidernet_0.25_0.25_0.75.tiny"
NO_SAC = dict(sac_beyond_stride=0)


def _trained_classifier_checkpoint(tmp_path, num_classes=3, **kwargs):
  """A classifier with non-default weights, saved as the Model Garden trainer saves it."""
  classifier = create_model(BACKBONE, num_classes=num_classes, **kwargs)
  rng = np.random.RandomState(0)
  classifier.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype)
                          for w in classifier.get_weights()])
  checkpoint = tf.train.Checkpoint(model=classifier, global_step=tf.Variable(7, tf.int64))
  path = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=1).save(7)
  return classifier, path


def test_dense_model_backbone_comes_from_the_classifier_checkpoint(tmp_path):
  classifier, path = _trained_classifier_checkpoint(tmp_path, **NO_SAC)
  dense = DeepLabV3(BACKBONE, 5, aspp_filters=8, head_filters=8,  # output stride 16
                    backbone_kwargs=NO_SAC)
  head_before = dense.get_layer("classifier").get_weights()
  initialize_from_checkpoint(dense, str(tmp_path), "backbone")
  backbone = backbone_of(dense)
  assert [layer.name for layer in backbone.layers] == [
      layer.name for layer in classifier.layers][:-1]  # the same layers but the head
  for layer in backbone.layers:
    for got, want in zip(layer.get_weights(), classifier.get_layer(layer.name).get_weights()):
      np.testing.assert_array_equal(got, want)
  for got, want in zip(dense.get_layer("classifier").get_weights(), head_before):
    np.testing.assert_array_equal(got, want)  # the dense head is left alone
  # The stride-16 backbone computes the classifier's stride-32 features, dilated.
  images = harness.sample_images(1, 65)
  stride16 = backbone(images, training=False)["5"].numpy()[:, ::2, ::2]
  headless = create_model(BACKBONE, include_top=False, **NO_SAC)
  headless.set_weights(classifier.get_weights()[:len(headless.weights)])
  np.testing.assert_allclose(stride16, headless(images, training=False)["5"].numpy(),
                             atol=1e-4)


def test_layers_that_exist_only_at_the_dense_stride_keep_their_initialisation(tmp_path):
  """With SAC the first conv6 block's 3x3 conv is strided at stride 32 and has no switch;
  dilated at stride 16 it has one (deeplab2): the only layer the classifier cannot give."""
  classifier, path = _trained_classifier_checkpoint(tmp_path)
  dense = DeepLabV3(BACKBONE, 5, aspp_filters=8, head_filters=8)
  restored, fresh = restore_backbone(dense, path)
  assert fresh == ["stage5_block1/conv2/conv/switch"], fresh
  assert restored == len(classifier.weights) - 2  # everything but the head's kernel, bias
  # Its global context sits beside the strided conv at stride 32, inside the switchable
  # conv at 16: restored all the same.
  strided = classifier.get_layer("stage5_block1").convs[1].pre_context
  dilated = backbone_of(dense).get_layer("stage5_block1").convs[1].conv.pre_context
  for got, want in zip(dilated.get_weights(), strided.get_weights()):
    np.testing.assert_array_equal(got, want)


def test_a_classifier_with_another_head_takes_the_layers_below_it(tmp_path):
  classifier, path = _trained_classifier_checkpoint(tmp_path, num_classes=3)
  target = create_model(BACKBONE, num_classes=10)
  initialize_from_checkpoint(target, path, "backbone")
  np.testing.assert_array_equal(target.get_layer("stem").get_weights()[0],
                                classifier.get_layer("stem").get_weights()[0])
  assert target.get_layer("head").fc.kernel.shape[-1] == 10


def test_a_checkpoint_of_another_backbone_is_an_error(tmp_path):
  _, path = _trained_classifier_checkpoint(tmp_path)
  other = DeepLabV3("resnest50.tiny", 5, aspp_filters=8, head_filters=8)
  with pytest.raises(ValueError, match="does not hold this backbone"):
    initialize_from_checkpoint(other, path, "backbone")
  with pytest.raises(ValueError, match="init_checkpoint_modules must be one of"):
    initialize_from_checkpoint(other, path, "decoder")
