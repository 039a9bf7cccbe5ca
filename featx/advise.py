"""Which transfer-learning strategy fits a dataset? Measure it, then apply size x similarity rules.

The classic advice (Yosinski et al. 2014; the CS231n transfer-learning notes; Chollet's *Deep
Learning with Python*) crosses two questions:

=============  ===============================  ==========================================
               similar to ImageNet              different from ImageNet
=============  ===============================  ==========================================
small dataset  frozen features + a linear head  earlier-layer features / partial fine-tune
large dataset  fine-tune the top blocks         deep (full or staged) fine-tune
=============  ===============================  ==========================================

:func:`advise` answers both with numbers instead of guesses:

- **size**: images per class in the training split (median), against
  ``THRESHOLDS["large_images_per_class"]``;
- **similarity**: how far a linear probe on frozen features of a small backbone gets above chance,
  ``lift = (accuracy - chance) / (1 - chance)``, against ``THRESHOLDS["similar_lift"]``; and the
  slope of the probe's learning curve (accuracy gained per doubling of the training set at its top
  end), a second opinion on whether more data or more adaptation is still paying off.

The thresholds and the rules are data (:data:`THRESHOLDS`, :data:`RULES`), shown in every advice.
Features go through the cache, so a later ``featx compare`` with the same backbone costs nothing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from featx.evaluate import few_shot_curve
from featx.extract import extract_features
from featx.sources import limit_per_class, resolve_data

__all__ = ["RULES", "THRESHOLDS", "Advice", "advise"]

#: The numbers the decision turns on; change them here (or pass ``thresholds=``).
THRESHOLDS: dict[str, float] = {
    # size: median training images per class at or above this is "large" (fine-tuning has enough
    # data to move millions of weights without over-fitting; Chollet calls a few thousand images
    # in total "small")
    "large_images_per_class": 1000,
    # similarity: a linear probe on frozen ImageNet features closing at least this fraction of the
    # gap between chance and perfect is "similar" (the features already separate the classes)
    "similar_lift": 0.6,
    # learning curve: accuracy still rising by this much per doubling of the training set means
    # more data (or fine-tuning) is still paying off
    "steep_slope": 0.04,
}


@dataclass(frozen=True)
class Rule:
    """One cell of the size x similarity table."""

    strategy: str
    summary: str
    command: str
    pipeline: str


#: (size, similarity) -> recommendation. ``{data}`` in the commands is the DATA argument.
RULES: dict[tuple[str, str], Rule] = {
    ("small", "similar"): Rule(
        "frozen", "frozen features + a head: the pretrained features already separate the "
        "classes and there is too little data to fine-tune safely",
        "featx compare {data} --heads logreg,svm,knn",
        "[heads] names = [\"logreg\", \"svm\", \"knn\"]; [finetune] strategies = []"),
    ("large", "similar"): Rule(
        "blocks", "fine-tune the top blocks (warm-started from the frozen head): enough data to "
        "adapt the last layers, and the early ones are already right",
        "featx finetune {data} --strategy blocks --epochs 5",
        "[finetune] strategies = [\"blocks\"]"),
    ("small", "different"): Rule(
        "last_n", "features from earlier, more generic layers, or a partial fine-tune of the top "
        "layers with strong augmentation: the top layers are too ImageNet-specific and the data "
        "too small for a deep fine-tune",
        "featx finetune {data} --strategy last_n --epochs 5",
        "[finetune] strategies = [\"last_n\"] (or earlier, more generic features: [extract] "
        "layers = block names of the backbone, see docs/backbones.md)"),
    ("large", "different"): Rule(
        "staged", "deep fine-tune (staged unfreezing down to the whole network, or 'full'): the "
        "data is far from ImageNet and there is enough of it to retrain most layers",
        "featx finetune {data} --strategy staged --epochs 10",
        "[finetune] strategies = [\"staged\", \"full\"]"),
}


@dataclass
class Advice:
    """The measurements, the verdicts they lead to, and the recommendation.

    Attributes
    ----------
    size, similarity : str
        ``"small"``/``"large"`` and ``"similar"``/``"different"``.
    strategy : str
        Recommended fine-tuning strategy name (``"frozen"``: none, use a head).
    recommendation, command : str
        What to do, and a command that does it.
    images_per_class : dict
        Training images per class.
    probe_accuracy, chance, lift : float
        Linear probe test accuracy, majority-class rate, and ``(acc - chance) / (1 - chance)``.
    curve : dict
        ``{"n_per_class": [...], "accuracy": [...]}``, the probe's learning curve.
    slope : float
        Accuracy gained per doubling of the training set between the last two curve points.
    thresholds : dict
        The :data:`THRESHOLDS` used.
    notes : list of str
        Further observations (class imbalance, a still-rising curve, tiny classes).
    features : dict or None
        With ``taps`` or ``backbones`` given to :func:`advise`: the feature choice measured by
        cross-validation on the probe's training images only: ``choice`` (the winner's name),
        ``scores`` (candidate name -> CV score), ``metric``, ``pipeline`` (the ``[extract]``
        lines that use it).
    """

    size: str
    similarity: str
    strategy: str
    recommendation: str
    command: str
    pipeline: str
    n_classes: int
    n_train: int
    images_per_class: dict[str, int]
    median_per_class: float
    probe_accuracy: float
    chance: float
    lift: float
    curve: dict[str, list]
    slope: float
    backbone: str
    n_probe_train: int
    n_probe_test: int
    thresholds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    features: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field."""
        d = asdict(self)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()}

    def __str__(self) -> str:
        t = self.thresholds
        counts = sorted(self.images_per_class.values())
        curve = ", ".join(f"{n}/class: {a:.3f}" for n, a in
                          zip(self.curve["n_per_class"], self.curve["accuracy"], strict=True))
        lines = [
            f"Recommendation: {self.strategy} -- {self.recommendation}",
            f"  try:      {self.command}",
            f"  pipeline: {self.pipeline}",
            "",
            f"Size: {self.size} -- median {self.median_per_class:g} training images per class "
            f"(min {counts[0]}, max {counts[-1]}; {self.n_train} images, {self.n_classes} "
            f"classes); large means >= {t['large_images_per_class']:g}",
            f"Similarity: {self.similarity} -- linear probe on {self.backbone} features: "
            f"accuracy {self.probe_accuracy:.3f} vs chance {self.chance:.3f}, lift "
            f"{self.lift:.3f} (similar means >= {t['similar_lift']:g}); trained on "
            f"{self.n_probe_train}, tested on {self.n_probe_test} images",
            f"Learning curve: {curve}; slope {self.slope:+.3f} per doubling (steep means >= "
            f"{t['steep_slope']:g})",
        ]
        if self.features:
            f = self.features
            scores = ", ".join(f"{k}: {v:.3f}" for k, v in f["scores"].items())
            lines.append(f"Features: {f['choice']} -- {f['folds']}-fold CV {f['metric']} on the "
                         f"probe's training images ({scores}); pipeline: {f['pipeline']}")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


def _as_splits(dataset, seed: int) -> dict:
    if isinstance(dataset, str | os.PathLike):
        return resolve_data(dataset, seed=seed)
    if isinstance(dataset, Mapping):
        if "train" not in dataset:
            raise ValueError(f"dataset must have a 'train' split, got {sorted(dataset)}")
        return dict(dataset)
    if hasattr(dataset, "paths") and hasattr(dataset, "labels"):
        return {"train": dataset}
    raise TypeError("dataset must be an ImageDataset, a dict of splits or a DATA spec (folder, "
                    f"CSV or built-in name), got {type(dataset).__name__}")


def _slope(ns: list[int], accs: list[float]) -> float:
    pts = [(n, a) for n, a in zip(ns, accs, strict=True) if math.isfinite(a)]
    if len(pts) < 2:
        return float("nan")
    (n0, a0), (n1, a1) = pts[-2], pts[-1]
    return (a1 - a0) / max(math.log2(n1 / n0), 1e-9)


def advise(dataset, *, backbone: str = "efficientnet_lite0", weights: str | None = "imagenet",
           input_size=None, probe_per_class: int | None = 200, test_per_class: int | None = 100,
           thresholds: Mapping[str, float] | None = None, cache=None, seed: int = 0,
           verbose: int = 1, taps=None, backbones=None, views=None, folds: int = 5,
           metric: str | None = None) -> Advice:
    """Measure ``dataset`` and recommend a transfer-learning strategy.

    Parameters
    ----------
    dataset : ImageDataset, dict of splits, or str
        The training data (a ``"test"`` split, when present, scores the probe; otherwise a
        stratified quarter of the training images is held out), or a DATA spec for
        :func:`featx.sources.resolve_data`.
    backbone, weights, input_size
        The probe's feature extractor (default: the small, offline ``efficientnet_lite0``).
    probe_per_class, test_per_class : int or None
        At most this many images per class for the probe's training and test sets (``None``:
        all), which bounds the extraction cost on large datasets; counts are measured on all.
    thresholds : dict, optional
        Overrides for :data:`THRESHOLDS`.
    cache
        Feature cache, as in :func:`featx.extract.extract_features`.
    taps, backbones, views : optional
        Measure the feature choice too (:func:`featx.comparison.select_features` on the probe's
        training images only, never its test images): candidate tap sets (``[[-1], [-2, -3,
        -4]]``, all from one pass per backbone), backbones (more than one: their concatenation
        is a candidate too) and views. ``None`` for all three: no feature choice (the default).
    folds, metric
        Cross-validation of the feature choice; ``metric=None`` is accuracy, or macro-F1 when
        the classes are imbalanced (3x or more between the largest and the smallest).

    Returns
    -------
    Advice
        ``str(advice)`` is a readable report with the numbers behind the recommendation.
    """
    t = {**THRESHOLDS, **dict(thresholds or {})}
    unknown = sorted(set(t) - set(THRESHOLDS))
    if unknown:
        raise ValueError(f"thresholds has unknown key(s) {unknown}; allowed: {sorted(THRESHOLDS)}")
    splits = _as_splits(dataset, seed)
    train = splits["train"]
    counts = train.class_counts()
    n_classes = len(train.class_names)
    if len(train) < 2 * n_classes or n_classes < 2:
        raise ValueError(f"dataset needs at least 2 classes and 2 training images per class to "
                         f"be measured, got {dict(counts)}")
    median = float(np.median(list(counts.values())))
    if "test" in splits:
        probe_train, probe_test = train, splits["test"]
    else:
        probe_train, probe_test = train.split(test_size=0.25, random_state=seed)
    probe_train = limit_per_class(probe_train, probe_per_class, seed)
    probe_test = limit_per_class(probe_test, test_per_class, seed)

    kw = dict(weights=weights, input_size=input_size, cache=cache, verbose=verbose)
    fs_train = extract_features(probe_train, backbone, **kw)
    fs_test = extract_features(probe_test, backbone, **kw)
    top = int(np.bincount(fs_train.labels).max())
    shots = sorted({k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500) if k < top} | {top})
    curve = few_shot_curve(fs_train, fs_test, ["logreg"], shots=shots, repeats=2, seed=seed)
    accs = [float(a) for a in curve["scores"]["logreg"]]
    acc = accs[-1]
    chance = float(curve["chance"])
    lift = (acc - chance) / (1 - chance) if chance < 1 else 0.0
    slope = _slope(curve["n_per_class"], accs)

    size = "large" if median >= t["large_images_per_class"] else "small"
    similarity = "similar" if lift >= t["similar_lift"] else "different"
    rule = RULES[(size, similarity)]
    notes = []
    values = list(counts.values())
    if min(values) and max(values) / min(values) >= 3:
        notes.append(f"classes are imbalanced ({min(values)} to {max(values)} images); heads and "
                     "fine-tuning use class_weight='balanced' by default, and macro-F1 / "
                     "balanced accuracy are fairer than accuracy")
    if math.isfinite(slope) and slope >= t["steep_slope"]:
        notes.append(f"the probe is still gaining {slope:.3f} accuracy per doubling of the data: "
                     "more labelled images would help, and fine-tuning is more likely to pay off")
    if min(values) < 10:
        notes.append(f"some classes have fewer than 10 training images (min {min(values)}); "
                     "test accuracy will be noisy")
    if probe_per_class and top < max(values):
        notes.append(f"the probe used at most {probe_per_class} training images per class")
    features = None
    if taps is not None or backbones is not None or views is not None:
        if metric is None:
            metric = "macro_f1" if min(values) and max(values) / min(values) >= 3 else "accuracy"
        features = _feature_choice(probe_train, probe_test, backbones or [backbone], taps,
                                   views, weights=weights, input_size=input_size, cache=cache,
                                   folds=folds, metric=metric, seed=seed, verbose=verbose)
    data_arg = dataset if isinstance(dataset, str) else "DATA"
    command = rule.command.format(data=data_arg)
    if backbone != "efficientnet_lite0":  # the command repeats what the probe measured
        command += f" --backbone {backbone}"
    if input_size is not None:
        h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
        command += f" --input-size {h}" if h == w else f" --input-size {h}x{w}"
    return Advice(
        size=size, similarity=similarity, strategy=rule.strategy, recommendation=rule.summary,
        command=command, pipeline=rule.pipeline,
        n_classes=n_classes, n_train=len(train), images_per_class=dict(counts),
        median_per_class=median, probe_accuracy=acc, chance=chance, lift=float(lift),
        curve={"n_per_class": list(curve["n_per_class"]), "accuracy": accs}, slope=slope,
        backbone=backbone, n_probe_train=len(fs_train.labels), n_probe_test=len(fs_test.labels),
        thresholds=dict(t), notes=notes, features=features)


def _feature_choice(train, test, backbones, taps, views, *, folds, metric, seed, **extract):
    """The feature choice on the probe's data: the winner by CV on ``train`` and every score."""
    from featx.comparison import feature_choices, select_features

    choices = feature_choices(list(backbones), taps=[list(t) for t in taps or []],
                              views=list(views or ["none"]), concat=True)
    result = select_features(train, test, choices, heads=["logreg"], folds=folds,
                             metric=metric, seed=seed, cache=extract.pop("cache"),
                             verbose=extract.pop("verbose"), extract_params=extract)
    rows = [r for r in result.table if r.get("candidate") and r["cv_score"] is not None]
    chosen = next(r for r in result.table if r["selected"])
    best = next((r for r in rows if r["features"] == chosen["features"]), chosen)
    lines = []
    if len(backbones) > 1 or len(best["backbone"].split("+")) > 1:
        lines.append(f"backbone = {best['backbone'].split('+')!r}".replace("'", '"')
                     + ("; concat = true" if "+" in best["backbone"] else ""))
    if best["taps"] is not None:
        lines.append(f"taps = [{best['taps']}]")
    if best["views"] != ["none"]:
        lines.append(f"views = {best['views']!r}".replace("'", '"'))
    return {"choice": best["features"], "metric": metric, "folds": folds,
            "scores": {r["features"]: float(r["cv_score"]) for r in rows},
            "pipeline": "[extract] " + "; ".join(lines) if lines else "[extract] (defaults)"}
