"""One head-table row -> an unfitted pipeline: :func:`build_head` (what ``make_head`` runs) and
the checks of its options. Kept apart from the table so that the ensembles, whose members are
base rows, build them without importing the table that lists the ensembles."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from featx.heads.imbalance import IMBALANCE, ClassBiasClassifier
from featx.heads.limits import limited
from featx.heads.preprocess import POWER, SignedPower
from featx.heads.spec import HeadSpec
from featx.utils.checks import check_choice, close_matches
from featx.utils.params import Flag

__all__ = ["build_head", "check_imbalance", "check_params", "check_pca", "check_power",
           "check_whiten"]


def check_pca(pca):
    if pca is None:
        return
    if isinstance(pca, numbers.Integral) and not isinstance(pca, bool) and pca >= 1:
        return
    if isinstance(pca, numbers.Real) and not isinstance(pca, (bool, numbers.Integral)) \
            and 0.0 < pca < 1.0:
        return
    raise ValueError(
        "pca must be None, an int >= 1 (components) or a float in (0, 1) "
        f"(variance to keep); got pca={pca!r}."
    )


def check_power(power) -> None:
    if power is not None:
        POWER.check("power", power)


def check_whiten(whiten, pca) -> None:
    if Flag().check("whiten", whiten) and pca is None:
        raise ValueError("whiten=True whitens the PCA step, which needs pca= (components or "
                         "variance kept); got whiten=True with pca=None. Pass pca=, e.g. "
                         "make_head(name, pca=256, whiten=True).")


def check_params(spec: HeadSpec, params: Mapping[str, Any]) -> None:
    valid = sorted(spec.estimator().get_params(deep=False))
    for key in params:
        if key not in valid:
            raise ValueError(
                f"Invalid parameter {key!r} for head={spec.name!r} "
                f"({spec.estimator.__name__}){close_matches(key, valid)}. Valid parameters: "
                f"{', '.join(valid)}."
            )


def check_imbalance(imbalance) -> None:
    if imbalance is not None:
        check_choice("imbalance", imbalance, [*IMBALANCE, None])


def build_head(spec: HeadSpec, *, pca: int | float | None = None, normalize: bool | None = None,
               power: float | None = None, whiten: bool = False, proba: bool = False,
               imbalance: str | None = None, random_state: int | None = None,
               n_samples: int | None = None, n_classes: int | None = None,
               **params: Any) -> Pipeline:
    """The unfitted pipeline of row ``spec``; the parameters are ``make_head``'s."""
    name = spec.name
    check_params(spec, params)
    check_pca(pca)
    check_power(power)
    check_whiten(whiten, pca)
    check_imbalance(imbalance)
    proba = proba or imbalance == "prior"
    kwargs = {**spec.defaults, **limited(spec, params, n_samples, n_classes), **params}
    if random_state is not None and "random_state" in spec.estimator().get_params(deep=False):
        kwargs.setdefault("random_state", random_state)
    clf = spec.estimator(**kwargs)
    if proba and not spec.predict_proba:
        # sigmoid calibration fits on held-out folds: scikit-learn's 5, or fewer when the
        # training set is small (a stratified fold needs a member of every class)
        folds = 5 if n_samples is None else min(5, n_samples // (n_classes or 2))
        if folds < 2:
            raise ValueError(
                f"proba=True calibrates head={name!r} on held-out folds, which needs at least 2 "
                f"training images per class; got n_samples={n_samples}, n_classes={n_classes}. "
                "Use a head with predict_proba (logreg, rf, mlp, knn) or proba=False.")
        clf = CalibratedClassifierCV(clf, method="sigmoid", ensemble=False, cv=folds)
    if imbalance is not None:
        clf = ClassBiasClassifier(clf, method=imbalance, random_state=random_state)

    steps = []
    if power is not None:
        steps.append(("power", SignedPower(power=power)))
    if spec.normalize if normalize is None else normalize:
        steps.append(("normalize", Normalizer(norm="l2")))
    if spec.scale:
        steps.append(("scale", StandardScaler()))
    if pca is not None:
        steps.append(("pca", PCA(n_components=pca, whiten=bool(whiten),
                                     random_state=random_state)))
    steps.append(("clf", clf))
    return Pipeline(steps)

