"""Cache bytes on disk, cold and warm extraction time: this checkout against a baseline checkout.

Each measurement is a subprocess (``python -c``, its working directory the checkout measured)
that extracts a folder into a fresh temporary cache: one cold ``extract_features`` call, then
``--warm-repeats`` warm calls (the best is kept), and the bytes of the cache's feature files
(dataset files and row-store segments; the converted weights, shared by every run, are not
counted). Versions run interleaved, ``--repeats`` cold runs each (the best is kept): the CPU is
shared with whatever else runs, so compare only ratios measured in the same run.

Run from the repository root::

    python benchmarks/cache_footprint.py                               # this checkout only
    git worktree add ../featx-before <commit>                          # the code before
    python benchmarks/cache_footprint.py --baseline ../featx-before \\
        --baseline-python ../featx-before/.venv/bin/python             # before / after

It prints a markdown table and the ratios after / before, and checks that both versions return
the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "clothing-small" / "train"  # ../shared/datasets

# Run inside each checkout: cold call, warm calls, bytes of the cache's feature files.
_CHILD = r"""
import json, os, sys, time
import numpy as np
import featx
data, cache, out, backbone, size, warm_repeats, limit = sys.argv[1:8]
ds = featx.ImageDataset.from_directory(data)
if int(limit):
    ds = ds.subset(range(int(limit)))
kw = dict(backbone=backbone, weights="imagenet", input_size=int(size), cache=cache, verbose=0)
t = time.perf_counter()
fs = featx.extract_features(ds, **kw)
cold = time.perf_counter() - t
warm = []
for _ in range(int(warm_repeats)):
    t = time.perf_counter()
    again = featx.extract_features(ds, **kw)
    warm.append(time.perf_counter() - t)
    assert np.array_equal(again.features, fs.features) and again.ids == fs.ids
sizes = {"datasets": 0, "rows": 0}
for path in (p for p in os.scandir(cache) if p.name.endswith(".h5")):
    sizes["datasets"] += path.stat().st_size
for folder, _, files in os.walk(os.path.join(cache, "rows")):
    sizes["rows"] += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
np.save(out, fs.features)
print(json.dumps({"cold_s": cold, "warm_s": min(warm) if warm else None, "n": len(fs),
                  "dim": int(fs.features.shape[1]), "bytes": sizes["datasets"] + sizes["rows"],
                  "dataset_bytes": sizes["datasets"], "row_bytes": sizes["rows"],
                  "feature_bytes": int(fs.features.nbytes)}))
"""


def run_one(python: str, checkout: Path, args, weights: Path, work: Path, tag: str) -> dict:
    """One cold (+ warm) measurement of one checkout in a fresh cache folder."""
    cache = Path(tempfile.mkdtemp(prefix=f"cache-{tag}-", dir=work))
    out = work / f"{tag}.npy"
    env = {**os.environ, "FEATX_CACHE_DIR": str(weights), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(checkout)}
    proc = subprocess.run(
        [python, "-c", _CHILD, args.data, str(cache), str(out), args.backbone,
         str(args.input_size), str(args.warm_repeats), str(args.limit)],
        cwd=checkout, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{tag} in {checkout} failed:\n{proc.stderr[-3000:]}")
    shutil.rmtree(cache, ignore_errors=True)
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "npy": str(out)}


def _best(runs: list[dict]) -> dict:
    best = min(runs, key=lambda r: r["cold_s"])
    return {**best, "warm_s": min(r["warm_s"] for r in runs),
            "colds": [round(r["cold_s"], 1) for r in runs]}


def table(results: dict[str, dict]) -> str:
    lines = ["| version | cache bytes | dataset files | row store | cold s (best; all) | "
             "warm s (best) | warm / cold |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['bytes']:,} | {r['dataset_bytes']:,} | {r['row_bytes']:,} | "
                     f"{r['cold_s']:.1f} ({', '.join(map(str, r['colds']))}) | "
                     f"{r['warm_s']:.3f} | {r['warm_s'] / r['cold_s']:.4f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DATA, help="an image folder (class sub-folders)")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=2, help="cold runs per version (best kept)")
    ap.add_argument("--warm-repeats", type=int, default=3, help="warm calls per run (best kept)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    ap.add_argument("--baseline", type=Path, help="the checkout to compare with (its root)")
    ap.add_argument("--baseline-python", default=None,
                    help="the baseline's interpreter (default: <baseline>/.venv/bin/python)")
    ap.add_argument("--python", default=sys.executable, help="this checkout's interpreter")
    args = ap.parse_args(argv)
    versions = {"after": (args.python, ROOT)}
    if args.baseline is not None:
        py = args.baseline_python or str(args.baseline / ".venv" / "bin" / "python")
        versions = {"before": (py, args.baseline.resolve()), **versions}
    with tempfile.TemporaryDirectory(prefix="featx-footprint-") as tmp:
        work = Path(tmp)
        weights = work / "shared"  # converted weights and graphs, made once, not counted
        weights.mkdir()
        warmup = argparse.Namespace(**{**vars(args), "limit": 8, "warm_repeats": 0})
        for name, (py, checkout) in versions.items():
            run_one(py, checkout, warmup, weights, work, f"warmup-{name}")
        runs: dict[str, list[dict]] = {name: [] for name in versions}
        for k in range(args.repeats):
            for name, (py, checkout) in versions.items():  # interleaved
                runs[name].append(run_one(py, checkout, args, weights, work, f"{name}{k}"))
                r = runs[name][-1]
                print(f"{name} #{k + 1}: cold {r['cold_s']:.1f} s, warm {r['warm_s']:.3f} s, "
                      f"{r['bytes']:,} bytes", file=sys.stderr)
        results = {name: _best(rs) for name, rs in runs.items()}
        print(f"{args.data}: {results['after']['n']} rows x {results['after']['dim']}, "
              f"{args.backbone} at {args.input_size} px; features in memory "
              f"{results['after']['feature_bytes']:,} bytes\n")
        print(table(results))
        if "before" in results:
            b, a = results["before"], results["after"]
            diff = float(np.max(np.abs(np.load(a["npy"]) - np.load(b["npy"]))))
            print(f"\nafter / before: cache bytes {a['bytes'] / b['bytes']:.3f}, "
                  f"cold time {a['cold_s'] / b['cold_s']:.3f}; warm / cold: before "
                  f"{b['warm_s'] / b['cold_s']:.4f}, after {a['warm_s'] / a['cold_s']:.4f}; "
                  f"rows max abs diff {diff:.3g}")


if __name__ == "__main__":
    main()
