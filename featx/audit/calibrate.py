"""The near-duplicate threshold, calibrated on synthetic re-encodes of the user's own images.

What a near-duplicate looks like in feature space depends on the backbone, its input size and the
images: a fixed cosine threshold is right for none of them. :func:`calibrate` measures it:

1. a seeded sample of ``n`` training images (default 48) is re-encoded the ways copies are made
   (:data:`RECIPES`: a 0.9x resize saved as JPEG at quality 70; a 4% crop of every side saved as
   JPEG at quality 70), decoded exactly as the extractor decodes a file, and extracted with the
   same configuration: ``n x len(RECIPES)`` backbone passes, cached by content like any image (a
   second run reuses them);
2. the *twin* similarities are each original's cosine similarity to its re-encodes; the
   *distinct* similarities are each training image's similarity to its nearest other training
   image (exact copies left out), which holds few twins in any real data set;
3. the threshold is the 2nd percentile of the twin similarities (98% of such copies reach it),
   raised to the 99.9th percentile of the distinct similarities when that is higher, so that at
   most about one training image in a thousand is paired with a distinct photo that merely looks
   alike (:func:`threshold_from`). On photos of one kind of object (products on plain
   backgrounds) a 4% crop moves the features about as far as another photo of a similar item
   does; the threshold then favours precision, and :meth:`Calibration.summary` says which share
   of each recipe's copies it still catches.

A threshold given by the user (``threshold=``) skips all of it (no backbone pass).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DISTINCT_QUANTILE", "RECIPES", "TWIN_QUANTILE", "Calibration", "calibrate",
           "reencode", "threshold_from"]

#: Re-encode recipes: name -> (scale of each side, fraction cropped from each side, JPEG quality).
RECIPES: dict[str, tuple[float, float, int]] = {
    "resize0.9_jpeg70": (0.9, 0.0, 70),
    "crop4_jpeg70": (1.0, 0.04, 70),
}
#: The share of synthetic copies the threshold catches at least (unless raised, see above).
TWIN_QUANTILE = 0.02
#: The share of distinct nearest neighbours allowed above the threshold.
DISTINCT_QUANTILE = 0.999
#: Larger originals are first brought to this longest side (the backbone sees far less).
MAX_SIDE = 1024


@dataclass
class Calibration:
    """How the near-duplicate threshold was chosen.

    Attributes
    ----------
    threshold : float
        Cosine similarity at or above which two images are near-duplicates.
    method : str
        ``"calibrated"`` or ``"given"``.
    twins : dict
        Recipe -> the originals' similarities to their re-encodes.
    distinct_q999 : float or None
        99.9th percentile of the nearest-other-image similarities in train.
    images, passes : int
        Sampled originals and backbone passes the re-encodes needed (0 when cached).
    """

    threshold: float
    method: str
    twins: dict[str, list[float]] = field(default_factory=dict)
    distinct_q999: float | None = None
    images: int = 0
    passes: int = 0

    def summary(self) -> str:
        """One line: the threshold and where it came from."""
        if self.method == "given":
            return f"near-duplicate threshold {self.threshold:.4f} (given)"
        caught = ", ".join(f"{np.mean(np.asarray(v) >= self.threshold):.0%} of the {k} copies"
                           for k, v in self.twins.items() if len(v))
        distinct = ("" if self.distinct_q999 is None
                    else f"; 99.9th percentile of the training images' nearest distinct "
                         f"neighbour {self.distinct_q999:.4f}")
        return (f"near-duplicate threshold {self.threshold:.4f}, calibrated on {self.images} "
                f"training images re-encoded: it catches {caught}{distinct}")


def reencode(pixels: np.ndarray, recipe: str) -> bytes:
    """JPEG bytes of ``pixels`` (uint8 RGB) after ``recipe`` (:data:`RECIPES`).

    Examples
    --------
    >>> data = reencode(np.full((50, 40, 3), 128, np.uint8), "resize0.9_jpeg70")
    >>> from PIL import Image
    >>> Image.open(io.BytesIO(data)).size
    (36, 45)
    """
    from PIL import Image

    scale, crop, quality = RECIPES[recipe]
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
    w, h = image.size
    if crop:
        dx, dy = round(w * crop), round(h * crop)
        image = image.crop((dx, dy, w - dx, h - dy))
    if scale != 1.0:
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def threshold_from(twins, distinct) -> float:
    """The threshold from twin and distinct similarities (rule 3 of the module's notes):
    ``max(q02(twins), q999(distinct))``, rounded to 4 decimals.

    Examples
    --------
    >>> threshold_from([0.97, 0.98, 0.99], [0.5, 0.7, 0.8])
    0.9704
    >>> threshold_from([0.90, 0.98, 0.99], [0.5, 0.7, 0.95])  # raised: distinct photos reach it
    0.9495
    """
    low = float(np.quantile(np.asarray(twins, dtype=np.float64), TWIN_QUANTILE))
    if len(distinct) == 0:
        return round(low, 4)
    high = float(np.quantile(np.asarray(distinct, dtype=np.float64), DISTINCT_QUANTILE))
    return round(max(low, high), 4)


def _sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` rows spread over the classes (round robin over shuffled classes), seeded."""
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == c)).tolist()
                for c in np.unique(labels)]
    picks: list[int] = []
    while len(picks) < min(n, len(labels)):
        for rows in by_class:
            if rows and len(picks) < n:
                picks.append(rows.pop())
    return np.sort(np.asarray(picks, dtype=np.int64))


def calibrate(train, unit, distinct: np.ndarray, *, n: int = 48, seed: int = 0, cache=None,
              verbose: int = 0) -> Calibration:
    """Calibrate the near-duplicate threshold on re-encodes of ``n`` images of ``train``.

    Parameters
    ----------
    train : featx.FeatureSet
        Training features, with their extractor configuration in ``attrs``.
    unit : ndarray (len(train), d)
        ``train``'s rows, L2-normalised.
    distinct : ndarray
        Each training image's similarity to its nearest other (not identical) training image.
    n, seed : int
        Sample size and its seed.
    cache
        Feature cache, as :func:`featx.extract.extract_features` takes it.
    """
    from featx.data import ImageDataset
    from featx.extract import ExtractorConfig, extract_features, forward_pass_count
    from featx.images import ImageError, decode_bytes, read_image
    from featx.utils.config import config_context

    config = ExtractorConfig.from_attrs(train.attrs)
    if config is None:
        raise ValueError("threshold=None calibrates on re-encoded training images, which needs "
                         "the features' extractor configuration; these features have none (an "
                         "in-memory FeatureSet or a plain matrix): pass threshold=<cosine "
                         "similarity>, e.g. 0.95")
    settings = config.settings()
    size, resize, decoder = settings["input_size"], settings["resize"], settings["decoder"]
    rows = _sample(train.labels, n, seed)
    arrays, origin = [], []
    for i in rows:
        try:
            pixels = read_image(train.paths[i], decoder=decoder)
        except (ImageError, OSError):
            continue
        if max(pixels.shape[:2]) > MAX_SIDE:
            f = MAX_SIDE / max(pixels.shape[:2])
            pixels = read_image(train.paths[i], size=(max(1, round(pixels.shape[0] * f)),
                                                      max(1, round(pixels.shape[1] * f))))
        for recipe in RECIPES:
            arrays.append(decode_bytes(reencode(pixels, recipe), size=size, resize=resize,
                                       decoder=decoder))
            origin.append((int(i), recipe))
    if not arrays:
        raise ValueError("no training image could be read to calibrate the near-duplicate "
                         "threshold: pass threshold=<cosine similarity>, e.g. 0.95")
    images = np.stack(arrays)
    before = forward_pass_count()
    with tempfile.TemporaryDirectory() if cache is False else contextlib.nullcontext() as tmp:
        folder = None if tmp is None else Path(tmp) / "arrays"
        where = {} if cache in (None, True, False) else {"cache_dir": os.fspath(cache)}
        with config_context(**where):
            ds = ImageDataset.from_arrays(images, [0] * len(images), class_names=["reencoded"],
                                          name="inspect-calibration", directory=folder)
        fs = extract_features(ds, cache=cache, verbose=verbose, **settings)
    passes = forward_pass_count() - before
    from featx.audit.neighbours import unit_rows

    got = unit_rows(fs.features)
    twins: dict[str, list[float]] = {r: [] for r in RECIPES}
    for (i, recipe), row in zip(origin, got, strict=True):
        twins[recipe].append(float(unit[i] @ row))
    all_twins = np.concatenate([np.asarray(v) for v in twins.values()])
    distinct = np.asarray(distinct, dtype=np.float64)
    return Calibration(
        threshold=threshold_from(all_twins, distinct), method="calibrated", twins=twins,
        distinct_q999=float(np.quantile(distinct, DISTINCT_QUANTILE)) if len(distinct) else None,
        images=len(rows), passes=int(passes))
