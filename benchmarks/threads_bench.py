"""Head fits beside a busy process: featx's thread budget against BLAS' default and one thread.

A logistic-regression head (featx's ``"logreg"`` row: StandardScaler + LogisticRegression) is fit
on the cached Lite0 features of clothing-small train (2,888+ rows x 1,280; extracted once into
the featx cache), three ways, first on a quiet machine, then beside one busy process (a NumPy
matrix-product loop on every core, as an extraction or another fit would be):

  default   BLAS' own thread count (one per core): what a plain scikit-learn fit does
  one       ``threadpoolctl.threadpool_limits(1)``: the reference of the issue's goal
  featx     ``featx.evaluate_heads`` (its fits run under ``featx.utils.threads.blas_limit``)

Run from the repository root::

    python benchmarks/threads_bench.py             # medians of 3 fits per row
    python benchmarks/threads_bench.py --repeats 5
    python benchmarks/threads_bench.py --extraction    # decode x compute threads of an extraction

``--extraction`` instead times a cold extraction (no cache) of every 6th clothing-small train photo
with Lite0 at 224 under several (decode threads, ONNX Runtime threads, spin-wait) settings, and
the Keras runtime, twice each, interleaved: how featx's default thread budget was chosen.

Prints a table of seconds and the goal's ratio: featx beside a busy process / one thread beside
a busy process (goal <= 1.5).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUSY = ("import numpy as np\n"
        "a = np.random.default_rng(0).random((1500, 1500))\n"
        "while True:\n    a = (a @ a) / 1500.0\n")


def features(data: str, cache):
    from featx.data import ImageDataset
    from featx.extract import extract_features

    ds = ImageDataset.from_directory(data, verify="none", name="clothing-small-train")
    return extract_features(ds, "efficientnet_lite0", cache=cache, verbose=1)


def fit_seconds(way: str, X, y, repeats: int) -> tuple[float, float]:
    """Median seconds of ``repeats`` fits done ``way``, and the last fit's train accuracy."""
    from threadpoolctl import threadpool_limits

    from featx.evaluate import evaluate_heads
    from featx.heads import make_head

    times, acc = [], float("nan")
    for _ in range(repeats):
        t = time.perf_counter()
        if way == "featx":
            table = evaluate_heads((X, y), (X, y), heads=["logreg"])
            acc = float(table[0]["accuracy"])
        else:
            limit = 1 if way == "one" else None
            with threadpool_limits(limits=limit):
                head = make_head("logreg", random_state=0).fit(X, y)
            acc = float((head.predict(X) == y).mean())
        times.append(time.perf_counter() - t)
    return float(np.median(times)), acc


EXTRACTION = [("keras", 2, 2, "0"), ("onnxruntime", 2, 2, "1"), ("onnxruntime", 2, 2, "0"),
              ("onnxruntime", 1, 2, "0"), ("onnxruntime", 2, 1, "0"), ("onnxruntime", 3, 2, "0")]


def extraction_budget(data: str, repeats: int = 2) -> None:
    """img/s of a cold extraction per (runtime, decode, compute threads, spin) setting."""
    from featx.data import ImageDataset
    from featx.extract import extract_features, forward

    full = ImageDataset.from_directory(data, verify="none", name="threads")
    ds = full.subset(np.arange(0, len(full), 6))
    ds.name = "threads"

    def rate(runtime, decode, compute, spin) -> float:
        os.environ["FEATX_COMPUTE_THREADS"], os.environ["FEATX_ORT_SPIN"] = str(compute), spin
        forward.MODELS.clear()  # a session with these threads
        common = dict(weights="imagenet", cache=False, verbose=0, runtime=runtime,
                      n_workers=decode)
        extract_features(ds.subset(np.arange(32)), **common)  # build / load the model
        t = time.perf_counter()
        extract_features(ds, **common)
        return len(ds) / (time.perf_counter() - t)

    rates = {c: [] for c in EXTRACTION}
    for _ in range(repeats):
        for c in EXTRACTION:
            rates[c].append(rate(*c))
    print(f"{len(ds)} images; img/s per run\n")
    print("| runtime | decode threads | compute threads | spin-wait | img/s |")
    print("| --- | ---: | ---: | --- | --- |")
    for (runtime, dec, comp, spin), v in rates.items():
        shown = "-" if runtime == "keras" else spin == "1"
        print(f"| {runtime} | {dec} | {comp if runtime != 'keras' else '-'} | {shown} | "
              f"{', '.join(f'{x:.1f}' for x in v)} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared/datasets/clothing-small/train"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache", default=None, help="feature cache folder (default: featx's)")
    ap.add_argument("--extraction", action="store_true",
                    help="time the extraction's thread settings instead of head fits")
    args = ap.parse_args(argv)
    if args.extraction:
        extraction_budget(args.data)
        return

    from threadpoolctl import threadpool_info

    fs = features(args.data, args.cache)
    X, y = fs.features, fs.labels
    blas = [(p["internal_api"], p["num_threads"]) for p in threadpool_info()
            if p["user_api"] == "blas"]
    print(f"features {X.shape}, cores {os.cpu_count()}, BLAS {blas}")
    ways = ("default", "one", "featx")
    quiet = {w: fit_seconds(w, X, y, args.repeats) for w in ways}
    busy_proc = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(2.0)  # let it spin up
        busy = {w: fit_seconds(w, X, y, args.repeats) for w in ways}
    finally:
        busy_proc.kill()
        busy_proc.wait()
    print("\n| fit | quiet (s) | beside a busy process (s) | train accuracy |")
    print("| --- | ---: | ---: | ---: |")
    for w in ways:
        print(f"| {w} | {quiet[w][0]:.2f} | {busy[w][0]:.2f} | {busy[w][1]:.3f} |")
    print(f"\nbusy: default / one = {busy['default'][0] / busy['one'][0]:.2f}   "
          f"featx / one = {busy['featx'][0] / busy['one'][0]:.2f}   (goal <= 1.5)")
    print(f"quiet: featx / default = {quiet['featx'][0] / quiet['default'][0]:.2f}   "
          "(the cost of one thread on an idle machine)")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
