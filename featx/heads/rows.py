"""The base rows of the head table: one scikit-learn classifier each (the ensembles of
:mod:`featx.heads.ensemble` combine these; :mod:`featx.heads.table` adds them as rows)."""

from __future__ import annotations

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC, LinearSVC

from featx.heads.limits import cap_n_neighbors, early_stopping_if_room
from featx.heads.spec import HeadSpec
from featx.utils.registry import Registry

__all__ = ["BASE_HEADS", "BASE_TABLE"]

BASE_HEADS: tuple[HeadSpec, ...] = (
    HeadSpec(
        name="logreg",
        description="StandardScaler + multinomial logistic regression (lbfgs); the usual best",
        estimator=LogisticRegression,
        defaults={"C": 0.1, "max_iter": 2000, "class_weight": "balanced"},
        grid={"C": (0.01, 0.1, 1.0)},
    ),
    HeadSpec(
        name="linear_svm",
        description="StandardScaler + LinearSVC (liblinear, one-vs-rest squared hinge)",
        estimator=LinearSVC,
        defaults={"C": 0.001, "dual": True, "max_iter": 5000, "class_weight": "balanced"},
        grid={"C": (0.0001, 0.001, 0.01)},
        predict_proba=False,
        note="standardized 1280-d features need a small C; dual=True measured 2-3x faster "
        "than the primal solver on 3,000 x 1,280 and large C gets slow",
    ),
    HeadSpec(
        name="svm",
        description="StandardScaler + RBF-kernel SVC",
        estimator=SVC,
        defaults={"C": 10.0, "kernel": "rbf", "gamma": "scale", "class_weight": "balanced"},
        grid={"C": (1.0, 10.0, 100.0)},
        predict_proba=False,
        note="predict_proba via make_head(..., proba=True) (sigmoid calibration, "
        "CalibratedClassifierCV(ensemble=False)); SVC(probability=True) is deprecated in "
        "scikit-learn 1.9",
    ),
    HeadSpec(
        name="rf",
        description="Random forest on raw features (no scaling needed)",
        estimator=RandomForestClassifier,
        defaults={"n_estimators": 200, "max_features": "sqrt", "class_weight": "balanced",
                  "n_jobs": None},
        grid={"max_features": ("sqrt", "log2"), "min_samples_leaf": (1, 3)},
        scale=False,
        note="n_jobs=None (one core): grid search and evaluate_heads own the parallelism, and "
        "n_jobs=-1 inside GridSearchCV(n_jobs=2) workers oversubscribes the cores; pass "
        "n_jobs=-1 when fitting a single forest",
    ),
    HeadSpec(
        name="mlp",
        description="StandardScaler + one-hidden-layer MLP (adam, early stopping)",
        estimator=MLPClassifier,
        defaults={"hidden_layer_sizes": (256,), "alpha": 1e-3, "early_stopping": True,
                  "max_iter": 300},
        grid={"hidden_layer_sizes": ((256,), (512,)), "alpha": (1e-3, 1e-2)},
        class_weight=False,
        fit_limits=early_stopping_if_room,
        note="MLPClassifier has no class_weight; early stopping holds out 10% of train",
    ),
    HeadSpec(
        name="knn",
        description="L2-normalise + k-nearest neighbours (euclidean on unit vectors = cosine)",
        estimator=KNeighborsClassifier,
        defaults={"n_neighbors": 15, "weights": "distance", "metric": "euclidean"},
        grid={"n_neighbors": (5, 15, 30), "weights": ("uniform", "distance")},
        scale=False,
        normalize=True,
        class_weight=False,
        fit_limits=cap_n_neighbors,
        note="on unit vectors |a-b|^2 = 2 - 2cos(a, b), so the ranking is cosine's",
    ),
)

#: The base heads (every head but the ensembles, which combine these), by name.
BASE_TABLE: Registry[HeadSpec] = Registry("base head", {spec.name: spec for spec in BASE_HEADS},
                                          param="heads")
