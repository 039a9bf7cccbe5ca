"""How long the backbone graph's export takes, and how fast the graph runs: featx's own writer
(:mod:`featx.extract.onnx_writer`) against Keras' exporter (tf2onnx), in the same run.

For each backbone (EfficientNet-Lite0/1/2 by default, at their native size, ``pooling="avg"``)
and each tap setting (the last map alone, and ``layers=[-1, -2, -3, -4]``), the Keras model is
built once, then:

(a) export seconds: featx's writer (graph built in memory, saved; best of ``--repeats``) and
    Keras' exporter (the model called once, as Keras needs, then ``model.export``; once, it takes
    seconds), and their ratio;
(b) forward speed of both graphs on ONNX Runtime with featx's session options
    (:class:`featx.extract.graphs.OnnxBackbone`) on the same batch of decoded photos
    (clothing-mini, featx's decode at the native size), alternating the two graphs over
    ``--rounds`` rounds: images per second (best round) and the ratio writer / Keras;
(c) the largest difference of both graphs' features from the Keras model's ``predict``,
    relative to the features' scale.

Usage (from the repository root; ``--weights imagenet`` reads the converted weights of the cache)::

    FEATX_CACHE_DIR=/work/shared-cache .venv/bin/python benchmarks/export_bench.py
    .venv/bin/python benchmarks/export_bench.py --weights none --backbones mobilenet_v2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TAPS = {"plain": None, "taps4": [-1, -2, -3, -4]}


def photos(size: tuple[int, int], n: int) -> np.ndarray:
    """``n`` photos of the bundled clothing-mini set, decoded by featx at ``size``, float32."""
    from featx.datasets import load_clothing_mini
    from featx.images import DecodePool

    paths = list(load_clothing_mini()["train"].paths[:n])
    with DecodePool(size) as pool:
        images = [img for _, batch, _ in pool.imap(paths) for img in batch]
    return np.stack(images).astype(np.float32)


def best_seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(name: str, taps: str, args, out: Path) -> dict:
    import json

    from featx.extract.config import ExtractorConfig
    from featx.extract.graphs import ONNX_OPSET, OnnxBackbone, build_keras, export_onnx
    from featx.extract.onnx_writer import write_onnx
    from featx.utils.threads import compute_threads

    weights = None if args.weights == "none" else args.weights
    config = ExtractorConfig(name, weights=weights, layers=TAPS[taps])
    model = build_keras(config)
    mine, theirs = out / f"{name}-{taps}-featx.onnx", out / f"{name}-{taps}-keras.onnx"
    t_writer = best_seconds(lambda: write_onnx(model, mine, ONNX_OPSET), args.repeats)
    h, w = config["input_size"]
    start = time.perf_counter()
    model.predict_on_batch(np.zeros((1, h, w, 3), np.float32))  # Keras exports called models
    export_onnx(model, theirs)
    t_keras = time.perf_counter() - start

    batch = photos((h, w), args.batch)
    reference = np.asarray(model.predict(batch, batch_size=args.batch, verbose=0))
    threads = args.threads or compute_threads()
    graphs = {"featx": OnnxBackbone(mine, threads), "keras": OnnxBackbone(theirs, threads)}
    speed = {k: 0.0 for k in graphs}
    errors = {}
    for k, g in graphs.items():  # one warm-up run each, and the features to compare
        errors[k] = float(np.abs(g.predict_on_batch(batch) - reference).max()
                          / np.abs(reference).max())
    for _ in range(args.rounds):
        for k, g in graphs.items():
            seconds = best_seconds(lambda g=g: g.predict_on_batch(batch), 1)
            speed[k] = max(speed[k], len(batch) / seconds)
    row = {"backbone": name, "taps": taps, "size": h, "export_s_featx": round(t_writer, 3),
           "export_s_keras": round(t_keras, 2), "export_speedup": round(t_keras / t_writer, 1),
           "img_s_featx": round(speed["featx"], 1), "img_s_keras": round(speed["keras"], 1),
           "forward_ratio": round(speed["featx"] / speed["keras"], 3),
           "max_rel_err_featx": f"{errors['featx']:.1e}",
           "max_rel_err_keras": f"{errors['keras']:.1e}", "threads": threads}
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+",
                        default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    parser.add_argument("--taps", nargs="+", choices=sorted(TAPS), default=sorted(TAPS))
    parser.add_argument("--weights", default="imagenet", help="imagenet, none or a path")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="alternating forward rounds")
    parser.add_argument("--repeats", type=int, default=3, help="writer exports (best is kept)")
    parser.add_argument("--threads", type=int, default=0, help="0: featx's compute threads")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="featx-export-bench-") as tmp:
        for name in args.backbones:
            for taps in args.taps:
                rows.append(run(name, taps, args, Path(tmp)))
    print(f"\n{'backbone':20} {'taps':6} {'export featx s':>14} {'keras s':>8} {'x':>6} "
          f"{'fwd featx img/s':>15} {'keras img/s':>11} {'ratio':>6}")
    for r in rows:
        print(f"{r['backbone']:20} {r['taps']:6} {r['export_s_featx']:14.3f} "
              f"{r['export_s_keras']:8.2f} {r['export_speedup']:6.1f} {r['img_s_featx']:15.1f} "
              f"{r['img_s_keras']:11.1f} {r['forward_ratio']:6.3f}")


if __name__ == "__main__":
    main()
