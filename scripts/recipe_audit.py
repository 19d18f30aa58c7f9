"""Counts the experiment settings without a source, at a base commit and now.

    python scripts/recipe_audit.py --base 320acec

"Settings" are, per experiment, those that differ from Model Garden's defaults
(`tfvision.configs.recipes.differences`, run on the base commit's experiment configs
too) and, at the base commit, also those today's card names (a setting the base left at
its default where the source asks for another value). A base setting counts as
"sourced" when today's card gives the same path a paper, reference-code or run source
and the base commit had the same value (a run setting, such as the logging cadence,
always counts as sourced); as "explained" when today's card gives it a tfvision reason
(a deliberate deviation or platform choice) at the same value; otherwise as
"unsourced" (no source, or a value the sources contradict, which this change
corrected). Experiments the base commit did not have are not counted; card settings
the base config classes could not express (fields added since, e.g. `pca_lighting`)
are counted as "not_expressible". "now" counts today's cards by the same kinds.
Prints JSON.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPES = ROOT / "tfvision" / "configs" / "recipes.py"

_DUMP = r"""
import importlib.util, json, sys
import tfvision.tasks
from official.core import exp_factory
spec = importlib.util.spec_from_file_location("recipes_now", sys.argv[1])
recipes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipes)
out = {}
for name in tfvision.tasks.list_experiments():
  params = exp_factory.get_exp_config(name)
  out[name] = {"changed": sorted(recipes.differences(params)),
               "settings": recipes.settings(params)}
print("JSON" + json.dumps(out, default=str))
"""


def base_settings(base):
  """{experiment: {path: value}} of the base commit's differing settings."""
  with tempfile.TemporaryDirectory() as tmp:
    archive = pathlib.Path(tmp) / "base.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), base],
                   check=True)
    tree = pathlib.Path(tmp) / "tree"
    with tarfile.open(archive) as tar:
      tar.extractall(tree)
    result = subprocess.run([sys.executable, "-c", _DUMP, str(RECIPES)], cwd=tree,
                            capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3",
                                 "PATH": "/usr/bin:/bin"})
  line = next(l for l in result.stdout.splitlines() if l.startswith("JSON"))
  return json.loads(line[len("JSON"):])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--base", default="320acec")
  args = parser.parse_args(argv)
  sys.path.insert(0, str(ROOT))
  import tfvision.tasks  # pylint: disable=import-outside-toplevel
  from tfvision.configs import recipes  # pylint: disable=import-outside-toplevel
  before = base_settings(args.base)
  now_names = tfvision.tasks.list_experiments()
  rows = {name: {r[0]: (r[1], r[3]) for r in recipes.card_rows(name)} for name in now_names}
  counts = {"sourced": 0, "explained": 0, "unsourced": 0}
  unsourced_keys = {}
  # Card settings the base commit could not express (fields added since).
  missing = {name: sorted(set(rows.get(name, {})) - set(base["settings"]))
             for name, base in before.items()}
  for name, base in before.items():
    card = rows.get(name, {})
    keys = set(base["changed"]) | (set(card) & set(base["settings"]))
    for key in sorted(keys):
      value = base["settings"][key]
      now = card.get(key)
      same = now is not None and json.dumps(now[0], default=str) == json.dumps(
          value, default=str)
      if recipes.run_source(key) or (same and now[1].kind in ("paper", "code", "run")):
        counts["sourced"] += 1
      elif same and now[1].kind == "tfvision":
        counts["explained"] += 1
      else:
        counts["unsourced"] += 1
        unsourced_keys.setdefault(name, []).append(key)
  now_counts = {"sourced": 0, "explained": 0, "unsourced": 0}
  for name in now_names:
    for _, (_, source) in rows[name].items():
      kind = {"paper": "sourced", "code": "sourced", "run": "sourced",
              "tfvision": "explained"}.get(source.kind, "unsourced")
      now_counts[kind] += 1
  counts["not_expressible"] = sum(len(v) for v in missing.values())
  print(json.dumps({"base": args.base, "before": counts,
                    "before_experiments": len(before), "now": now_counts,
                    "now_experiments": len(now_names),
                    "unsourced_before": unsourced_keys}, indent=1))


if __name__ == "__main__":
  main()
