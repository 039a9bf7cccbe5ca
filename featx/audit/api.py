"""``featx.inspect``: every check of the data on its cached features, one :class:`Inspection`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featx.audit._checks import _class_health, _exact, _fence, _near, _neighbours
from featx.audit.calibrate import Calibration, calibrate
from featx.audit.findings import Findings, csv_text
from featx.audit.labels import label_scores, out_of_fold_proba
from featx.audit.neighbours import unit_rows
from featx.utils.checks import check_int
from featx.utils.threads import blas_limit

__all__ = ["CLEAN_DROP", "MIN_PER_CLASS", "Inspection", "inspect"]

#: Training images per class below which a class is reported as too small for the heads: 5-fold
#: cross-validation (``[heads] cv``, the label check) needs 5, and test scores of classes with
#: fewer than 10 training images swing with each image.
MIN_PER_CLASS = 10
#: The kinds a cleaned split list leaves out by default (the copy of each pair; the original
#: stays): what is certainly redundant, not what needs a person's eye (labels, outliers).
CLEAN_DROP = ("exact_duplicate", "near_duplicate", "leak")
_SPLIT_ORDER = ("train", "validation", "test")


@dataclass
class Inspection:
    """What :func:`inspect` found.

    Attributes
    ----------
    findings : Findings
        One row per finding (``findings.csv``): ``path``, ``kind``, ``score`` (higher: more
        certain), ``other_path``, ``given_label``, ``suggested_label``, ``split``,
        ``other_split``, ``reason``.
    scores : list of dict
        One row per image (``scores.csv``): its split, given and predicted label, label-error
        score, nearest training image and its similarity, k-nearest-neighbour distance.
    class_health : list of dict
        One row per class: images per split, and a note when the class is too small.
    notes : list of str
        Observations on the data as a whole (imbalance, small classes).
    calibration : Calibration
        The near-duplicate threshold and how it was chosen.
    outlier_distance : float
        The k-nearest-neighbour distance (mean cosine distance to the ``outlier_k`` nearest
        training images) above which an image is an outlier: Tukey's fence, Q3 + 1.5 IQR of
        the training images' own distances.
    splits : dict
        Split -> number of images with features.
    backbone_passes : int
        Images this call sent through a backbone (the re-encodes of the calibration when not
        cached; 0 with everything cached).
    timings : dict
        Seconds per step.
    source : str
        The DATA spec inspected ('' for datasets given as objects).
    rows : dict
        Split -> its rows of ``scores``.
    proba : dict
        Split -> class probabilities (n, n_classes) from heads that never saw the images.
    """

    findings: Findings
    scores: list[dict]
    class_health: list[dict]
    notes: list[str]
    calibration: Calibration
    outlier_distance: float
    splits: dict[str, int]
    class_names: list[str]
    backbone_passes: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    source: str = ""
    rows: dict[str, list[dict]] = field(default_factory=dict, repr=False)
    proba: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def leaked(self, split: str = "test") -> set[str]:
        """Paths of ``split`` with a training twin (exact or near copy)."""
        return {r["path"] for r in self.findings
                if r["kind"] == "leak" and r["split"] == split}

    def counts(self) -> dict[str, int]:
        """Findings per kind."""
        return self.findings.counts()

    def clean_rows(self, drop: Sequence[str] = CLEAN_DROP) -> list[dict]:
        """``path, label, split`` of every image not flagged as one of ``drop`` (kinds): a
        split list featx reads back as DATA (a CSV with a split column)."""
        from featx.audit.findings import KINDS

        unknown = [k for k in drop if k not in KINDS]
        if unknown:
            raise ValueError(f"drop has unknown kind(s) {unknown}; allowed: {list(KINDS)}")
        gone = {(r["split"], r["path"]) for r in self.findings if r["kind"] in drop}
        return [{"path": r["path"], "label": r["given_label"], "split": split}
                for split, rows in self.rows.items() for r in rows
                if (split, r["path"]) not in gone]

    def clean_csv(self, drop: Sequence[str] = CLEAN_DROP) -> str:
        """:meth:`clean_rows` as CSV text."""
        return csv_text(self.clean_rows(drop), ["path", "label", "split"])

    def summary(self) -> dict[str, Any]:
        """The numbers a report shows: counts, leaks per split, threshold, class health."""
        return {"counts": self.counts(), "splits": dict(self.splits),
                "leaked": {s: len(self.leaked(s)) for s in self.splits if s != "train"},
                "threshold": self.calibration.threshold,
                "calibration": self.calibration.summary(),
                "outlier_distance": self.outlier_distance, "notes": list(self.notes),
                "class_health": self.class_health, "backbone_passes": self.backbone_passes}

    def write(self, out_dir: str | os.PathLike, *, clean_list: str | os.PathLike | None = None,
              drop: Sequence[str] = CLEAN_DROP, gallery: int = 24):
        """Write ``findings.csv``, ``scores.csv``, ``report.md`` and thumbnails into ``out_dir``
        (and the cleaned split list to ``clean_list``): :func:`featx.audit.write_inspection`."""
        from featx.audit.write import write_inspection

        return write_inspection(self, out_dir, clean_list=clean_list, drop=drop,
                                gallery=gallery)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in self.counts().items()) or "no findings"
        return f"Inspection({sum(self.splits.values())} images; {counts})"


# --------------------------------------------------------------------------- inputs
def _splits(data, seed: int) -> tuple[dict, str]:
    if isinstance(data, str | os.PathLike):
        from featx.sources import resolve_data

        return resolve_data(data, seed=seed), os.fspath(data)
    if isinstance(data, Mapping):
        if "train" not in data:
            raise ValueError(f"data must have a 'train' split, got {sorted(data)}")
        return dict(data), ""
    if hasattr(data, "paths") and hasattr(data, "labels"):
        return {"train": data}, ""
    raise TypeError("data must be an ImageDataset, a FeatureSet, a dict of splits (train, "
                    "validation, test) of either, or a DATA spec (folder, CSV or built-in "
                    f"name), got {type(data).__name__}")


def _features(splits: dict, extract: dict) -> dict:
    from featx.extract import FeatureSet, extract_features

    out = {}
    for name in sorted(splits, key=lambda s: (_SPLIT_ORDER + (s,)).index(s)):
        ds = splits[name]
        out[name] = ds if isinstance(ds, FeatureSet) else extract_features(ds, **extract)
    names = out["train"].class_names
    for name, fs in out.items():
        if list(fs.class_names) != list(names):
            raise ValueError(f"split {name!r} has classes {fs.class_names}, train has {names}")
    return out


def _probabilities(fss: dict, head: str, folds: int, seed: int) -> dict:
    """Class probabilities of every image from heads that never saw it: out-of-fold on train,
    the fold heads' mean on the other splits."""
    train = fss["train"]
    others = [s for s in fss if s != "train"]
    oof, rest = out_of_fold_proba(train.features, train.labels, head=head, folds=folds,
                                  seed=seed, others=[fss[s].features for s in others])
    return {"train": oof, **dict(zip(others, rest, strict=True))}


def inspect(data, *, backbone: str = "efficientnet_lite0", weights: str | None = "imagenet",
            input_size=None, cache=None, head: str = "logreg", folds: int = 5,
            threshold: float | None = None, calibration_images: int = 48, outlier_k: int = 5,
            min_per_class: int = MIN_PER_CLASS, seed: int = 0, verbose: int = 1,
            extract_params: Mapping[str, Any] | None = None) -> Inspection:
    """Check a data set on its cached features: duplicates, leaks, label errors, outliers.

    Parameters
    ----------
    data : ImageDataset, FeatureSet, dict of splits, or str
        The images: a DATA spec (folder, CSV or built-in name, see
        :func:`featx.sources.resolve_data`), one dataset (train only) or a dict with ``"train"``
        and optionally ``"validation"`` and ``"test"`` (ImageDatasets, whose features are
        extracted or read from the cache, or FeatureSets).
    backbone, weights, input_size, cache, extract_params
        The features (as :func:`featx.extract.extract_features` takes them); ignored for
        FeatureSets.
    head : str
        The head whose out-of-fold probabilities rank the label errors (default: the linear
        probe, ``logreg``).
    folds : int
        Stratified folds of the out-of-fold probabilities (>= 2).
    threshold : float, optional
        Cosine similarity at or above which two images are near-duplicates. ``None``:
        calibrated on ``calibration_images`` training images re-encoded
        (:mod:`featx.audit.calibrate`; their backbone passes are cached).
    outlier_k : int
        Neighbours of the k-nearest-neighbour distance.
    min_per_class : int
        Training images per class below which a class is reported.
    seed : int
    verbose : int, default=1
        Progress of the extraction and the calibration's passes (``0``: silent).

    Returns
    -------
    Inspection
        ``.findings`` (one row per finding), ``.scores`` (one row per image), ``.class_health``,
        ``.write(out_dir)`` for ``findings.csv`` and ``report.md``. Nothing of the user's files
        is changed.

    Examples
    --------
    >>> import numpy as np
    >>> from featx.extract import FeatureSet
    >>> rng = np.random.default_rng(0)
    >>> X = np.abs(rng.normal(size=(40, 16))) + np.repeat(np.eye(2, 16) * 4, 20, axis=0)
    >>> y = np.repeat([0, 1], 20)
    >>> y[3] = 1  # a wrong label
    >>> train = FeatureSet(X, y, [f"{i}.jpg" for i in range(40)], [str(i) for i in range(40)],
    ...                    ["cat", "dog"])
    >>> test = FeatureSet(X[:2] * 1.001, [0, 0], ["t0.jpg", "t1.jpg"], ["a", "b"], ["cat", "dog"])
    >>> found = inspect({"train": train, "test": test}, threshold=0.999, folds=4)
    >>> sorted(found.leaked("test")), max(found.scores, key=lambda r: r["label_score"])["path"]
    (['t0.jpg', 't1.jpg'], '3.jpg')
    """
    from featx.heads import get_head_spec

    get_head_spec(head)
    folds = check_int("folds", folds, 2)
    calibration_images = check_int("calibration_images", calibration_images, 1)
    outlier_k = check_int("outlier_k", outlier_k, 1)
    min_per_class = check_int("min_per_class", min_per_class, 1)
    if threshold is not None and not (isinstance(threshold, int | float)
                                      and not isinstance(threshold, bool)
                                      and 0 < threshold <= 1):
        raise ValueError(f"threshold must be None (calibrated) or a cosine similarity in "
                         f"(0, 1], got {threshold!r}")
    from featx.extract import forward_pass_count

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    passes0 = forward_pass_count()
    splits, source = _splits(data, seed)
    extract = dict(extract_params or {}, backbone=backbone, weights=weights,
                   input_size=input_size, cache=cache, verbose=verbose)
    fss = _features(splits, extract)
    timings["features_s"] = time.perf_counter() - t0
    class_names = list(fss["train"].class_names)
    if len(fss["train"]) < 2:
        raise ValueError(f"data needs at least 2 training images, got {len(fss['train'])}")

    def labels_of(split: str, i: int) -> str:
        return class_names[int(fss[split].labels[i])]

    t = time.perf_counter()
    unit = {s: unit_rows(fs.features) for s, fs in fss.items()}
    ids = {s: list(fs.ids) for s, fs in fss.items()}
    with blas_limit():  # scikit-learn's search threads spin on busy cores: one is faster
        nn = _neighbours(unit, ids, outlier_k)
    timings["neighbours_s"] = time.perf_counter() - t

    t = time.perf_counter()
    distinct = nn["train"][0][:, 0]
    distinct = distinct[np.isfinite(distinct)]
    if threshold is None:
        calibration = calibrate(fss["train"], unit["train"], distinct, n=calibration_images,
                                seed=seed, cache=cache, verbose=verbose)
    else:
        calibration = Calibration(threshold=float(threshold), method="given")
    timings["calibration_s"] = time.perf_counter() - t

    findings = _exact(fss, labels_of)
    exact_leaks = {r["path"] for r in findings if r["kind"] == "leak"}
    with blas_limit():
        findings += _near(fss, unit, nn, calibration.threshold, labels_of, exact_leaks)

    t = time.perf_counter()
    with blas_limit():  # one BLAS thread per fit: several times faster on busy cores
        proba = _probabilities(fss, head, folds, seed)
    timings["labels_s"] = time.perf_counter() - t

    dist = {s: np.where(np.isfinite(nn[s][0]), 1.0 - nn[s][0], np.nan) for s in fss}
    knn = {s: np.nanmean(d, axis=1) if d.shape[1] else np.full(len(d), np.nan)
           for s, d in dist.items()}
    train_knn = knn["train"][np.isfinite(knn["train"])]
    fence = _fence(train_knn) if len(train_knn) else float("inf")

    scores, per_split = [], {}
    for s, fs in fss.items():
        score, suggested, flagged = label_scores(proba[s], fs.labels) if len(fs) else \
            (np.zeros(0), np.zeros(0, int), np.zeros(0, bool))
        sim, idx = nn[s]
        rows_s = []
        for i in range(len(fs)):
            has_nn = sim.shape[1] > 0 and np.isfinite(sim[i, 0])
            row = {"path": fs.paths[i], "split": s, "given_label": labels_of(s, i),
                   "predicted_label": class_names[int(np.argmax(proba[s][i]))],
                   "label_score": float(score[i]), "label_flagged": bool(flagged[i]),
                   "suggested_label": class_names[int(suggested[i])],
                   "nearest_train_path": fss["train"].paths[int(idx[i, 0])] if has_nn else "",
                   "nearest_train_similarity": float(sim[i, 0]) if has_nn else None,
                   "knn_distance": None if not np.isfinite(knn[s][i]) else float(knn[s][i])}
            rows_s.append(row)
            if flagged[i]:
                findings.append({
                    "path": fs.paths[i], "kind": "label_error", "score": float(score[i]),
                    "other_path": "", "given_label": row["given_label"],
                    "suggested_label": row["suggested_label"], "split": s, "other_split": "",
                    "reason": f"{'out-of-fold ' if s == 'train' else ''}{head} gives "
                              f"{row['suggested_label']!r} "
                              f"{proba[s][i][int(suggested[i])]:.2f}, "
                              f"{row['given_label']!r} {proba[s][i][int(fs.labels[i])]:.2f}"})
            if row["knn_distance"] is not None and row["knn_distance"] > fence:
                findings.append({
                    "path": fs.paths[i], "kind": "outlier", "score": row["knn_distance"],
                    "other_path": row["nearest_train_path"], "given_label": row["given_label"],
                    "suggested_label": "", "split": s, "other_split": "train",
                    "reason": f"mean cosine distance to its {outlier_k} nearest training "
                              f"images {row['knn_distance']:.4f} > {fence:.4f}"})
        scores += rows_s
        per_split[s] = rows_s
        for path, why in fs.skipped:
            findings.append({"path": path, "kind": "skipped", "score": 1.0, "other_path": "",
                             "given_label": "", "suggested_label": "", "split": s,
                             "other_split": "", "reason": str(why)})
    from featx.audit.findings import KINDS

    kind_order = list(KINDS)
    findings = Findings(sorted(findings, key=lambda r: (kind_order.index(r["kind"]),
                                                        -float(r["score"]))))
    health, notes = _class_health(fss, class_names, min_per_class)
    timings["total_s"] = time.perf_counter() - t0
    return Inspection(findings=findings, scores=scores, class_health=health, notes=notes,
                      calibration=calibration, outlier_distance=fence,
                      splits={s: len(fs) for s, fs in fss.items()}, class_names=class_names,
                      backbone_passes=forward_pass_count() - passes0, timings=timings,
                      source=source, rows=per_split, proba=proba)
