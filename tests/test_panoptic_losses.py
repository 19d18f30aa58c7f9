"""Panoptic-DeepLab losses: bootstrapping, normalisation, weights, masking."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from tfvision.losses.panoptic import (PanopticDeepLabLoss, average_top_k, center_mse,
                                      offset_l1, semantic_segmentation_loss,
                                      top_k_cross_entropy)


def test_average_top_k_keeps_the_hardest_pixels_and_divides_by_non_zeros():
  losses = tf.constant([[4.0, 0.0, 1.0, 3.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                        [0.0] * 10])
  np.testing.assert_allclose(average_top_k(losses, 0.2).numpy(), [3.5, 0.0])
  np.testing.assert_allclose(average_top_k(losses, 1.0).numpy(), [2.5, 0.0])
  # round(0.25 * 10) = 2 (round half to even), as deeplab2's tf.math.round.
  np.testing.assert_allclose(average_top_k(losses, 0.25).numpy(), [3.5, 0.0])


def test_top_k_cross_entropy_ignores_masks_and_weights_pixels():
  logits = tf.zeros([1, 2, 5, 4])                      # uniform: CE = log 4 everywhere
  labels = tf.constant([[[0, 1, 2, 3, 255], [0, 0, 0, 0, 0]]])
  weights = tf.constant([[[3.0, 1, 1, 1, 1], [1, 1, 1, 1, 0]]])
  full = top_k_cross_entropy(labels, logits, weights, 1.0, ignore_label=255).numpy()
  # 8 non-zero pixels (ignore label and a zero weight drop out), one weighted 3.
  np.testing.assert_allclose(full, [(3 + 7) * math.log(4) / 8], rtol=1e-6)
  top = top_k_cross_entropy(labels, logits, weights, 0.2, ignore_label=255).numpy()
  np.testing.assert_allclose(top, [(3 + 1) * math.log(4) / 2], rtol=1e-6)
  # COCO's ignore label 0 is a class index: its pixels must drop out as well.
  coco = top_k_cross_entropy(labels, logits, None, 1.0, ignore_label=0).numpy()
  np.testing.assert_allclose(coco, [math.log(4)], rtol=1e-6)


def test_center_and_offset_losses_normalise_by_the_weighted_pixels():
  target = np.zeros([1, 2, 2, 1], "float32")
  pred = np.array([[[[1.0], [2.0]], [[0.5], [0.0]]]], "float32")
  weights = np.array([[[1.0, 0.0], [1.0, 1.0]]], "float32")
  # Squared errors 1, (4 masked), 0.25, 0 -> non-zero: 2 pixels.
  np.testing.assert_allclose(center_mse(target, pred, weights).numpy(), [1.25 / 2])
  offsets = np.zeros([1, 2, 2, 2], "float32")
  offsets_pred = np.zeros([1, 2, 2, 2], "float32")
  offsets_pred[0, 0, 0] = [2.0, -4.0]
  offsets_pred[0, 1, 1] = [1.0, 0.0]
  np.testing.assert_allclose(offset_l1(offsets, offsets_pred, weights).numpy(),
                             [(3.0 + 0.5) / 2])


def _example():
  rng = np.random.RandomState(0)
  y_true = dict(semantic=rng.randint(0, 3, (2, 6, 6)), semantic_weights=np.ones((2, 6, 6)),
                center=rng.uniform(0, 1, (2, 6, 6, 1)), center_weights=np.ones((2, 6, 6)),
                offsets=rng.normal(0, 3, (2, 6, 6, 2)), offset_weights=np.ones((2, 6, 6)))
  y_pred = dict(semantic_logits=rng.normal(size=(2, 6, 6, 3)).astype("float32"),
                center_heatmap=rng.uniform(0, 1, (2, 6, 6, 1)).astype("float32"),
                offsets=rng.normal(0, 3, (2, 6, 6, 2)).astype("float32"))
  return y_true, y_pred


def test_panoptic_loss_weights_the_terms_200_and_0_01():
  y_true, y_pred = _example()
  loss = PanopticDeepLabLoss(ignore_label=255)
  parts = {k: v.numpy() for k, v in loss.components(y_true, y_pred).items()}
  np.testing.assert_allclose(parts["semantic_loss"], top_k_cross_entropy(
      y_true["semantic"], y_pred["semantic_logits"], y_true["semantic_weights"], 0.2, 255))
  np.testing.assert_allclose(parts["center_loss"], 200 * center_mse(
      y_true["center"], y_pred["center_heatmap"], y_true["center_weights"]), rtol=1e-6)
  np.testing.assert_allclose(parts["offset_loss"], 0.01 * offset_l1(
      y_true["offsets"], y_pred["offsets"], y_true["offset_weights"]), rtol=1e-6)
  total = parts["semantic_loss"] + parts["center_loss"] + parts["offset_loss"]
  np.testing.assert_allclose(parts["total"], total, rtol=1e-6)
  np.testing.assert_allclose(loss(y_true, y_pred).numpy(), total, rtol=1e-6)
  assert loss(y_true, y_pred).shape == (2,)


def test_panoptic_loss_config_round_trips_and_validates():
  loss = PanopticDeepLabLoss(ignore_label=0, top_k_percent=0.3, center_weight=100.0)
  clone = PanopticDeepLabLoss.from_config(json.loads(json.dumps(loss.get_config())))
  assert clone.get_config() == loss.get_config()
  for kwargs, arg in ((dict(top_k_percent=0.0), "top_k_percent"),
                      (dict(center_weight=-1.0), "center_weight"),
                      (dict(ignore_label=-2), "ignore_label")):
    with pytest.raises(ValueError, match=arg):
      PanopticDeepLabLoss(**kwargs)


def test_semantic_segmentation_loss_is_the_mean_pixel_cross_entropy():
  labels = np.array([[[0, 1], [2, 255]]])
  logits = np.log(np.array([[[[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]],
                             [[0.25, 0.25, 0.5], [1 / 3, 1 / 3, 1 / 3]]]], "float32"))
  np.testing.assert_allclose(semantic_segmentation_loss(labels, logits).numpy(),
                             [math.log(2)], rtol=1e-5)
