"""Acceptance benchmark of ``featx inspect`` (docs/inspect.md): known problems injected into a
temporary copy of clothing-small, found again from the cached features.

Injected (seeded): 5% of the training labels flipped (the file moved to another class folder of
the copy); 30 training photos copied into test after a 0.9x resize and a JPEG re-encode at quality
70; 20 training photos copied into test byte for byte. Printed: the label-error ranking's AUROC
and precision among the top 150 for featx's confident-learning score and for cleanlab on the same
out-of-fold probabilities; the recall of the exact copies; the near-duplicate leak recall and
precision; the warm ``featx inspect`` time on the untouched data. ``--scale`` also times the
neighbour search on 10k and 50k synthetic feature rows.

    FEATX_CACHE_DIR=/work/shared-cache python benchmarks/inspect_bench.py [--scale]

The original data is never changed: everything happens in a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "clothing-small"


def _auroc(score_wrong: np.ndarray, wrong: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(wrong, score_wrong))


def _precision_at(score_wrong: np.ndarray, wrong: np.ndarray, k: int) -> float:
    top = np.argsort(-score_wrong, kind="stable")[:k]
    return float(wrong[top].mean())


def inject(src: Path, dst: Path, seed: int, flip: float, n_near: int, n_exact: int) -> dict:
    """Copy ``src`` to ``dst`` with the problems injected; return what was injected."""
    from PIL import Image

    shutil.copytree(src, dst)
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in (dst / "train").iterdir() if p.is_dir())
    train = sorted(p for c in classes for p in (dst / "train" / c).iterdir() if p.is_file())
    order = rng.permutation(len(train))
    n_flip = round(flip * len(train))
    flipped = {}
    for i in order[:n_flip]:
        p = train[i]
        other = rng.choice([c for c in classes if c != p.parent.name])
        q = dst / "train" / other / p.name
        p.rename(q)
        flipped[str(q)] = p.parent.name
    near, exact = {}, {}
    for i in order[n_flip:n_flip + n_near]:
        p = train[i]
        image = Image.open(p).convert("RGB")
        image = image.resize((round(image.width * 0.9), round(image.height * 0.9)),
                             Image.BILINEAR)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=70)
        q = dst / "test" / p.parent.name / f"leak-{p.stem}.jpg"
        q.write_bytes(buf.getvalue())
        near[str(q)] = str(p)
    for i in order[n_flip + n_near:n_flip + n_near + n_exact]:
        p = train[i]
        q = dst / "test" / p.parent.name / f"copy-{p.name}"
        shutil.copyfile(p, q)
        exact[str(q)] = str(p)
    return {"flipped": flipped, "near": near, "exact": exact}


def cleanlab_issues(proba, labels):
    """cleanlab's answer on the same probabilities: ``(quality, flagged)``:
    ``cleanlab.rank.get_label_quality_scores`` (its default, self-confidence) and
    ``cleanlab.filter.find_label_issues`` (its default filter, ``prune_by_noise_rate``)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    p = np.asarray(proba, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    return (np.asarray(get_label_quality_scores(labels, p)),
            np.asarray(find_label_issues(labels, p), dtype=bool))


def labels_part(found, injected, k: int) -> None:
    from featx.audit import label_scores

    rows = found.rows["train"]
    wrong = np.array([r["path"] in injected["flipped"] for r in rows])
    proba = found.proba["train"]
    given = np.array([found.class_names.index(r["given_label"]) for r in rows])
    ours, _, flagged = label_scores(proba, given)
    try:
        quality, cl_flagged = cleanlab_issues(proba, given)
    except ImportError:
        print("(cleanlab is not installed: `pip install cleanlab` to compare with it)")
        quality, cl_flagged = None, None
    print(f"\nlabel errors: {wrong.sum()} flipped of {len(rows)} training images "
          f"(out-of-fold probabilities of the probe, the same for both)")
    print(f"| ranking | AUROC | precision@{k} | flagged | precision of flagged | recall of "
          "flagged |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    n = np.arange(len(given))
    others = proba.copy()
    others[n, given] = -1
    rankings = [("featx (confident learning: 1 - adjusted self-confidence)", ours, flagged),
                ("cleanlab (get_label_quality_scores; find_label_issues)",
                 None if quality is None else -quality, cl_flagged),
                ("plain self-confidence, 1 - p_given", 1 - proba[n, given], None),
                ("normalised margin, max_other p - p_given", others.max(1) - proba[n, given],
                 None)]
    for name, s, f in rankings:
        if s is None:
            continue
        extra = (f"{f.sum()} | {wrong[f].mean():.3f} | {f[wrong].mean():.3f}" if f is not None
                 else " | |")
        print(f"| {name} | {_auroc(s, wrong):.4f} | {_precision_at(s, wrong, k):.3f} | "
              f"{extra} |")


def leaks_part(found, injected) -> None:
    exact_rows = [r for r in found.findings if r["kind"] == "exact_duplicate"]
    got_exact = {r["path"] for r in exact_rows if injected["exact"].get(r["path"]) ==
                 r["other_path"]}
    leaks = [r for r in found.findings if r["kind"] == "leak" and r["split"] == "test"]
    near_found = {r["path"] for r in leaks if injected["near"].get(r["path"]) == r["other_path"]}
    true_leaks = set(injected["near"]) | set(injected["exact"])
    flagged = {r["path"] for r in leaks}
    false = sorted(flagged - true_leaks)
    print(f"\n{found.calibration.summary()}")
    print(f"exact copies found: {len(got_exact)}/{len(injected['exact'])} "
          f"(recall {len(got_exact) / len(injected['exact']):.3f})")
    print(f"near-duplicate leaks found: {len(near_found)}/{len(injected['near'])} "
          f"(recall {len(near_found) / len(injected['near']):.3f}); test images flagged as "
          f"leaks: {len(flagged)}, of them untouched test images: {len(false)} (precision "
          f"{len(flagged & true_leaks) / max(1, len(flagged)):.3f})")
    for p in false[:5]:
        print("  flagged untouched:", p)


def warm_cli(data: Path, out: Path, env: dict) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a warm ``featx inspect`` command."""
    import resource

    cmd = [sys.executable, "-m", "featx.cli", "inspect", str(data), "--out", str(out), "-q"]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)  # warms the cache
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def scale_part(sizes=(10_000, 50_000), dim: int = 1280, k: int = 8, seed: int = 0,
               exact_up_to: int = 50_000) -> None:
    from featx.audit import nearest, unit_rows
    from featx.utils.threads import blas_limit, blas_threads

    rng = np.random.default_rng(seed)
    print(f"\nneighbour search, synthetic rows (d={dim}, k={k}, {blas_threads()} BLAS thread(s)):")
    print("| rows | search | seconds | rows/s |")
    print("| ---: | --- | ---: | ---: |")
    for n in sizes:
        centres = np.abs(rng.normal(size=(50, dim))).astype(np.float32)
        x = centres[rng.integers(0, 50, n)] + rng.gamma(1.0, 0.5, (n, dim)).astype(np.float32)
        u = unit_rows(x)
        for label, above in (("exact (brute force)", 10**9), ("PCA-128 candidates, exact "
                                                              "re-score", 0)):
            if above == 10**9 and n > exact_up_to:
                continue
            with blas_limit():
                t = time.perf_counter()
                nearest(u, u, k, same=True, pca_above=above)
                s = time.perf_counter() - t
            print(f"| {n} | {label} | {s:.1f} | {n / s:.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--top", type=int, default=150)
    ap.add_argument("--scale", action="store_true", help="also time 10k and 50k synthetic rows")
    ap.add_argument("--scale-only", action="store_true")
    args = ap.parse_args()
    if args.scale_only:
        scale_part()
        return
    import featx

    with tempfile.TemporaryDirectory(prefix="featx-inspect-bench-") as tmp:
        copy = Path(tmp) / "clothing-small-injected"
        injected = inject(args.data, copy, args.seed, 0.05, 30, 20)
        t = time.perf_counter()
        found = featx.inspect(str(copy), folds=args.folds, seed=args.seed)
        print(f"featx.inspect on the injected copy: {time.perf_counter() - t:.1f} s, "
              f"{found.backbone_passes} backbone passes (the 30 re-encoded files, and the "
              f"calibration's re-encodes when not cached); {found!r}")
        labels_part(found, injected, args.top)
        leaks_part(found, injected)
        env = dict(os.environ)
        wall, cpu = warm_cli(args.data, Path(tmp) / "inspect-untouched", env)
        print(f"\nwarm `featx inspect {args.data.name} --out DIR`: {wall:.1f} s wall, "
              f"{cpu:.1f} s CPU (user + system; whole command, Python start-up included; load "
              f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        from featx.cache import cache_rm

        cache_rm(f"{copy.name}-*")  # the injected copy's dataset files (its rows are shared)
    if args.scale:
        scale_part()


if __name__ == "__main__":
    main()
