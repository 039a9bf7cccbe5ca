"""The choice each rule makes among a pipeline run's feature candidates, with its test accuracy.

    python benchmarks/select_rules.py reports/clothing_budget/report.json [--budget 2]

Reads the candidate rows of a ``featx run`` report (their ``cv_score``, ``cv_se``, ``cv_folds``
and cost) and prints the candidate chosen by ``rule="best"``, by the one-standard-error rule
compared fold by fold (featx's, :func:`featx.comparison.near_best`) and by the same rule with
the best candidate's own standard error (the rows without ``cv_folds``), each with the test
accuracy the report scored it at. No extraction and no fit: the report holds everything.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from featx.comparison import choose_candidate


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", help="a report.json written by `featx run`")
    ap.add_argument("--budget", default=None, help="as [select] budget: passes or '20ms'")
    args = ap.parse_args(argv)
    budget = args.budget
    if budget is not None and not budget.rstrip().endswith("s"):
        budget = float(budget)
    rows = [r for r in json.loads(Path(args.report).read_text())["results"]
            if r.get("candidate") and r.get("cv_score") is not None]
    unpaired = [{k: v for k, v in r.items() if k != "cv_folds"} for r in rows]
    print(f"{len(rows)} candidates on the full training split"
          + ("" if budget is None else f", budget {budget!r}"))
    print("| rule | candidate | ms/image | CV | test accuracy |")
    print("|---|---|---:|---:|---:|")
    for label, table, rule in (("best", rows, "best"), ("one_se, paired folds", rows, "one_se"),
                               ("one_se, the best's own SE", unpaired, "one_se")):
        row = rows[choose_candidate(table, rule=rule, budget=budget)]
        print(f"| {label} | {row['features']} | {1e3 * row['seconds_per_image']:.1f} | "
              f"{row['cv_score']:.3f} | {row['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
