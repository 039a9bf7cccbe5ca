"""GPU extraction throughput: naive loop vs featx vs the decode and compute ceilings, in one run.

Meant for a machine with a GPU and many cores (procedure: ``docs/gpu.md``); ``--quick`` runs a tiny
version on any CPU as a smoke check. Run from the repository root::

    KERAS_BACKEND=jax python benchmarks/gpu_bench.py --out /tmp/table.md
    KERAS_BACKEND=jax python benchmarks/gpu_bench.py --quick            # CPU smoke check

Data: ``--data`` is a class-folder tree of JPEGs (default ``.devdata/clothing`` from
``benchmarks/make_devdata.py``, else ``../shared/datasets/clothing-small/train``). It is
expanded into ``--n`` distinct files under ``--workdir``: copy ``k`` of a photo is re-encoded with
a one-level change of one pixel (with the source's quantization tables, so size and decode cost
stay the original's) and a comment naming the copy (``--vary reencode``), or only gets the
comment (``--vary comment``: the original's pixels), so every file's SHA-256 differs and featx's
content-keyed cache cannot deduplicate them.

Rows per backbone (images/s over the whole set unless said; model build and compilation included
where a real user pays them):
  (a) naive loop: per image PIL open + convert + resize, stack a batch, ``model.predict`` (float32)
  (b) decode ceiling: featx's ``DecodePool`` (read + SHA-256 + decode + resize) alone, threads and
      processes, one worker per core, per decoder (``pillow``; ``opencv`` where OpenCV is
      installed, as on the GPU image); b is the faster kind, per decoder
  (c) compute ceiling: the backbone on one device-resident batch, repeated; the faster of
      ``predict_on_batch`` and (JAX) a ``jax.jit`` of ``model.stateless_call``; build and compile
      times reported separately
  (d) featx ``extract_features`` end to end, fresh temporary cache (hash + decode + forward + HDF5
      writes): "cold" rebuilds and recompiles the model, "model warm" reuses the one (c) compiled
and the goals d >= 0.90 x min(b, c) and d >= 3 x a, for float32 and for ``mixed_precision=True``,
whose features are compared with the float32 ones (relative error).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_T0 = time.perf_counter()
# weights=None for these: their ImageNet weights download from the network, which the GPU machine
# lacks. Speed does not depend on the weights' values.
_NO_WEIGHTS = {"resnet50"}


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", flush=True)


# -- data: expand a small carried subset into >= n distinct JPEG files -----------------------------
def _with_comment(data: bytes, text: str) -> bytes:
    """Insert a JPEG COM segment right after SOI: new bytes, identical pixels."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    payload = text.encode()
    return data[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


def _make_copies(tasks, mode: str) -> list[str]:
    """Worker: write each (src, dst, k) copy; return the SHA-256 of every file written."""
    from PIL import Image, ImageOps, JpegImagePlugin

    digests = []
    for src, dst, k in tasks:
        data = Path(src).read_bytes()
        if mode == "reencode":
            with Image.open(io.BytesIO(data)) as src_im:
                # the source's own quantization tables and chroma subsampling: same file size and
                # decode cost as the original (a fixed quality would double the size here)
                keep = {"qtables": src_im.quantization,
                        "subsampling": JpegImagePlugin.get_sampling(src_im)}
                if keep["subsampling"] == -1:
                    keep = {"quality": 90}
                im = ImageOps.exif_transpose(src_im).convert("RGB")
                x, y = k % im.width, (k // im.width) % im.height
                px = list(im.getpixel((x, y)))
                c = k % 3
                px[c] = px[c] + 1 if px[c] < 255 else px[c] - 1  # a one-level change
                im.putpixel((x, y), tuple(px))
                buf = io.BytesIO()
                im.save(buf, "JPEG", **keep)
                data = buf.getvalue()
        data = _with_comment(data, f"featx gpu_bench copy {k} of {Path(src).name}")
        Path(dst).write_bytes(data)
        digests.append(hashlib.sha256(data).hexdigest())
    return digests


def build_set(src: Path, n: int, workdir: Path, mode: str, workers: int) -> Path:
    """``workdir/set-...`` with ``n`` distinct JPEGs in the class folders of ``src`` (reused)."""
    by_class = [sorted(p for p in d.iterdir()
                       if p.suffix.lower() in (".jpg", ".jpeg") and not p.name.startswith("."))
                for d in sorted(src.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    # interleave the classes, so a small n still covers all of them
    sources = [(files[i].parent.name, files[i]) for i in range(max(map(len, by_class), default=0))
               for files in by_class if i < len(files)]
    if not sources:
        raise SystemExit(f"--data {src}: no class folders with .jpg files")
    h = hashlib.sha256(f"{n}\0{mode}".encode())
    for cls, p in sources:
        h.update(f"{cls}/{p.name}\0{p.stat().st_size}\n".encode())
    out = workdir / f"set-{n}-{mode}-{h.hexdigest()[:10]}"
    marker = out / ".complete.json"
    if marker.exists():
        log(f"data: reusing {out} ({n} files)")
        return out
    if out.exists():
        shutil.rmtree(out)
    t = time.perf_counter()
    tasks = []
    for i in range(n):
        cls, p = sources[i % len(sources)]
        k = i // len(sources)
        (out / cls).mkdir(parents=True, exist_ok=True)
        tasks.append((str(p), str(out / cls / f"{k:04d}_{p.stem}.jpg"), k))
    step = max(1, min(256, -(-n // (4 * workers))))
    chunks = [tasks[i : i + step] for i in range(0, n, step)]
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        digests = [d for ds in ex.map(_make_copies, chunks, [mode] * len(chunks)) for d in ds]
    distinct = len(set(digests))
    if distinct != n:
        raise SystemExit(f"data: only {distinct} distinct contents among {n} copies")
    size = sum(Path(d).stat().st_size for _, d, _ in tasks)
    marker.write_text(json.dumps({"n": n, "mode": mode, "sources": len(sources),
                                  "bytes": size}))
    log(f"data: {n} distinct JPEGs ({len(sources)} sources x {-(-n // len(sources))} copies, "
        f"{size / n / 1024:.1f} KiB mean, {size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f}"
        f" s -> {out}")
    return out


def describe_images(paths, k=64) -> str:
    from PIL import Image

    sizes = {}
    for p in paths[:: max(1, len(paths) // k)][:k]:
        with Image.open(p) as im:
            sizes[im.size] = sizes.get(im.size, 0) + 1
    common = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{w}x{h} ({c}/{sum(sizes.values())})" for (w, h), c in common)


# -- rows ------------------------------------------------------------------------------------------
def decode_rate(paths, size, kind: str, workers: int, batch_size: int,
                decoder: str = "pillow") -> float:
    """(b): featx's DecodePool alone, with the chunk and window extract_features uses."""
    from featx.images import DecodePool

    chunk = min(8, batch_size)
    window = max(4, 2 * batch_size // chunk)
    with DecodePool(size, "bilinear", workers, kind=kind, chunk=chunk, window=window,
                    decoder=decoder) as pool:
        for _ in pool.imap(paths[: chunk * max(1, workers)]):  # start the workers
            pass
        t = time.perf_counter()
        k = sum(len(ims) for _, ims, _ in pool.imap(paths))
        t = time.perf_counter() - t
    if k != len(paths):
        raise SystemExit(f"decode: {len(paths) - k} files failed to decode")
    return len(paths) / t


def naive_rate(paths, backbone, weights, size, batch_size) -> tuple[float, float]:
    """(a): the plain loop a user writes first (model build included). Returns (img/s, s)."""
    from PIL import Image

    from featx.backbones import load_backbone

    h, w = size
    t = time.perf_counter()
    model = load_backbone(backbone, weights=weights, input_size=size)
    rows = 0
    for i in range(0, len(paths), batch_size):
        images = []
        for p in paths[i : i + batch_size]:
            with Image.open(p) as im:
                images.append(np.asarray(im.convert("RGB").resize((w, h), Image.BILINEAR)))
        out = model.predict(np.stack(images).astype("float32"), batch_size=batch_size, verbose=0)
        rows += len(out)
    t = time.perf_counter() - t
    assert rows == len(paths)
    del model
    gc.collect()
    return len(paths) / t, t


def _sync(out):
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.block_until_ready(out)
    return keras.ops.convert_to_numpy(out)


def compute_rate(model, x_host: np.ndarray, iters: int, jit_variant: bool = True,
                 host_dtypes=("float32", "uint8")) -> dict:
    """(c): the model on one device-resident batch. Returns variants' img/s, compile s, output.

    ``host_dtypes``: also time ``predict_on_batch`` on the batch in host memory in these dtypes
    (diagnostics: uint8 is what featx's BatchRunner sends, float32 is 4x the bytes to move)."""
    import keras

    backend = keras.backend.backend()
    x_dev = keras.ops.convert_to_tensor(x_host)
    _sync(x_dev)
    ways = {"predict_on_batch": lambda: model.predict_on_batch(x_dev)}
    if backend == "jax" and jit_variant:
        import jax

        jitted = jax.jit(lambda tv, ntv, b: model.stateless_call(tv, ntv, b, training=False)[0])
        # read the variables per call: Keras' predict step donates and replaces their buffers
        ways["jax.jit(stateless_call)"] = lambda: jitted(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables], x_dev)
    res = {"rates": {}, "first_call_s": {}}
    for name, fn in ways.items():
        t = time.perf_counter()
        out = np.asarray(_sync(fn()))
        res["first_call_s"][name] = time.perf_counter() - t
        _sync(fn())
        t = time.perf_counter()
        outs = [fn() for _ in range(iters)]
        _sync(outs)
        res["rates"][name] = iters * len(x_host) / (time.perf_counter() - t)
        res.setdefault("output", out)
    res["best"] = max(res["rates"], key=res["rates"].get)
    res["rate"] = res["rates"][res["best"]]
    res["host_rates"] = {}
    for dtype in host_dtypes:  # each new dtype compiles once more
        xh = x_host.astype(dtype)
        model.predict_on_batch(xh)
        t = time.perf_counter()
        for _ in range(iters):
            model.predict_on_batch(xh)
        res["host_rates"][f"predict_on_batch, host {dtype}"] = (
            iters * len(x_host) / (time.perf_counter() - t))
    return res


def rel_error(test: np.ndarray, ref: np.ndarray) -> dict:
    """How far ``test`` features are from the float32 ``ref`` ones."""
    a, b = np.asarray(test, np.float64), np.asarray(ref, np.float64)
    finite = bool(np.isfinite(a).all())
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    diff = np.linalg.norm(a - b, axis=1)
    nb = np.linalg.norm(b, axis=1)
    row = diff / np.maximum(nb, 1e-30)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * nb, 1e-30)
    return {"rel_fro": float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)),
            "row_rel_median": float(np.median(row)), "row_rel_max": float(row.max()),
            "cos_min": float(cos.min()), "all_finite": finite, "rows": len(a)}


def fmt_err(e: dict) -> str:
    s = (f"relative error {e['rel_fro']:.2e} (Frobenius), per row median {e['row_rel_median']:.2e}"
         f" / max {e['row_rel_max']:.2e}, min cosine {e['cos_min']:.6f} over {e['rows']:,} rows")
    return s if e["all_finite"] else s + " (NON-FINITE values present)"


def featx_rate(ds, backbone, weights, size, batch_size, mixed, keep_model, workdir,
               decoder="pillow"):
    """(d): extract_features with a fresh cache. Returns (img/s, s, FeatureSet)."""
    from featx.extract import extract_features
    from featx.extract import forward as _forward

    if not keep_model:
        _forward.MODELS.clear()
        gc.collect()
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=workdir))
    t = time.perf_counter()
    fs = extract_features(ds, backbone, weights=weights, input_size=size, cache=cache,
                          batch_size=batch_size, mixed_precision=mixed, decoder=decoder,
                          verbose=0)
    t = time.perf_counter() - t
    shutil.rmtree(cache, ignore_errors=True)
    if len(fs) != len(ds):
        raise SystemExit(f"featx: {len(ds) - len(fs)} images skipped: {fs.skipped[:3]}")
    return len(ds) / t, t, fs


# -- the table -------------------------------------------------------------------------------------
def render(env: dict, rows: list[dict], notes: list[str]) -> str:
    head = ["# featx GPU benchmark (`benchmarks/gpu_bench.py`)", "",
            " ".join(f"{k}={v}" for k, v in env.items()), "",
            "| backbone | row | what | precision | img/s | time (s) | images |",
            "| --- | --- | --- | --- | ---: | ---: | ---: |"]
    order = {}
    for r in rows:
        order.setdefault(r["backbone"], len(order))
    body = [f"| {r['backbone']} | {r['row']} | {r['what']} | {r['precision']} | "
            f"{r['rate']:,.0f} | {r['seconds']:.2f} | {r['images']:,} |"
            for r in sorted(rows, key=lambda r: (order[r["backbone"]], r["row"]))]
    return "\n".join(head + body + [""] + [f"- {n}" for n in notes]) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = ROOT / ".devdata" / "clothing"
    if not default_data.is_dir():
        default_data = ROOT / ".." / "shared" / "datasets" / "clothing-small" / "train"
    ap.add_argument("--data", default=str(default_data), help="class-folder tree of JPEGs")
    ap.add_argument("--n", type=int, default=None, help="images in the set (default 20000)")
    ap.add_argument("--backbones", default="efficientnet_lite0,resnet50")
    ap.add_argument("--batch-size", type=int, default=None, help="default 256 (--quick: 16)")
    ap.add_argument("--input-size", type=int, default=None, help="default: each backbone's own")
    ap.add_argument("--weights", choices=("auto", "imagenet", "none"), default="auto",
                    help="auto: ImageNet where it is available offline, else none (resnet50)")
    ap.add_argument("--naive-n", type=int, default=None, help="images for row a (default: all)")
    ap.add_argument("--compute-iters", type=int, default=None, help="timed batches for row c")
    ap.add_argument("--workers", type=int, default=None, help="decode workers (default: cores)")
    ap.add_argument("--vary", choices=("reencode", "comment"), default="reencode")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "featx-gpu-bench"))
    ap.add_argument("--decoders", default=None,
                    help="featx decoders for rows b and d (default: pillow, plus opencv when "
                    "OpenCV is installed)")
    ap.add_argument("--no-mixed", action="store_true", help="skip the mixed-precision rows")
    ap.add_argument("--no-bf16-probe", action="store_true",
                    help="skip the compute-only mixed_bfloat16 row (when featx picks float16)")
    ap.add_argument("--time-limit", type=float, default=0,
                    help="seconds the run may take: optional rows (model-warm d, bf16 probe, "
                    "uint8 diagnostic) are skipped once 60%% of it is used (0: no limit)")
    ap.add_argument("--out", default=None, help="also write the markdown table here (+ .json)")
    ap.add_argument("--quick", action="store_true",
                    help="CPU smoke check: n=48, batch 16, input 64, 2 timed compute batches")
    args = ap.parse_args(argv)
    q = args.quick
    if args.decoders:
        decoders = [d.strip() for d in args.decoders.split(",") if d.strip()]
    else:
        try:
            import cv2  # noqa: F401
            decoders = ["pillow", "opencv"]
        except ImportError:
            decoders = ["pillow"]
    n = args.n or (48 if q else 20000)
    bs = args.batch_size or (16 if q else 256)
    iters = args.compute_iters or (2 if q else 40)
    naive_n = min(n, args.naive_n or n)
    input_size = args.input_size or (64 if q else None)
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    from featx.images import default_workers

    cores = default_workers()
    workers = args.workers or cores
    root = build_set(Path(args.data), n, workdir, args.vary, workers)

    from featx.data import ImageDataset

    ds = ImageDataset.from_directory(root, verify="none", name="gpu-bench")
    assert len(ds) == n, (len(ds), n)
    paths = list(ds.paths)
    log(f"data: {n:,} images, {len(ds.class_names)} classes, sizes {describe_images(paths)}")

    import keras
    import PIL

    from featx.backbones import get_backbone_spec, weights_fingerprint
    from featx.extract import forward as _forward
    from featx.extract.config import ExtractorConfig
    from featx.extract.forward import get_model, has_gpu
    from featx.images import DecodePool
    from featx.utils.runtime import seeded

    backend = keras.backend.backend()
    env = {"backend": backend, "keras": keras.__version__, "pillow": PIL.__version__,
           "python": platform.python_version(), "cores": cores, "decode_workers": workers,
           "decoders": decoders,
           "images": n, "batch": bs, "data": f"{Path(args.data).name}-expanded-{args.vary}"}
    if backend == "jax":
        import jax

        env["jax"] = jax.__version__
        env["device"] = jax.devices()[0].device_kind.replace(" ", "_")
    elif backend == "torch":
        import torch

        env["torch"] = torch.__version__
        env["device"] = (torch.cuda.get_device_name(0).replace(" ", "_")
                         if torch.cuda.is_available() else "cpu")
    gpu = has_gpu()
    env["gpu"] = gpu
    log("env: " + " ".join(f"{k}={v}" for k, v in env.items()))
    if not gpu and not q:
        log("WARNING: no GPU visible to the Keras backend; numbers are CPU numbers")

    rows: list[dict] = []
    notes: list[str] = []
    skipped: list[str] = []

    def have_time() -> bool:
        """Whether optional rows still fit: under 60% of --time-limit used (or no limit)."""
        return not args.time_limit or time.perf_counter() - _T0 < 0.6 * args.time_limit
    results: dict = {"env": env, "backbones": {}}

    def add(backbone, row, what, precision, rate, images, seconds=None):
        r = {"backbone": backbone, "row": row, "what": what, "precision": precision,
             "rate": rate, "images": images,
             "seconds": seconds if seconds is not None else images / rate}
        rows.append(r)
        log(f"{backbone} {row} [{precision}] {what}: {rate:,.1f} img/s ({r['seconds']:.2f} s)")

    def flush():
        text = render(env, rows, notes)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text)
            Path(args.out).with_suffix(".json").write_text(
                json.dumps({**results, "rows": rows, "notes": notes}, indent=1, default=str))
        return text

    # (b) once per input size: decoding does not depend on the backbone
    decode: dict[tuple, dict] = {}
    for name in backbones:
        spec = get_backbone_spec(name)
        size = (input_size, input_size) if input_size else tuple(spec.input_size)
        if size in decode:
            continue
        decode[size] = {f"{kind} x{workers}, {dec}": decode_rate(paths, size, kind, workers, bs,
                                                                 dec)
                        for dec in decoders for kind in ("thread", "process")}
        log(f"decode {size}: " + ", ".join(f"{k} {v:,.0f} img/s" for k, v in decode[size].items()))

    for name in backbones:
        spec = get_backbone_spec(name)
        size = (input_size, input_size) if input_size else tuple(spec.input_size)
        if args.weights == "none" or (args.weights == "auto" and name in _NO_WEIGHTS):
            weights = None
        else:
            weights = "imagenet"
            try:
                weights_fingerprint(name, weights)
            except Exception as exc:
                if args.weights == "imagenet":
                    raise
                log(f"{name}: ImageNet weights unavailable here ({type(exc).__name__}); "
                    "timing weights=None")
                weights = None
        wdesc = "ImageNet" if weights else "random (weights=None)"
        info = results["backbones"][name] = {"weights": wdesc, "input_size": size}
        log(f"== {name} {size[0]}x{size[1]}, weights {wdesc}")

        # (a)
        ra, ta = naive_rate(paths[:naive_n], name, weights, size, bs)
        add(name, "a", f"naive loop: PIL decode+resize, stack {bs}, model.predict "
            "(build included)", "fp32", ra, naive_n, ta)

        # (b)
        for k, v in decode[size].items():
            add(name, "b", f"decode ceiling: featx DecodePool, {k.replace('x', 'x ')}", "-", v, n)
        rbs = {dec: max(v for k, v in decode[size].items() if k.endswith(f", {dec}"))
               for dec in decoders}

        # a real batch, decoded once, for (c)
        with DecodePool(size, "bilinear", workers) as pool:
            imgs = [im for _, ims, _ in pool.imap(paths[:bs]) for im in ims]
        x = np.stack(imgs).astype(np.float32)

        precisions = [("fp32", False)] + ([] if args.no_mixed else [("mixed", True)])
        comp: dict[str, dict] = {}
        for label, mixed in precisions:
            config = ExtractorConfig(name, weights=weights, input_size=size,
                                     mixed_precision=mixed)
            _forward.MODELS.clear()
            gc.collect()
            t = time.perf_counter()
            # the Keras model on the device: row c measures the backend's compute ceiling ("auto"
            # would pick ONNX Runtime on a machine without a GPU)
            model = get_model(config, "keras")
            build_s = time.perf_counter() - t
            policy = model.dtype_policy.name
            c = comp[label] = compute_rate(
                model, x, iters, host_dtypes=("float32", "uint8") if not mixed and have_time()
                else ("float32",))
            c.update(build_s=build_s, policy=policy)
            prec = "fp32" if not mixed else f"mixed ({policy})"
            add(name, "c", f"compute ceiling: device-resident batch of {bs}, {c['best']}",
                prec, c["rate"], n, n / c["rate"])
            info[f"compute_{label}"] = {"rates": c["rates"], "host_rates": c["host_rates"],
                                        "build_s": build_s,
                                        "first_call_s": c["first_call_s"], "policy": policy}
            log(f"   build {build_s:.2f} s; first call (trace+compile) "
                + ", ".join(f"{k} {v:.2f} s" for k, v in c["first_call_s"].items())
                + "; variants " + ", ".join(f"{k} {v:,.0f}" for k, v in c["rates"].items()))
            notes.append(f"{name} {prec}: forward from host memory (diagnostic): " + ", ".join(
                f"{k} {v:,.0f} img/s" for k, v in c["host_rates"].items()))
            log(notes[-1])

            # (d) with the model (c) compiled, then cold: rebuilt and recompiled inside the call
            rdw = None
            if have_time():
                rdw, tdw, _ = featx_rate(ds, name, weights, size, bs, mixed, True, workdir)
                add(name, "d", "featx extract_features, fresh cache, model warm (from c)", prec,
                    rdw, n, tdw)
            else:
                skipped.append(f"{name} {label} model-warm d")
            del model
            for dec in decoders:  # the first decoder's features feed the precision comparison
                rd, td, fs = featx_rate(ds, name, weights, size, bs, mixed, False, workdir, dec)
                add(name, "d", f"featx extract_features, decoder={dec}, fresh cache, cold "
                    "(build + compile included)", prec, rd, n, td)
                if dec == decoders[0]:
                    c["fs"], c["d"], c["d_warm"] = fs, rd, rdw
                ceil = min(rbs[dec], c["rate"])
                g1, g2 = rd / ceil, rd / ra
                warm = f"{rdw / ceil:.2f}" if rdw and dec == decoders[0] else "not run"
                line = (f"{name} {prec}, decoder={dec}: d / min(b, c) = {rd:,.0f} / "
                        f"{ceil:,.0f} = **{g1:.2f}** (goal >= 0.90: "
                        f"{'met' if g1 >= 0.9 else 'NOT met'}; model warm {warm}); d / a = "
                        f"**{g2:.1f}** (goal >= 3: {'met' if g2 >= 3 else 'NOT met'}); bound by "
                        f"{'decode' if rbs[dec] < c['rate'] else 'compute'}")
                notes.append(line)
                info[f"goals_{label}_{dec}"] = {
                    "d_over_min_bc": g1, "d_over_a": g2,
                    "d_warm_over_min_bc": rdw / ceil if rdw and dec == decoders[0] else None}
                log(line)
                flush()

        if "mixed" in comp:
            e = rel_error(comp["mixed"]["fs"].features, comp["fp32"]["fs"].features)
            ec = rel_error(comp["mixed"]["output"], comp["fp32"]["output"])
            info["mixed_error"], info["mixed_error_batch"] = e, ec
            notes.append(f"{name} mixed precision ({comp['mixed']['policy']}) vs float32 "
                         f"features: {fmt_err(e)}")
            log(notes[-1])
            probe = comp["mixed"]["policy"] != "mixed_bfloat16" and not args.no_bf16_probe
            if probe and not have_time():
                skipped.append(f"{name} mixed_bfloat16 probe")
            elif probe:
                # featx picks mixed_float16 on a GPU; time bfloat16 (compute only) beside it
                from featx.backbones import load_backbone

                old = keras.config.dtype_policy()
                keras.config.set_dtype_policy("mixed_bfloat16")
                try:
                    with seeded(0 if weights is None else None):
                        m16 = load_backbone(name, weights=weights, input_size=size)
                finally:
                    keras.config.set_dtype_policy(old)
                cb = compute_rate(m16, x, iters, jit_variant=False, host_dtypes=())
                del m16
                eb = rel_error(cb["output"], comp["fp32"]["output"])
                info["compute_bf16_probe"] = {"rates": cb["rates"], "error_batch": eb}
                add(name, "c", f"compute ceiling, {cb['best']} (probe: not what featx "
                    "picks on GPU)", "mixed_bfloat16", cb["rate"], n, n / cb["rate"])
                notes.append(f"{name} mixed_bfloat16 probe vs float32 on one batch: "
                             f"{fmt_err(eb)} (featx's {comp['mixed']['policy']} on the same "
                             f"batch: {ec['rel_fro']:.2e})")
                log(notes[-1])
            for c in comp.values():
                c.pop("fs", None)
        if weights is None:
            notes.append(f"{name}: weights=None (random, seeded): ImageNet weights cannot be "
                         "downloaded on the benchmark machine; speed does not depend on the "
                         "weights' values (feature errors of random weights are only indicative)")
        gc.collect()
        flush()

    if skipped:
        notes.append(f"skipped to stay within --time-limit {args.time_limit:.0f} s: "
                     + ", ".join(skipped))
    notes.append("b = the faster DecodePool kind; extract_features decodes with threads, "
                 "n_workers = cores. All rows read files from a warm page cache (the set was just "
                 "written); 'cold' means a fresh feature cache, and a model built + compiled "
                 "inside the timed call.")
    text = flush()
    print("\n" + text, flush=True)
    if args.out:
        log(f"table written to {args.out} (+ {Path(args.out).with_suffix('.json').name})")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
