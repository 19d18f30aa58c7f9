"""A real multi-worker run: two local processes, TF_CONFIG, MultiWorkerMirroredStrategy."""
import importlib.util
import pathlib

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "multi_worker.py"


def test_two_workers_train_the_demo_model_to_identical_weights(tmp_path):
  spec = importlib.util.spec_from_file_location("multi_worker", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  summary = module.main(["--work-dir", str(tmp_path), "--steps", "3"])
  assert summary["returncodes"] == [0, 0], (tmp_path / "worker_0.log").read_text()[-3000:]
  assert all(h.startswith("127.0.0.1:") for h in summary["cluster"]["worker"])
  for worker in summary["workers"]:
    # One replica per worker, two in sync; both ran every step.
    assert worker["replicas"] == 2 and worker["iterations"] == 3
  assert summary["workers"][0]["loss"] == summary["workers"][1]["loss"]
  assert summary["num_weights"] > 100
  # Gradients all-reduced across the workers keep every weight (and BN statistic) equal.
  assert summary["max_abs_difference"] == 0.0
