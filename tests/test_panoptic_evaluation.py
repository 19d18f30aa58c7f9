"""PQ / SQ / RQ and mIoU on hand-made maps, the evaluation loop and its command line."""
import numpy as np
import pytest
import tensorflow as tf

from tests.panoptic_fixtures import TOY, perfect_predictions, toy_label
from tfvision.evaluation.panoptic import PanopticEvaluator, evaluate_panoptic, main

VOID = 255 * 1000


def _gt():
  gt = np.zeros([64, 64], "int64")               # stuff class 0
  gt[10:20, 10:20] = 2001                        # instance A
  gt[30:40, 30:40] = 2002                        # instance B
  return gt


def test_pq_sq_rq_by_hand():
  gt = _gt()
  pred = np.zeros_like(gt)
  pred[10:20, 10:20] = 2005                      # A found (any instance number)
  pred[50:54, 50:54] = 3001                      # a false positive of class 3 over stuff
  evaluator = PanopticEvaluator(TOY)
  evaluator.update(gt, pred)
  result = evaluator.result()
  # Stuff: ground truth 4096 - 200 pixels, prediction 4096 - 100 - 16 (B predicted as
  # stuff, the false positive taken out), intersection 3896 - 16.
  stuff_iou = 3880 / (3896 + 3980 - 3880)
  # class 0: TP with stuff_iou; class 2: 1 TP (IoU 1), 1 FN; class 3: 1 FP; class 1: none.
  np.testing.assert_allclose(result["pq_stuff"], stuff_iou)
  np.testing.assert_allclose(result["rq_things"], (2 / 3 + 0) / 2)
  np.testing.assert_allclose(result["pq_things"], (2 / 3 + 0) / 2)
  np.testing.assert_allclose(result["pq"], (stuff_iou + 2 / 3 + 0) / 3)
  np.testing.assert_allclose(result["sq"], (stuff_iou + 1 + 0) / 3)


def test_crowd_and_void_ground_truth_are_not_penalised():
  gt = _gt()
  gt[50:60, 50:60] = 2000                         # a crowd region of class 2
  gt[0:4, :] = VOID
  pred = gt.copy()
  pred[50:60, 50:60] = 2009                       # an instance over the crowd region
  pred[0:4, :] = 0                                # stuff over void
  evaluator = PanopticEvaluator(TOY)
  evaluator.update(gt, pred)
  assert evaluator.result()["pq"] == 1.0


def test_miou_counts_void_predictions_as_misses_and_skips_the_ignore_class():
  gt = np.zeros([4, 4], "int64")
  gt[:, 2:] = 1000
  gt[0, 0] = VOID
  pred = np.zeros_like(gt)
  pred[:, 2:] = 1000
  pred[3, 3] = VOID
  evaluator = PanopticEvaluator(TOY)
  evaluator.update(gt, pred)
  result = evaluator.result()
  iou0 = 7 / 7                                     # 7 valid pixels of class 0, all right
  iou1 = 7 / 8                                     # one class-1 pixel predicted void
  np.testing.assert_allclose(result["miou"], (iou0 + iou1) / 2)
  assert result["iou_per_class"][2] is None


def test_evaluate_panoptic_runs_model_and_postprocessing_over_a_dataset():
  labels = np.stack([toy_label(), np.roll(toy_label(), 5, axis=1)])
  outputs = dict(zip(("semantic_logits", "center_heatmap", "offsets"),
                     perfect_predictions(labels)))
  lookup = {key: tf.constant(value) for key, value in outputs.items()}

  def model(images, training=False):
    del training
    index = tf.cast(images[:, 0, 0, 0], tf.int32)   # the image's index in the dataset
    return {key: tf.gather(value, index) for key, value in lookup.items()}

  images = np.zeros([2, 64, 64, 3], "float32")
  images[1] = 1.0
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
  result = evaluate_panoptic(model, dataset, TOY)
  assert result["images"] == 2 and result["pq"] == 1.0 and result["miou"] == 1.0


def test_command_line_evaluates_a_tiny_model_on_synthetic_images(capsys):
  # With the papers' test-time augmentation (the plain path: the test above).
  result = main(["--tiny", "--dataset", "synthetic", "--synthetic", "2", "--size", "33",
                 "--batch", "2", "--eval-scales", "0.75,1", "--flip"])
  assert result["images"] == 2
  assert 0.0 <= result["pq"] <= 1.0 and 0.0 <= result["miou"] <= 1.0
  assert '"pq"' in capsys.readouterr().out


def test_mismatched_shapes_raise():
  with pytest.raises(ValueError, match="predicted_panoptic"):
    PanopticEvaluator("cityscapes").update(np.zeros([4, 4]), np.zeros([4, 5]))
