"""Transfer quality: each feature technique's gain over the EfficientNet-Lite0 probe (issue #17).

Every row is a feature choice (backbones concatenated, layer taps, views with test-time
averaging) with the same head (StandardScaler + logistic regression, featx's ``logreg``
defaults); the columns are its cross-validated accuracy on the training split (what featx's
``select`` step chooses by), its test accuracy, the gain over the Lite0 probe, the backbone
passes per image, the cold extraction seconds of the (backbone, view) pairs it needs, and its
head seconds. The last row is the choice made by cross-validation on the training split only.

Taps of a backbone come from one pass (all candidate taps extracted once, then column slices),
so a tap row costs no more passes than the probe; a view costs one pass per image.

    python benchmarks/quality_bench.py --data clothing --cache /tmp/featx_q/cache
    python benchmarks/quality_bench.py --data fashion-mnist --train 2000 --test 1000

Extraction seconds are measured when a (backbone, view) pair is extracted and kept next to the
cache (``quality_bench_timings.json``), so a rerun on a warm cache still shows them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from featx.comparison import FeatureBank, FeatureChoice, cv_score, fit_views, predict_views
from featx.evaluate import score_predictions
from featx.heads import make_head

L0, L1, L2 = "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"
ALL = (L0, L1, L2)
TAPS = (-1, -2, -3, -4)  # every candidate tap, extracted in one pass per backbone
FLIP = ("none", "flip")
#: Technique -> (backbones, taps, views). The first row is the baseline.
TECHNIQUES: dict[str, tuple] = {
    "Lite0 probe (baseline)": ((L0,), (-1,), ("none",)),
    "Lite1 (backbone swap)": ((L1,), (-1,), ("none",)),
    "Lite2 (backbone swap)": ((L2,), (-1,), ("none",)),
    "Lite0 taps [-1,-2,-3]": ((L0,), (-1, -2, -3), ("none",)),
    "Lite0 taps [-2,-3,-4]": ((L0,), (-2, -3, -4), ("none",)),
    "Lite0 + flip view, TTA": ((L0,), (-1,), FLIP),
    "Lite0+1+2 concatenated": (ALL, (-1,), ("none",)),
    "concat + taps [-1,-2]": (ALL, (-1, -2), ("none",)),
    "concat + flip view, TTA": (ALL, (-1,), FLIP),
    "concat + taps [-1,-2] + flip, TTA": (ALL, (-1, -2), FLIP),
}


def load(name: str, n_train: int, n_test: int) -> tuple[dict, dict]:
    """``(splits, extract kwargs)`` of a benchmark dataset."""
    if name == "clothing":
        from featx.sources import resolve_data

        splits = resolve_data(str(Path(__file__).resolve().parents[1].parent / "shared" /
                                  "datasets" / "clothing-small"))
        return {"train": splits["train"], "test": splits["test"]}, {}
    from featx.datasets import load_fashion_mnist

    data = load_fashion_mnist(_fashion_dir(), limit=max(n_train, n_test))
    return ({"train": data["train"].subset(range(n_train)),
             "test": data["test"].subset(range(n_test))},
            {"input_size": 96})  # 28 px upscaled, as pipelines/fashion_mnist.toml


def _fashion_dir() -> str | None:
    for d in ("/usr/share/datasets/fashion-mnist", "/usr/share/fashion-mnist"):
        if Path(d).exists():
            return d
    return None


def _report_rows(path: str, data: str, size: str, folds: int) -> dict:
    """Rows of a pipeline report whose candidates were cross-validated with ``folds`` folds."""
    report = json.loads(Path(path).read_text())
    if report["config"]["select"]["folds"] != folds:
        raise SystemExit(f"{path} used {report['config']['select']['folds']} folds, not {folds}")
    timings = report.get("timings", {})
    out = {}
    for r in report["results"]:
        if r.get("cv_score") is None or not r["name"].endswith("/logreg"):
            continue
        out[f"{data}:{size}:{folds}:{r['features']}"] = {
            "technique": "", "dim": r.get("n_features", 0), "cv": r["cv_score"],
            "test": r["accuracy"], "passes": r["passes_per_image"], "extract_s": float("nan"),
            "head_s": r["train_seconds"], "from": "run", "run_extract_s":
            timings.get("extract_s")}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=("clothing", "fashion-mnist"), default="clothing")
    ap.add_argument("--cache", default="/tmp/featx_q/cache")
    ap.add_argument("--train", type=int, default=2000, help="Fashion-MNIST training images")
    ap.add_argument("--test", type=int, default=1000, help="Fashion-MNIST test images")
    ap.add_argument("--folds", type=int, default=5, help="CV folds on the training split")
    ap.add_argument("--only", default="", help="comma-separated technique numbers (1-based)")
    ap.add_argument("--fresh", action="store_true",
                    help="recompute rows already measured (kept in quality_bench_rows.json next "
                         "to the cache, so several runs of --only fill one table)")
    ap.add_argument("--from-report", default="",
                    help="a report.json of `featx run` with the same candidates (e.g. "
                         "pipelines/clothing_best.toml): its cross-validated rows are taken as "
                         "measured (same head, folds and seed), marked '(run)'")
    args = ap.parse_args(argv)

    splits, extract_kw = load(args.data, args.train, args.test)
    picked = list(TECHNIQUES.items())
    if args.only:
        keep = {int(i) - 1 for i in args.only.split(",")} | {0}
        picked = [t for i, t in enumerate(picked) if i in keep]
    choices = {name: FeatureChoice(*spec) for name, spec in picked}
    timing_file = Path(args.cache) / "quality_bench_timings.json"
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    size = f"{len(splits['train'])}+{len(splits['test'])}"
    bank = FeatureBank(taps=list(TAPS))

    def need(c: FeatureChoice) -> None:
        """Extract (all taps, cached) the (backbone, view) pairs ``c`` uses, timing cold ones."""
        for b in c.backbones:
            for view in c.views:
                if ((b, None), view, "train") in bank.sets:
                    continue
                one = FeatureBank.extract(splits, [FeatureChoice((b,), TAPS, (view,))],
                                          cache=args.cache, verbose=0, **extract_kw)
                bank.sets.update(one.sets)
                if one.passes[(b, None)]:  # extracted now: a cold measurement
                    timing[f"{args.data}:{b}:{view}:{size}"] = round(one.seconds[(b, None)], 1)
                    timing_file.parent.mkdir(parents=True, exist_ok=True)
                    timing_file.write_text(json.dumps(timing, indent=1))

    rows_file = Path(args.cache) / "quality_bench_rows.json"
    done = json.loads(rows_file.read_text()) if rows_file.exists() and not args.fresh else {}
    if args.from_report:
        done.update(_report_rows(args.from_report, args.data, size, args.folds))
    rows = []
    for name, c in choices.items():
        key = f"{args.data}:{size}:{args.folds}:{c.name}"
        if key in done:
            rows.append({**done[key], "technique": name})
            if not rows[-1]["dim"]:
                need(c)
                rows[-1]["dim"] = bank.features(c, "test")[0].features.shape[1]
            continue
        need(c)
        tr, te = bank.features(c, "train"), bank.features(c, "test")
        y, yt = tr[0].labels, te[0].labels
        head = make_head("logreg", random_state=0, n_samples=len(y),
                         n_classes=len(tr[0].class_names))
        t = time.perf_counter()
        cv = cv_score(head, [f.features for f in tr], y, folds=args.folds)
        est = fit_views(head, [f.features for f in tr], y)
        acc = score_predictions(yt, predict_views(est, [f.features for f in te]))["accuracy"]
        keys = [f"{args.data}:{b}:{v}:{size}" for b in c.backbones for v in c.views]
        rows.append({"technique": name, "dim": tr[0].features.shape[1], "cv": cv, "test": acc,
                     "passes": c.passes_per_image,
                     "extract_s": sum(timing.get(k, float("nan")) for k in keys),
                     "head_s": time.perf_counter() - t})
        print(f"  {name}: cv {cv:.3f} test {acc:.3f}", flush=True)
        latest = json.loads(rows_file.read_text()) if rows_file.exists() else {}
        rows_file.write_text(json.dumps({**latest, key: rows[-1]}, indent=1))
    chosen = max(rows, key=lambda r: r["cv"])
    rows.append({**chosen, "technique": f"select by {args.folds}-fold CV on train -> "
                 f"{chosen['technique']}",
                 "passes": len({(b, v) for c in choices.values() for b in c.backbones
                                for v in c.views}),
                 "extract_s": sum(timing.get(f"{args.data}:{b}:{v}:{size}", float("nan"))
                                  for b, v in {(b, v) for c in choices.values()
                                               for b in c.backbones for v in c.views})})
    base = rows[0]["test"]
    n = len(splits["train"]) + len(splits["test"])
    print(f"\n{args.data}: {len(splits['train'])} train / {len(splits['test'])} test images, "
          f"head logreg, {args.folds}-fold CV on train\n")
    print("| technique | dim | passes/image | CV acc (train) | test acc | gain vs Lite0 | "
          f"extract s ({n} images, cold) | head s (CV + fit) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r.get("from") == "run":
            r["technique"] += " (run)"
        print(f"| {r['technique']} | {r['dim']} | {r['passes']} | {r['cv']:.3f} | "
              f"{r['test']:.3f} | {r['test'] - base:+.3f} | "
              f"{'cached' if r['extract_s'] != r['extract_s'] else round(r['extract_s'])} | "
              f"{r['head_s']:.1f} |")


if __name__ == "__main__":
    main()
