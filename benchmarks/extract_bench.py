"""Extraction throughput: naive Keras pipeline vs featx (cold and warm cache) vs the ceilings.

Run from the repository root::

    python benchmarks/extract_bench.py                       # all 3,068 clothing-small train images
    python benchmarks/extract_bench.py --limit 256           # a quick run
    python benchmarks/extract_bench.py --cache-only          # rows (c) and (e) only: warm / cold
    KERAS_BACKEND=jax python benchmarks/extract_bench.py

Rows (images/s; time for the whole set):
  (a) naive: ``keras.utils.image_dataset_from_directory`` + ``model.predict`` (model build included)
  (b) backbone alone on pre-decoded arrays, the fastest Keras forward found (compute ceiling)
  (b') the same on ONNX Runtime (the graph Keras exports; featx's ``runtime="onnxruntime"``)
  (d) featx decode + resize alone on all cores (input ceiling)
  (c) featx ``extract_features`` end to end on Keras, cold cache (model build included)
  (c') the same on ONNX Runtime (the graph's one-time export is timed apart: it is cached beside
       the converted weights, as the weights conversion is)
  (e) the same call again, warm cache (the median of ``--warm-repeats`` calls; every call reads
      the whole dataset file and checks its shapes and every row's digest)
and the ratios c / L with L = 1 / (1/b + 1/d) (both stages sharing the CPU), c' / L' with
L' = 1 / (1/b' + 1/d), c / a, c' / a, e / c' (time; the goal is e / c' <= 0.02).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _time(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def forward_variants(model, x: np.ndarray, batch_sizes=(32, 64), ways=None) -> dict[str, float]:
    """img/s of each way to run the model on pre-decoded float batches (after one warm-up);
    ``ways`` keeps only the named ones (``("predict_on_batch",)`` for an ONNX Runtime model)."""
    import keras

    allowed = ways
    ways = {"predict_on_batch": lambda b: model.predict_on_batch(b),
            "model(x) eager": lambda b: model(b, training=False),
            "predict": lambda b: model.predict(b, batch_size=len(b), verbose=0)}
    if allowed is not None:
        ways = {k: v for k, v in ways.items() if k in allowed}
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fast = tf.function(lambda b: model(b, training=False), reduce_retracing=True)
        ways["tf.function"] = lambda b: fast(b)
    if allowed is None and keras.backend.backend() == "jax":
        import jax

        jitted = jax.jit(lambda t, n, b: model.stateless_call(t, n, b, training=False)[0])
        # read the variables per call: Keras' own predict step may replace their buffers
        ways["jax.jit stateless_call"] = lambda b: jitted(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables], b)
    out = {}
    for bs in batch_sizes:
        batches = [x[i : i + bs] for i in range(0, len(x) - bs + 1, bs)]
        for name, fn in ways.items():
            np.asarray(fn(batches[0]))  # trace / warm up
            t, _ = _time(lambda: [np.asarray(fn(b)) for b in batches])  # noqa: B023
            out[f"{name} @ {bs}"] = len(batches) * bs / t
    return out


def cold_warm(ds, args, weights, size, runtime="keras") -> tuple[float, float, float]:
    """Seconds of (c) a cold ``extract_features`` (model build included), (e) a warm one (the
    median of ``args.warm_repeats``), and of reading + checking the dataset file alone."""
    from featx.extract import FeatureSet, extract_features, forward_pass_count
    from featx.extract import forward as _forward

    cache = Path(tempfile.mkdtemp(prefix="featx-bench-"))

    def run():
        return extract_features(ds, args.backbone, weights=weights, input_size=size, cache=cache,
                                batch_size=args.batch_size, verbose=0, runtime=runtime)

    try:
        _forward.MODELS.clear()
        f0 = forward_pass_count()
        tc, fs = _time(run)
        warm = []
        for _ in range(max(1, args.warm_repeats)):
            te, fs2 = _time(run)
            warm.append(te)
        assert forward_pass_count() - f0 == len(ds) and len(fs2) == len(fs) == len(ds)
        t_load = float(np.median([_time(lambda: FeatureSet.load(fs.path))[0]
                                  for _ in range(max(1, args.warm_repeats))]))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return tc, float(np.median(warm)), t_load


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared/datasets/clothing-small/train"))
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--weights", default="imagenet", help="'imagenet' or 'none'")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=None, help="use the first N images (shuffled)")
    ap.add_argument("--forward-sample", type=int, default=512)
    ap.add_argument("--cache-only", action="store_true",
                    help="time only (c) cold and (e) warm extraction, and print e / c")
    ap.add_argument("--warm-repeats", type=int, default=5, help="warm calls timed (median)")
    args = ap.parse_args(argv)

    import keras

    from featx.backbones import load_backbone
    from featx.data import ImageDataset
    from featx.images import DecodePool, default_workers

    weights = None if args.weights.lower() == "none" else args.weights
    if weights is not None:
        from featx.backbones import weights_fingerprint

        try:
            weights_fingerprint(args.backbone, weights)
        except Exception as exc:  # speed does not depend on the weights' values
            print(f"note: weights={weights!r} unusable here ({exc}); timing weights=None")
            weights = None
    size = (args.input_size, args.input_size)
    full = ImageDataset.from_directory(args.data, verify="none", name="bench")
    idx = np.random.default_rng(0).permutation(len(full))[: args.limit or len(full)]
    ds = full.subset(np.sort(idx))
    ds.name = "bench"
    n = len(ds)
    print(f"backend={keras.backend.backend()} backbone={args.backbone} weights={weights} "
          f"size={size} batch={args.batch_size} images={n} cores={default_workers()}")

    if args.cache_only:
        for runtime in ("keras", "onnxruntime"):
            tc, te, t_load = cold_warm(ds, args, weights, size, runtime)
            print(f"\n{runtime}: (c) cold {tc:.2f} s ({n / tc:,.1f} img/s)   (e) warm {te:.4f} s "
                  f"(of which reading + checking the dataset file {t_load:.4f} s)")
            print(f"e / c (time) = {te / tc:.4f}   (goal <= 0.02)")
        return

    # (a) naive Keras pipeline (reads the folder itself; limited by taking whole batches)
    def naive():
        model = load_backbone(args.backbone, weights=weights, input_size=size)
        data = keras.utils.image_dataset_from_directory(
            args.data, image_size=size, batch_size=args.batch_size, shuffle=False, verbose=False)
        steps = -(-n // args.batch_size)
        return model.predict(data.take(steps), verbose=0)

    ta, out_a = _time(naive)
    rate_a = len(out_a) / ta

    # (b) compute ceiling on pre-decoded arrays
    model = load_backbone(args.backbone, weights=weights, input_size=size)
    with DecodePool(size, n_workers=default_workers()) as pool:
        sample = [im for _, ims, _ in pool.imap(ds.paths[: args.forward_sample]) for im in ims]
    x = np.stack(sample).astype(np.float32)
    variants = forward_variants(model, x, (args.batch_size, 2 * args.batch_size))
    best = max(variants, key=variants.get)
    rate_b = variants[best]

    # (d) input ceiling: featx read + hash + decode + resize, threads vs processes
    decode = {}
    for kind, workers in (("thread", default_workers()), ("thread", 1), ("process",
                                                                          default_workers())):
        with DecodePool(size, n_workers=workers, kind=kind) as pool:
            next(iter(pool.imap(ds.paths[:8])))  # start the workers
            t, k = _time(lambda: sum(len(ims) for _, ims, _ in pool.imap(ds.paths)))  # noqa: B023
        decode[f"{kind} x{workers}"] = k / t
    rate_d = decode[f"thread x{default_workers()}"]

    # (b') the forward alone on ONNX Runtime, same arrays; its one-time graph export timed apart
    from featx.extract.config import ExtractorConfig
    from featx.extract.graphs import OnnxBackbone, graph_path, onnx_graph
    from featx.utils.threads import compute_threads

    config = ExtractorConfig(args.backbone, weights=weights, input_size=size)
    graph_path(config).unlink(missing_ok=True)
    t_export, path = _time(lambda: onnx_graph(config))
    ort_model = OnnxBackbone(path, compute_threads())
    ort_rate = forward_variants(ort_model, x, (args.batch_size, 2 * args.batch_size),
                                ways=("predict_on_batch",))
    best_o = max(ort_rate, key=ort_rate.get)
    rate_bo = ort_rate[best_o]
    ref = np.asarray(model.predict_on_batch(x[: args.batch_size]))
    got = ort_model.predict_on_batch(x[: args.batch_size])
    rel = float(np.abs(got - ref).max() / np.abs(ref).max())

    # (c) featx cold on Keras, (c') on ONNX Runtime, (e) warm
    tc, _, _ = cold_warm(ds, args, weights, size, "keras")
    tco, te, _ = cold_warm(ds, args, weights, size, "onnxruntime")
    rate_c, rate_co, rate_e = n / tc, n / tco, n / te
    ceiling = 1.0 / (1.0 / rate_b + 1.0 / rate_d)
    ceiling_o = 1.0 / (1.0 / rate_bo + 1.0 / rate_d)

    print("\nforward variants (img/s):")
    for k, v in sorted({**variants, **{f"onnxruntime {k}": v for k, v in ort_rate.items()}}
                       .items(), key=lambda kv: -kv[1]):
        print(f"  {k:32s} {v:8.1f}")
    print("decode + resize (img/s):")
    for k, v in decode.items():
        print(f"  {k:32s} {v:8.1f}")
    print("\n| row | what | img/s | time (s) |\n| --- | --- | ---: | ---: |")
    rows = [("a", "naive image_dataset_from_directory + predict", rate_a),
            ("b", f"backbone alone, Keras {best}", rate_b),
            ("b'", f"backbone alone, ONNX Runtime {best_o}", rate_bo),
            ("d", "featx decode+resize alone", rate_d),
            ("c", "featx extract_features, cold cache, Keras", rate_c),
            ("c'", "featx extract_features, cold cache, ONNX Runtime", rate_co),
            ("e", "featx extract_features, warm cache", rate_e)]
    for key, what, rate in rows:
        print(f"| {key} | {what} | {rate:,.1f} | {n / rate:.2f} |")
    print(f"\none-time graph export: {t_export:.1f} s;  max |b' - b| / max |b| = {rel:.1e}")
    print(f"L = 1/(1/b + 1/d) = {ceiling:.1f} img/s   L' = 1/(1/b' + 1/d) = {ceiling_o:.1f} img/s")
    print(f"c / L = {rate_c / ceiling:.3f}   c' / L' = {rate_co / ceiling_o:.3f}   (goal >= 0.9)")
    print(f"c / a = {rate_c / rate_a:.3f}   c' / a = {rate_co / rate_a:.3f}   (goal c' / a >= 2)")
    print(f"e / c' (time) = {te / tco:.4f}   (goal <= 0.02)")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
