"""The Ray engine of :func:`featx.extract_features`: the same cache, keys and result, on a cluster.

The driver hashes every file (the content ids), takes the configuration's row store lock, and sends
only the images whose content the store lacks through a Ray Data pipeline::

    from_items(locations) -> map_batches(_decode)  CPU tasks: read, SHA-256, decode + resize
                          -> map_batches(_Embed)   actor pool: the backbone, loaded once per actor
                          -> iter_batches          the driver: a row-store segment per shard_size

Only locations travel to the workers, never image bytes: a decode task reads each image itself
(a local path, a URL, a record of a TFRecord, tar or Parquet file:
:func:`featx.images.read_bytes`, remote ones many at a time), so on a cluster the images must sit
where the workers can read them (a shared disk, a bucket, a web server). Feature rows come back to
the driver, which commits them to the row store it holds the lock of, exactly as the local engine
does, so the cache layout is the same and a later local run (or Ray run) hits it. A segment is
committed every ``shard_size`` rows: a run that dies resumes from its last shard. Ray Data's
fault tolerance is left at its defaults: a decode task whose worker dies is retried
(``max_retries=-1``) and a dead model actor is restarted and its batch re-run
(``max_restarts=-1``, ``max_task_retries=-1``); a Python exception in featx's code is not retried
and fails the run (a read that fails is not an exception: the image is skipped with its reason).
``docs/ray.md`` explains the choices.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence

import numpy as np

from featx.distributed import ensure_ray, require_ray
from featx.extract.config import ExtractorConfig
from featx.extract.driver import check_dataset, progress_label, run_extraction
from featx.extract.forward import BatchRunner, add_count, check_runtime, get_model
from featx.extract.options import EXECUTION_PARAMS, ExecutionOptions
from featx.images import load_chunk, process_local
from featx.trust.store import artifact_root, artifacts_under, persistent
from featx.utils.checks import check_int
from featx.utils.params import validate_params
from featx.utils.progress import Progress

__all__ = ["extract_on_ray", "ray_engine"]

_DECODE_ROWS = 32  # paths per decode task batch (and per input block)
_CPU_BATCH, _GPU_BATCH = 32, 256
_COMMIT_SECONDS = 5.0


def _decode(batch: dict, size: tuple[int, int], resize: str, decoder: str = "pillow") -> dict:
    """Ray task: read + hash + decode ``batch["path"]``; undecodable rows get a zero image."""
    paths = [str(p) for p in batch["path"]]
    ids, ok, reasons = load_chunk(paths, size, resize, decoder)
    images = np.zeros((len(paths), *size, 3), np.uint8)
    images[[r is None for r in reasons]] = ok
    return {"path": np.asarray(paths, dtype=object),
            "id": np.asarray([i or "" for i in ids], dtype=object),
            "reason": np.asarray([r or "" for r in reasons], dtype=object),
            "image": images}


class _Embed:
    """Ray actor: the backbone of ``config``, built once, run on decoded ``uint8`` batches.

    Rows that failed to decode ride along (a zero image inside the padded batch costs nothing)
    and are dropped by the driver.
    """

    def __init__(self, config: dict, batch_size: int, runtime: str | None = None,
                 artifacts: str | bool | None = None) -> None:
        # the runtime resolves on the worker: ONNX Runtime on a CPU-only node, Keras on a GPU;
        # its graph or converted weights go where the driver's would (nowhere with cache=False)
        with artifacts_under(artifacts):
            model = get_model(config, runtime)
        self.runner = BatchRunner(model, batch_size, config["dtype"])

    def __call__(self, batch: dict) -> dict:
        return {"path": batch["path"], "id": batch["id"], "reason": batch["reason"],
                "features": self.runner(batch["image"])}


def _cluster_gpus(ray) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def _pipeline(ray, todo, config, batch_size, concurrency, num_gpus, runtime=None):
    """The lazy Ray Dataset of ``{path, id, reason, features}`` rows for ``todo`` paths."""
    import keras

    h, w = config["input_size"]
    blocks = max(1, math.ceil(len(todo) / _DECODE_ROWS))
    ds = ray.data.from_items([{"path": p} for p in todo], override_num_blocks=blocks)
    ds = ds.map_batches(_decode, fn_kwargs={"size": (h, w), "resize": config["resize"],
                                            "decoder": config["decoder"]},
                        batch_size=_DECODE_ROWS, batch_format="numpy", num_cpus=1)
    # Workers must run the backend the driver runs, or features (and the key) would differ.
    env = {"KERAS_BACKEND": keras.backend.backend(), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return ds.map_batches(
        _Embed,  # looked up at call time: tests swap in a crashing subclass
        fn_constructor_args=(config, batch_size, runtime,
                             str(artifact_root()) if persistent() else False),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=int(concurrency[0]),
                                           max_size=int(concurrency[1]))
        if isinstance(concurrency, tuple) else ray.data.ActorPoolStrategy(size=int(concurrency)),
        num_cpus=1, num_gpus=num_gpus, runtime_env={"env_vars": env},
    )


@contextlib.contextmanager
def _quiet(ray, verbose: int):
    """Ray Data's progress bars and INFO logs only at ``verbose >= 2``; restored afterwards."""
    ctx = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    bars, level = ctx.enable_progress_bars, logger.level
    ctx.enable_progress_bars = verbose >= 2
    if verbose < 2:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        ctx.enable_progress_bars = bars
        logger.setLevel(level)


def _run(ray, todo, config, batch_size, concurrency, num_gpus, shard_size, sink, progress,
         runtime=None):
    """Stream ``todo`` through Ray; ``sink(ids, features)`` per shard. Returns the failures."""
    failed: dict[str, str] = {}
    ids: list[str] = []
    feats: list[np.ndarray] = []
    n_pending, last = 0, time.monotonic()

    def flush() -> None:
        nonlocal n_pending, last
        if ids:
            sink(list(ids), np.concatenate(feats))
            ids.clear(), feats.clear()
        n_pending, last = 0, time.monotonic()

    ds = _pipeline(ray, todo, config, batch_size, concurrency, num_gpus, runtime)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
        reasons = batch["reason"]
        ok = np.asarray([not r for r in reasons], bool)
        for p, cid, r in zip(batch["path"], batch["id"], reasons, strict=True):
            if r:
                failed[str(cid) or str(p)] = str(r)
        if ok.any():
            ids.extend(str(c) for c in batch["id"][ok])
            feats.append(np.asarray(batch["features"][ok], dtype=config["dtype"]))
            n_pending += int(ok.sum())
            add_count(int(ok.sum()))  # forward passes run on this process's behalf
        progress.update(len(reasons))
        if n_pending >= shard_size or time.monotonic() - last >= _COMMIT_SECONDS:
            flush()
    flush()
    return failed


def _check_options(shard_size, concurrency, n_workers) -> None:
    check_int("shard_size", shard_size, 1)
    ok = (concurrency is None
          or isinstance(concurrency, int | np.integer) and concurrency >= 1
          or isinstance(concurrency, tuple) and len(concurrency) == 2
          and 1 <= concurrency[0] <= concurrency[1])
    if not ok:
        raise ValueError("concurrency must be None, a positive int or a (min, max) tuple with "
                         f"1 <= min <= max, got {concurrency!r}")
    check_int("n_workers", n_workers, 1, allow_none=True,
              meaning=" (the embedded Ray instance's CPUs with engine='ray')")


def extract_on_ray(
    dataset,
    backbone: str = "efficientnet_lite0",
    *,
    weights: str | os.PathLike | None = "imagenet",
    input_size: int | tuple[int, int] | None = None,
    pooling: str | None = "avg",
    layers: Sequence[str] | None = None,
    resize: str = "bilinear",
    decoder: str = "pillow",
    cache: bool | str | os.PathLike | None = None,
    batch_size: int | None = 32,
    n_workers: int | None = None,
    dtype: str = "float32",
    mixed_precision: bool = False,
    verbose: int = 1,
    address: str | None = None,
    concurrency: int | tuple[int, int] | None = None,
    num_gpus: float | None = None,
    shard_size: int = 1024,
    runtime: str | None = None,
):
    """:func:`featx.extract_features` on Ray: same arguments, same cache, same :class:`FeatureSet`.

    The ``engine="ray"`` row of :data:`featx.extract.ENGINES`:
    ``featx.extract_features(..., engine="ray", address=...)`` calls this with the defaults of the
    Ray-only parameters below.

    Parameters
    ----------
    dataset, backbone, weights, input_size, pooling, layers, resize, decoder, cache, dtype,
    mixed_precision, runtime
        As in :func:`featx.extract_features`; the cache key and layout are identical (the
        runtime is resolved on each worker).
    batch_size : int or None
        Images per forward pass in each model actor (``None``: 256 when the cluster has GPUs,
        else 32).
    n_workers : int, optional
        CPUs of the embedded Ray instance when featx starts one (default: one per core); ignored
        when joining a cluster.
    verbose : int
        ``0`` silent; ``1`` featx's progress line; ``2`` also Ray's progress bars and worker logs.
    address : str, optional
        Ray cluster to join (``"auto"``, ``"head:6379"``, ``"ray://head:10001"``). ``None``: an
        already initialised Ray, else ``$RAY_ADDRESS``, else an embedded local instance.
    concurrency : int or (min, max), optional
        Model actors (fixed, or an autoscaling range). Default: one per GPU of the cluster, else
        ``max(1, cpus // 8)``.
    num_gpus : float, optional
        GPUs per model actor (default: 1 when the cluster has GPUs, else 0).
    shard_size : int
        Rows per row-store segment committed by the driver: the granularity at which an
        interrupted run resumes.

    Returns
    -------
    FeatureSet
    """
    check_dataset(dataset)
    checked = validate_params(EXECUTION_PARAMS, {"cache": cache, "batch_size": batch_size,
                                                  "runtime": runtime})
    config = ExtractorConfig(backbone, weights=weights, input_size=input_size, pooling=pooling,
                             layers=layers, resize=resize, decoder=decoder, dtype=dtype,
                             mixed_precision=mixed_precision)
    options = ExecutionOptions(**checked, n_workers=n_workers, verbose=verbose, address=address,
                               concurrency=concurrency, num_gpus=num_gpus, shard_size=shard_size)
    return ray_engine(dataset, config, options)


def ray_engine(dataset, config: ExtractorConfig, options: ExecutionOptions):
    """The ``engine="ray"`` row of :data:`featx.extract.ENGINES` (see :func:`extract_on_ray`);
    the Ray-only options are checked here, the others by the public entry."""
    _check_options(options.shard_size, options.concurrency, options.n_workers)
    if local := next((p for p in dataset.paths if process_local(p)), None):
        raise ValueError(f"dataset location {local!r} lives in this process's memory; the Ray "
                         "engine's workers read every image from its location themselves: put "
                         "the images on a store or disk they can reach, or use engine='local'")
    require_ray()  # fail before any file is hashed
    runtime = check_runtime(options.runtime)  # the driver's choice goes to the workers
    progress = Progress(progress_label(dataset, config, "ray"), options.verbose)

    def run(todo, sink) -> dict[str, str]:
        ray = ensure_ray(options.address, options.n_workers, options.verbose)
        gpus = _cluster_gpus(ray)
        bs = options.batch_size
        bs = bs if bs is not None else (_GPU_BATCH if gpus else _CPU_BATCH)
        bs = max(1, min(int(bs), len(todo)))  # a batch never outgrows its images
        actors = options.concurrency
        if actors is None:
            actors = gpus or max(1, int(ray.cluster_resources().get("CPU", 1)) // 8)
        ngpu = (1 if gpus else 0) if options.num_gpus is None else options.num_gpus
        with _quiet(ray, options.verbose):
            return _run(ray, todo, config, int(bs), actors, ngpu, int(options.shard_size), sink,
                        progress, runtime)

    # Two passes here, not one_pass: the driver hashes every file, then the decode tasks read
    # only the images whose content the store lacks. Reading each image once would need the
    # store's ids in every decode task on the cluster (to skip known content) or every image
    # decoded and shipped back; the local engine does it (see run_extraction's one_pass).
    return run_extraction(dataset, config, options.cache, progress, run)
