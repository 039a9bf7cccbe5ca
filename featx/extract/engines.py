"""The public entry of the extraction stage: :func:`extract_features` and its table of engines.

:func:`extract_features` checks its arguments once and splits them into what is computed (an
:class:`~featx.extract.config.ExtractorConfig`) and how (an
:class:`~featx.extract.config.ExecutionOptions`). An engine is one row of :data:`ENGINES`: a
function ``(dataset, config, options) -> FeatureSet`` that hands its ``compute`` step to the
shared driver (:func:`featx.extract.driver.run_extraction`). Both give the same cache, keys and
result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from featx.distributed import check_engine
from featx.extract.config import ExtractorConfig
from featx.extract.driver import check_dataset
from featx.extract.featureset import FeatureSet
from featx.extract.forward import forward_pass_count
from featx.extract.local import extract_local
from featx.extract.options import EXECUTION_PARAMS, ExecutionOptions
from featx.extract.ray import ray_engine
from featx.utils.params import validate_params
from featx.utils.registry import Registry

__all__ = ["ENGINES", "extract_features", "forward_pass_count"]

#: Engine name -> the function that runs it: ``(dataset, config, options) -> FeatureSet``.
ENGINES: Registry[Callable[[object, ExtractorConfig, ExecutionOptions], FeatureSet]] = Registry(
    "engine", {"local": extract_local, "ray": ray_engine})


def extract_features(
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
    engine: str = "local",
    address: str | None = None,
    view: str = "none",
    runtime: str | None = None,
) -> FeatureSet:
    """Extract (or load cached) backbone features for every image of ``dataset``.

    Parameters
    ----------
    dataset : featx.ImageDataset
        Build one with ``ImageDataset.from_paths(paths, labels)`` or ``.from_directory(folder)``.
    backbone, weights, input_size, pooling, layers
        Passed to :func:`featx.backbones.load_backbone`; ``input_size=None`` is the backbone's own,
        else an int or an ``(h, w)`` pair of ints; ``layers`` is a list (``["block_3_add"]``).
    resize : {"bilinear", "crop"}
        How images are brought to ``input_size`` (see :func:`featx.read_image`).
    decoder : {"pillow", "opencv"}
        Who decodes and resizes (see :func:`featx.read_image`): ``"opencv"`` (``pip install
        'featx[opencv]'``) is about twice as fast per core, which matters when a GPU waits for
        the decoders. Part of the cache key.
    cache : None, False, or path
        ``None`` (or ``True``): the featx cache dir (:func:`featx.utils.config.cache_dir`:
        ``$FEATX_CACHE_DIR``, a featx checkout's ``./cache``, else the per-user cache); a path
        (str or ``os.PathLike``): that folder; ``False``: nothing touches the disk.
    batch_size : int >= 1 or None
        Images per forward pass (``None``: 32 on CPU, 256 on GPU). Not part of the cache key.
    n_workers : int >= 0, optional
        Decode threads (default: one per core). ``0`` decodes in the calling thread.
    dtype : {"float32", "float16"}
        Storage dtype of the features.
    mixed_precision : bool
        Build the backbone under a mixed float16 (GPU) / bfloat16 (CPU) policy. Changes the key.
    verbose : int
        ``0`` silent; ``1`` progress named after the dataset (``extract clothing-mini-train
        (efficientnet_lite0)``): a live bar on a terminal, a plain line every 10 s elsewhere
        (logs, CI, notebooks), and the skipped images (see :class:`featx.utils.progress.Progress`).
    engine : {"local", "ray"}
        ``"ray"`` runs decoding and the backbone on Ray (``pip install 'featx[ray]'``), with the
        same cache and result; see :func:`featx.extract.extract_on_ray` and ``docs/ray.md``.
    address : str, optional
        With ``engine="ray"``: the Ray cluster to join (default: an embedded local instance).
    view : str, default="none"
        A deterministic view of every decoded image (a row of
        :data:`featx.extract.views.VIEWS`: ``"flip"``, ``"crop90"``...), applied before the
        backbone; each view is cached under its own key (``"none"`` keeps the keys of older
        caches). Local engine only.
    runtime : {"auto", "onnxruntime", "keras"}, optional
        What runs the frozen forward (:data:`featx.extract.forward.RUNTIMES`): ``"auto"`` is ONNX
        Runtime on a CPU (the Keras model as an ONNX graph, cached beside the converted
        weights; about twice the Keras forward's speed), Keras on a GPU or with
        ``mixed_precision``. ``None``:
        ``$FEATX_RUNTIME``, else ``"auto"``. Features agree across runtimes within ~2e-6
        relative, so the runtime is not part of the cache key (``docs/runtime.md``).

    Returns
    -------
    FeatureSet
        One row per decodable image, in dataset order; ``skipped`` lists the others with reasons,
        starting with the dataset's own ``skipped`` entries.

    Raises
    ------
    TypeError
        If ``dataset`` is not an ImageDataset, ``cache`` not None/False/a path, or ``layers`` a
        string instead of a list.
    ValueError
        If a setting is out of range (``input_size``, ``batch_size``, ``n_workers``, ...); every
        argument is checked before any image is read.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> from PIL import Image
    >>> from featx.data import ImageDataset
    >>> d = tempfile.mkdtemp()
    >>> paths = [os.path.join(d, f"{i}.png") for i in range(3)]
    >>> for i, p in enumerate(paths):
    ...     Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(p)
    >>> ds = ImageDataset.from_paths(paths, ["a", "b", "a"], name="doc")
    >>> fs = extract_features(ds, "mobilenet_v2", weights=None, input_size=32, cache=d, verbose=0)
    >>> len(fs), fs.labels.tolist()
    (3, [0, 1, 0])
    >>> before = forward_pass_count()
    >>> fs2 = extract_features(ds, "mobilenet_v2", weights=None, input_size=32, cache=d, verbose=0)
    >>> forward_pass_count() - before, np.allclose(fs.features, fs2.features)
    (0, True)
    """
    check_dataset(dataset)
    options = ExecutionOptions(**validate_params(EXECUTION_PARAMS, {
        "cache": cache, "batch_size": batch_size, "n_workers": n_workers, "runtime": runtime}),
        verbose=verbose, address=address)
    name = check_engine(engine, address)
    config = ExtractorConfig(backbone, weights=weights, input_size=input_size, pooling=pooling,
                             layers=layers, resize=resize, decoder=decoder, dtype=dtype,
                             mixed_precision=mixed_precision, view=view)
    if config.view != "none" and name != "local":
        raise ValueError(f"view={view!r} needs engine='local', got engine={engine!r}")
    return ENGINES[name](dataset, config, options)


def forward_seconds(backbone: str = "efficientnet_lite0", *, n_images: int = 32,
                    repeats: int = 3, cache: bool | str | os.PathLike | None = None,
                    runtime: str | None = None, batch_size: int = 32,
                    **config: object) -> float:
    """Seconds one image costs in the backbone's forward pass, measured now on this machine.

    The cost of a feature that a cache cannot tell (a cached extraction ran no pass): the
    backbone is built (or reused, as an extraction would) and ``n_images`` random images at its
    input size run through it, once to warm up and then ``repeats`` times; the fastest run counts
    (decoding excluded, so the figure is the same whatever the images' format). Its own passes
    are not counted by :func:`forward_pass_count`.

    Parameters
    ----------
    backbone : str
    n_images : int, default=32
        Images per timed run (one batch at the default ``batch_size``).
    repeats : int, default=3
    cache, runtime, batch_size
        As in :func:`extract_features` (a graph made for the timing is kept in ``cache``).
    **config
        The rest of the :class:`ExtractorConfig` (``weights``, ``input_size``, ``layers``...).

    Examples
    --------
    >>> from featx.extract import forward_seconds
    >>> s = forward_seconds("mobilenet_v2", weights=None, input_size=32, n_images=4, cache=False)
    >>> 0 < s < 10
    True
    """
    import time

    import numpy as np

    from featx.extract.forward import BatchRunner, get_model, uncounted
    from featx.trust.store import artifacts_under
    from featx.utils.config import cache_root

    cfg = ExtractorConfig(backbone, **config)  # type: ignore[arg-type]
    height, width = cfg.input_size
    images = np.random.default_rng(0).integers(0, 256, (int(n_images), height, width, 3),
                                               dtype=np.uint8)
    with artifacts_under(cache_root(cache) if cache is not False else False), uncounted():
        run = BatchRunner(get_model(cfg, runtime), min(int(batch_size), int(n_images)))
        run(images)
        best = float("inf")
        for _ in range(max(1, int(repeats))):
            start = time.perf_counter()
            run(images)
            best = min(best, time.perf_counter() - start)
    return best / int(n_images)
