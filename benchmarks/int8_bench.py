"""Does an int8 (quantised) backbone graph on ONNX Runtime pay on this CPU? Speed and accuracy.

For each backbone, the float32 graph featx runs under ``runtime="onnxruntime"``
(:func:`featx.extract.graphs.onnx_graph`) is quantised with ``onnxruntime.quantization``:

- ``static-qdq``: ``quantize_static``, QDQ format, per-channel int8 weights, uint8 activations,
  MinMax calibration on ``--calib`` training images (decoded as featx decodes them);
- ``static-qdq-rr``: the same with ``reduce_range=True`` (7-bit weights: no saturation of AVX2's
  ``vpmaddubsw`` on CPUs without VNNI);
- ``static-qop``: ``quantize_static``, QOperator format (``QLinearConv``), per-channel;
- ``static-qdq-u8u8``: QDQ with uint8 weights too (MLAS' u8u8 kernels: no saturation, no
  ``vpmaddubsw``);
- ``dynamic``: ``quantize_dynamic`` (uint8 weights, activations quantised per batch at run time).

Then, in the same run:

(a) forward speed of each graph on the same decoded images, batch 32, ONNX Runtime with featx's
    session options (:class:`featx.extract.graphs.OnnxBackbone`), with one intra-op thread and
    with featx's thread count, interleaved rounds, best of ``--repeats``: the ratio int8 / float32
    of images per second (wall clock) and of images per CPU second (less sensitive to other
    processes on a shared machine);
(b) linear-probe accuracy (featx's ``logreg`` head, one BLAS thread) on the test split, trained
    on the train split, with float32 features (featx's own cache: ``extract_features``) and with
    each int8 graph's features; the paired count of test images whose prediction changed.

Datasets: clothing-small (train -> test, at the backbone's native size) and Fashion-MNIST
(the first ``--fashion-limit`` images of each split, at ``--fashion-size`` px as featx's
``fashion_mnist`` pipeline runs it), when its IDX files are found (``--fashion-dir``).

The keep rule: int8 is kept only if it is >= 1.5x as fast as float32 with <= 0.5 point of
probe-accuracy loss on both data sets.

Usage (from the repository root; the float32 features and graphs come from a shared cache)::

    FEATX_CACHE_DIR=/work/shared-cache .venv/bin/python benchmarks/int8_bench.py
    FEATX_CACHE_DIR=/work/shared-cache .venv/bin/python benchmarks/int8_bench.py \\
        --backbones efficientnet_lite0 efficientnet_lite1 --train-limit 500 --test-limit 372
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

VARIANTS = ("static-qdq", "static-qdq-rr", "static-qop", "static-qdq-u8u8", "dynamic")
#: The variants probed by default: the fast ones (u8u8 and dynamic run at a fraction of float32's
#: speed on AVX2 without VNNI, so their accuracy cannot rescue them; ``--probe`` adds them).
PROBED = ("static-qdq", "static-qdq-rr", "static-qop")


def decoded_batches(paths, size, batch_size=32):
    """featx's decode (Pillow, bilinear) of ``paths`` at ``size``, as float32 batches."""
    from featx.images import DecodePool

    buf, n = [], 0
    with DecodePool(size) as pool:
        for _, images, reasons in pool.imap(paths):
            if any(r is not None for r in reasons):
                raise SystemExit(f"undecodable images among {paths[n:n + len(reasons)]}")
            buf.extend(images)
            n += len(reasons)
            while len(buf) >= batch_size:
                yield np.stack(buf[:batch_size]).astype(np.float32)
                buf = buf[batch_size:]
    if buf:
        yield np.stack(buf).astype(np.float32)


def stratified(labels, limit, seed=0):
    """Indices of at most ``limit`` rows in the class proportions of ``labels`` (sorted)."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(labels)), train_size=limit, stratify=labels,
                              random_state=seed)
    return np.sort(idx)


def quantise(fp32: Path, out_dir: Path, calib_batches, variants) -> dict[str, Path]:
    """The int8 graphs of ``fp32`` (one file per variant) and the seconds each took."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calib_batches)

        def get_next(self):
            batch = next(self._it, None)
            return None if batch is None else {name: batch}

    pre = out_dir / "pre.onnx"
    t = time.perf_counter()
    if not pre.exists():
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        print(f"  pre-processing (shape inference, fusions): {time.perf_counter() - t:.1f} s")
    out = {}
    for v in variants:
        target = out_dir / f"{v}.onnx"
        if target.exists():  # --graphs: quantised by an earlier run
            print(f"  {v}: quantised by an earlier run ({target})")
            out[v] = target
            continue
        t = time.perf_counter()
        if v == "dynamic":  # ConvInteger takes uint8 weights only on the CPU provider
            quantize_dynamic(str(pre), str(target), weight_type=QuantType.QUInt8,
                             per_channel=False)
        else:
            quantize_static(
                str(pre), str(target), Reader(),
                quant_format=QuantFormat.QOperator if v == "static-qop" else QuantFormat.QDQ,
                per_channel=True, reduce_range=v.endswith("-rr"),
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QUInt8 if v.endswith("u8u8") else QuantType.QInt8)
        print(f"  {v}: quantised in {time.perf_counter() - t:.1f} s "
              f"({target.stat().st_size / 1e6:.1f} MB; float32 {fp32.stat().st_size / 1e6:.1f} MB)")
        out[v] = target
    return out


def speed(models: dict, x: np.ndarray, batch_size: int, repeats: int
          ) -> tuple[dict[str, float], dict[str, float]]:
    """Images per second and images per CPU second of each model on the same batches: one
    warm-up, then ``repeats`` interleaved rounds, the best round of each kept."""
    batches = [x[i:i + batch_size] for i in range(0, len(x) - batch_size + 1, batch_size)]
    for m in models.values():
        m.predict_on_batch(batches[0])
    wall, cpu = {k: 0.0 for k in models}, {k: 0.0 for k in models}
    n = len(batches) * batch_size
    for _ in range(repeats):
        for k, m in models.items():
            t, c = time.perf_counter(), time.process_time()
            for b in batches:
                m.predict_on_batch(b)
            wall[k] = max(wall[k], n / (time.perf_counter() - t))
            cpu[k] = max(cpu[k], n / max(time.process_time() - c, 1e-9))
    return wall, cpu


def probe(train_x, train_y, test_x):
    """featx's ``logreg`` head fitted on the train rows; its test predictions."""
    from featx.heads import make_head
    from featx.utils.threads import blas_limit

    with blas_limit():
        return make_head("logreg", random_state=0).fit(train_x, train_y).predict(test_x)


def int8_features(models: dict, paths, size, batch_size) -> dict[str, np.ndarray]:
    out = {k: [] for k in models}
    for b in decoded_batches(paths, size, batch_size):
        for k, m in models.items():
            out[k].append(np.asarray(m.predict_on_batch(b)))
    return {k: np.concatenate(v) for k, v in out.items()}


def measure(label, backbone, size, train, test, args, work: Path) -> list[dict]:
    """Quantise ``backbone`` at ``size``, time it, and probe it on ``train`` -> ``test``."""
    from featx.extract import extract_features
    from featx.extract.config import ExtractorConfig
    from featx.extract.graphs import OnnxBackbone, onnx_graph
    from featx.utils.threads import compute_threads

    print(f"\n== {label}: {backbone} @ {size}px, {len(train)} train / {len(test)} test, "
          f"{compute_threads()} compute threads")
    t = time.perf_counter()
    kw = dict(weights="imagenet", input_size=size, runtime="onnxruntime", verbose=0,
              batch_size=args.batch_size)
    f_train = extract_features(train, backbone, **kw)
    f_test = extract_features(test, backbone, **kw)
    print(f"  float32 features (featx cache): {time.perf_counter() - t:.1f} s")

    config = ExtractorConfig(backbone, weights="imagenet", input_size=size)
    fp32 = onnx_graph(config)
    calib_idx = stratified(train.labels, args.calib, seed=1)
    calib = list(decoded_batches([train.paths[i] for i in calib_idx], (size, size), 16))
    folder = work / f"{label}-{backbone}-{size}"
    folder.mkdir(exist_ok=True)
    graphs = quantise(fp32, folder, calib, args.variants)

    threads = compute_threads()
    models = {"float32": OnnxBackbone(fp32, threads)}
    models.update({k: OnnxBackbone(p, threads) for k, p in graphs.items() if k in args.probe})
    # the same input pipeline as featx's: the float32 graph on our decode gives the cached rows
    x = np.concatenate(calib)
    ref = models["float32"].predict_on_batch(x[:16])
    cached = np.asarray(f_train.features)[calib_idx[:16]]
    rel = float(np.abs(ref - cached).max() / np.abs(cached).max())
    print(f"  float32 graph on this decode vs featx's cached rows: max rel diff {rel:.1e}")
    if rel > 1e-3:
        raise SystemExit("the decode here differs from featx's: the comparison would be unfair")

    x_speed = x[: args.speed_images]
    rates = {}
    for n_threads in sorted({1, threads}):
        timed = {"float32": OnnxBackbone(fp32, n_threads)}
        timed.update({k: OnnxBackbone(p, n_threads) for k, p in graphs.items()})
        wall, cpu = speed(timed, x_speed, args.batch_size, args.repeats)
        del timed
        for k in wall:
            rates[k, n_threads] = wall[k]
            rates[k, n_threads, "cpu"] = cpu[k]
    print(f"  speed, best of {args.repeats} interleaved rounds of {len(x_speed)} images "
          f"(batch {args.batch_size}); ratio to float32:")
    for k in ["float32", *graphs]:
        print(f"    {k:16s}" + "".join(
            f"  {t} thread(s): {rates[k, t]:6.1f} img/s x{rates[k, t] / rates['float32', t]:.2f}"
            f" (CPU time x{rates[k, t, 'cpu'] / rates['float32', t, 'cpu']:.2f})"
            for t in sorted({1, threads})))

    t = time.perf_counter()
    int8 = {k: m for k, m in models.items() if k != "float32"}
    tr8 = int8_features(int8, train.paths, (size, size), args.batch_size)
    te8 = int8_features(int8, test.paths, (size, size), args.batch_size)
    print(f"  int8 features of {len(train) + len(test)} images x {len(int8)} graphs: "
          f"{time.perf_counter() - t:.1f} s")

    y_tr, y_te = f_train.labels, f_test.labels
    p32 = probe(np.asarray(f_train.features), y_tr, np.asarray(f_test.features))
    acc32 = float(np.mean(p32 == y_te))
    f32 = np.asarray(f_test.features)
    t1, tn = 1, threads
    rows = []
    for k in ["float32", *graphs]:
        row = dict(data=label, backbone=backbone, size=size, graph=k,
                   img_s=rates[k, tn], ratio=rates[k, tn] / rates["float32", tn],
                   ratio1=rates[k, t1] / rates["float32", t1],
                   ratio_cpu=rates[k, tn, "cpu"] / rates["float32", tn, "cpu"],
                   acc=None, delta=None, changed=None, feat_rel=None)
        rows.append(row)
        if k == "float32":
            row.update(acc=acc32, delta=0.0, changed=0, feat_rel=0.0)
        if k not in int8:
            continue
        p8 = probe(tr8[k], y_tr, te8[k])
        acc8 = float(np.mean(p8 == y_te))
        row.update(acc=acc8, delta=100 * (acc8 - acc32), changed=int(np.sum(p8 != p32)),
                   feat_rel=float(np.linalg.norm(te8[k] - f32) / np.linalg.norm(f32)))
    for r in rows:
        if r["acc"] is not None:
            print(f"  {r['graph']:16s} probe acc {r['acc']:.4f} ({r['delta']:+.2f} pt, "
                  f"{r['changed']} of {len(y_te)} predictions changed), test features' relative "
                  f"error {r['feat_rel']:.3f}")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "clothing-small"))
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                    help="int8 graphs quantised and timed")
    ap.add_argument("--probe", nargs="+", default=list(PROBED), choices=VARIANTS,
                    help="int8 graphs whose features are extracted and probed")
    ap.add_argument("--train-limit", type=int, default=None,
                    help="clothing-small: a stratified sample of this many train images")
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--calib", type=int, default=320, help="calibration images (from train)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--speed-images", type=int, default=320, help="images per timed round")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--fashion-dir", default=None,
                    help="folder of Fashion-MNIST's IDX files (default: featx's search path)")
    ap.add_argument("--fashion-limit", type=int, default=5000,
                    help="first N images of each Fashion-MNIST split (0: skip Fashion-MNIST)")
    ap.add_argument("--fashion-size", type=int, default=96)
    ap.add_argument("--graphs", default=None,
                    help="keep the quantised graphs in this folder and reuse those found there "
                         "(default: a temporary folder); a subfolder per data set, backbone, size")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    from featx.backbones import get_backbone_spec
    from featx.data import ImageDataset
    from featx.utils.threads import compute_threads

    print(f"onnxruntime {ort.__version__}; FEATX_CACHE_DIR={os.environ.get('FEATX_CACHE_DIR')}")
    splits = ImageDataset.from_directory(args.data, verify="none", name="clothing-small")
    train = splits["train"].subset(stratified(splits["train"].labels, args.train_limit))
    test = splits["test"].subset(stratified(splits["test"].labels, args.test_limit))
    fashion = None
    if args.fashion_limit:
        from featx.datasets import load_fashion_mnist

        try:
            fashion = load_fashion_mnist(args.fashion_dir, limit=args.fashion_limit)
        except FileNotFoundError as exc:
            print(f"Fashion-MNIST skipped: {exc}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="featx-int8-") as tmp:
        tmp = args.graphs or tmp
        for backbone in args.backbones:
            native = get_backbone_spec(backbone).input_size[0]
            rows += measure("clothing-small", backbone, native, train, test, args, Path(tmp))
            if fashion is not None:
                rows += measure("fashion-mnist", backbone, args.fashion_size, fashion["train"],
                                fashion["test"], args, Path(tmp))

    threads = compute_threads()
    print(f"\n| data | backbone | px | graph | img/s ({threads} threads) | int8/float32 "
          f"({threads} threads) | (1 thread) | (CPU time) | probe acc | loss (pt) | changed "
          f"| feature rel. err |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    for r in rows:
        loss = None if r["delta"] is None else -r["delta"]
        print(f"| {r['data']} | {r['backbone']} | {r['size']} | {r['graph']} | {r['img_s']:.1f} "
              f"| {r['ratio']:.2f} | {r['ratio1']:.2f} | {r['ratio_cpu']:.2f} "
              f"| {fmt(r['acc'], '.4f')} | {fmt(loss, '.2f')} | {fmt(r['changed'], 'd')} "
              f"| {fmt(r['feat_rel'], '.3f')} |")
    print("\nkeep rule: >= 1.5x float32's speed with <= 0.5 point loss on both data sets")
    for v in args.variants:
        mine = [r for r in rows if r["graph"] == v]
        fast = all(r["ratio"] >= 1.5 for r in mine)
        probed = all(r["delta"] is not None for r in mine)
        accurate = probed and all(-r["delta"] <= 0.5 for r in mine)
        loss = (f"worst loss {max(-r['delta'] for r in mine):.2f} pt" if probed
                else "not probed")
        print(f"  {v}: {'pays' if fast and accurate else 'does not pay'} "
              f"(speed x{min(r['ratio'] for r in mine):.2f}-x{max(r['ratio'] for r in mine):.2f}, "
              f"{loss})")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
