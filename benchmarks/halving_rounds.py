"""Every candidate at every round of successive halving: what the folds can tell apart, what
each round's probes cost, and what warm-started probes would save.

    FEATX_CACHE_DIR=/path/to/cache python benchmarks/halving_rounds.py \
        [--data ../shared/datasets/clothing-small] [--backbones ...] [--views none flip] \
        [--taps="-1,-2;-1,-2,-3,-4"] [--concat subsets] [--norms none sqrt] [--budget 2] \
        [--layers=-1,-2,-3,-4] [--folds 3] [--warm 4] [--from-narrower]

Takes the candidates of a feature choice (default: those of ``pipelines/clothing_budget.toml``;
``--views none flip --concat only --taps="-1;-1,-2" --norms none --budget 0`` gives
``clothing_best``'s) and scores every one of them at every round of
:func:`featx.comparison.halving_subsets` (a quarter, half, then all of the training split), with
the probe and the nested folds :func:`featx.comparison.select_features` uses (each image in
the fold a stratified split of the whole training split gives it; every fit cold here, where
the selection starts rounds 2 and 3 from the fits before: ``--warm``). Per round it prints each
candidate's CV score, its standard error, the standard error of its fold differences from the
round's leader, and marks: ``P`` within the paired margin of the leader
(:func:`featx.comparison.near_best`), ``S`` goes on under the selection's rule (the better half
and every candidate within the leader's own standard error), ``L`` needs no backbone pass (or
view) that the leader does not. Then the seconds of the round's probes.

``--warm K`` then refits the probes of the K best candidates of the last round at rounds 2 and
3, started from their fits of the round before (``warm_start``), with folds drawn afresh per
round (as the selection drew them before) and with the nested folds, against cold
fits on the same folds: L-BFGS iterations, seconds and CV scores (on the first view's rows).
``--from-narrower`` refits round 1 with each candidate started from the fits of the widest
narrower candidate (same views and norm, a subset of its column blocks: a single backbone for a
pair, fewer taps for more), which the selection does not do: the seconds, and the mean
difference of the CV scores, the bias such a start would bring into round 1's ranking.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
from joblib import Parallel, delayed
from screen_bench import candidate_arguments, candidates
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from featx.comparison import (
    FeatureBank,
    fit_views,
    fold_ids,
    halving_subsets,
    near_best,
    predict_views,
)
from featx.heads import make_head, norm_options
from featx.utils.threads import blas_limit, usable_cores


def paired_se(lead: list, folds: list) -> float:
    diff = np.subtract(lead, folds)
    return float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if np.any(diff) else 0.0


def probe(choice, y):
    return make_head("logreg", random_state=0, n_samples=len(y), n_classes=int(y.max()) + 1,
                     **norm_options(choice.norm))


def fit(head, X, y, start=None):
    """``head`` fitted on ``X, y`` (its classifier started from ``start``, a fitted one); the
    L-BFGS iterations it took."""
    head = clone(head)
    if start is None:
        head.fit(X, y)
    else:
        head[:-1].fit(X, y)
        clf = head[-1].set_params(warm_start=True)
        clf.coef_, clf.intercept_ = start.coef_.copy(), start.intercept_.copy()
        clf.fit(head[:-1].transform(X), y)
    return head, int(np.max(head[-1].n_iter_))


def split_of(ids: np.ndarray, folds: int) -> list:
    """``(train rows, held rows)`` per fold of rows whose folds are ``ids``."""
    return [(np.flatnonzero(ids != k), np.flatnonzero(ids == k)) for k in range(folds)]


def held_out_accuracy(head, views_X, y, tr, va) -> float:
    """Accuracy on rows ``va`` of ``head`` fitted (cold) on rows ``tr``, views averaged."""
    fitted = fit_views(clone(head), [X[tr] for X in views_X], y[tr])
    return float(np.mean(predict_views(fitted, [X[va] for X in views_X]) == y[va]))


def blocks(bank, choice) -> list:
    """``(backbone, tap, width)`` of each column block of ``choice``'s features, in order."""
    out = []
    for source in choice.sources:
        spans = {e: b - a for e, a, b in bank.sets[(source, choice.views[0], "train")].tap_spans()}
        out += [(source, t, spans[t]) for t in choice.taps]
    return out


def from_narrower(choices, bank, ids, folds) -> None:
    """Round 1 refitted with each candidate started from the fits of the widest narrower one
    (the same views and norm, its column blocks a subset of the candidate's; zeros for the
    other columns), against cold fits on the same folds."""
    print("\nround 1, each candidate started from the widest narrower candidate's fits\n"
          "| candidate | started from | cold iterations | warm | cold s | warm s | cold CV | "
          "warm CV |\n|---|---|---:|---:|---:|---:|---:|---:|")
    fitted, diffs, seconds = {}, [], {"cold": 0.0, "warm": 0.0}
    with blas_limit():
        for c in sorted(choices, key=lambda c: sum(w for *_, w in blocks(bank, c))):
            views = bank.features(c, "train")
            X, y = np.asarray(views[0].features), views[0].labels
            mine = blocks(bank, c)
            parts = [d for d in fitted if d.norm == c.norm and d.views == c.views
                     and set(blocks(bank, d)) < set(mine)]
            part = max(parts, key=lambda d: sum(w for *_, w in blocks(bank, d))) if parts else None
            got = {"cold": [0, 0.0, []], "warm": [0, 0.0, []]}
            fitted[c] = []
            for k in range(folds):
                tr, va = ids != k, ids == k
                for how in ("cold", "warm") if part else ("cold",):
                    start = None
                    if how == "warm":
                        before = fitted[part][k]
                        W = np.zeros((before.coef_.shape[0], X.shape[1]))
                        at = 0
                        for block in blocks(bank, part):
                            col = sum(w for *_, w in mine[: mine.index(block)])
                            W[:, col: col + block[2]] = before.coef_[:, at: at + block[2]]
                            at += block[2]
                        start = SimpleNamespace(coef_=W, intercept_=before.intercept_)
                    t = time.perf_counter()
                    head, it = fit(probe(c, y), X[tr], y[tr], start)
                    got[how][0] += it
                    got[how][1] += time.perf_counter() - t
                    got[how][2].append(float(np.mean(head.predict(X[va]) == y[va])))
                    if how == "cold":
                        fitted[c].append(head[-1])
            (ci, cs, cv), (wi, ws, wv) = got["cold"], got["warm"]
            seconds["cold"] += cs
            seconds["warm"] += ws if part else cs
            if part:
                diffs.append(np.mean(wv) - np.mean(cv))
            print(f"| {c.name} | {part.name if part else '(cold)'} | {ci} | {wi or ''} | "
                  f"{cs:.2f} | {f'{ws:.2f}' if part else ''} | {np.mean(cv):.4f} | "
                  + (f"{np.mean(wv):.4f} |" if part else "|"))
    print(f"round 1's fits: {seconds['cold']:.1f} s cold, {seconds['warm']:.1f} s started from "
          f"narrower ones; warm - cold CV over {len(diffs)} candidates: mean "
          f"{np.mean(diffs):+.4f}, from {min(diffs):+.4f} to {max(diffs):+.4f}")


def main() -> None:
    parser = candidate_arguments(__doc__.splitlines()[0])
    parser.add_argument("--layers", default="-1,-2,-3,-4",
                        help="the taps extracted (and cached), as the pipelines' [extract] layers")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=0, help="candidates to refit warm (0: none)")
    parser.add_argument("--from-narrower", action="store_true",
                        help="round 1: start each candidate from a narrower one's fits")
    args = parser.parse_args()
    train, choices = candidates(args)
    rounds = halving_subsets(train.labels, args.folds)
    nested_ids = fold_ids(train.labels, args.folds)  # each image's fold, as the selection's
    print(f"{len(choices)} candidates, {args.folds}-fold CV of the logreg probe, rounds on "
          f"{[len(r) for r in rounds]} of {len(train)} training images")
    banks, scores = [], []
    for r, rows in enumerate(rounds):
        bank = FeatureBank.extract({"train": train.subset(rows)}, choices,
                                   layers=[int(t) for t in args.layers.split(",")], verbose=0)
        banks.append(bank)
        data = [[np.asarray(f.features) for f in bank.features(c, "train")] for c in choices]
        y = bank.features(choices[0], "train")[0].labels
        split = split_of(nested_ids[rows], args.folds)
        start = time.perf_counter()
        with blas_limit():
            got = Parallel(n_jobs=usable_cores(), prefer="threads")(
                delayed(held_out_accuracy)(probe(c, y), views, y, tr, va)
                for c, views in zip(choices, data, strict=True) for tr, va in split)
        seconds = time.perf_counter() - start
        folds = [got[i * args.folds:(i + 1) * args.folds] for i in range(len(choices))]
        rows_ = [{"cv_score": float(np.mean(f)), "cv_folds": list(map(float, f)),
                  "cv_se": float(np.std(f, ddof=1) / np.sqrt(len(f)))} for f in folds]
        scores.append(rows_)
        order = sorted(range(len(choices)), key=lambda i: -rows_[i]["cv_score"])
        lead = order[0]
        paired = set(near_best(rows_))
        goes_on = set(order[: (len(rows_) + 1) // 2]) | set(near_best(rows_, paired=False))
        lead_pairs = {(b, v) for b in choices[lead].sources for v in choices[lead].views}
        print(f"\nround {r + 1}: {len(rows)} images, the probes took {seconds:.1f} s\n"
              "| candidate | CV | ± | paired ± | marks |\n|---|---:|---:|---:|---|")
        for i in order:
            pairs = {(b, v) for b in choices[i].sources for v in choices[i].views}
            marks = ("P" if i in paired else "") + ("S" if i in goes_on else "") + \
                    ("L" if pairs <= lead_pairs else "")
            print(f"| {choices[i].name} | {rows_[i]['cv_score']:.4f} | {rows_[i]['cv_se']:.4f} "
                  f"| {paired_se(rows_[lead]['cv_folds'], rows_[i]['cv_folds']):.4f} | {marks} |")

    if args.from_narrower:
        from_narrower(choices, banks[0], nested_ids[rounds[0]], args.folds)
    if not args.warm:
        return
    last = scores[-1]
    top = sorted(range(len(choices)), key=lambda i: -last[i]["cv_score"])[: args.warm]
    print("\nwarm-started probes: rounds 2 and 3 started from the round before's fits\n"
          "| candidate | round | folds | cold iterations | warm | cold s | warm s | cold CV | "
          "warm CV |\n|---|---:|---|---:|---:|---:|---:|---:|---:|")
    with blas_limit():
        for i in top:
            for kind in ("per round", "nested"):
                before = None
                for r, rows in enumerate(rounds):
                    views = banks[r].features(choices[i], "train")
                    X, y = np.asarray(views[0].features), views[0].labels
                    if kind == "nested":
                        splits = split_of(nested_ids[rows], args.folds)
                    else:
                        splits = list(StratifiedKFold(args.folds, shuffle=True, random_state=0)
                                      .split(X, y))
                    got = {"cold": [0, 0.0, []], "warm": [0, 0.0, []]}
                    fits = []
                    for k, (tr, va) in enumerate(splits):
                        for how in ("cold", "warm") if before else ("cold",):
                            t = time.perf_counter()
                            head, it = fit(probe(choices[i], y), X[tr], y[tr],
                                           before[k] if how == "warm" else None)
                            got[how][0] += it
                            got[how][1] += time.perf_counter() - t
                            got[how][2].append(float(np.mean(head.predict(X[va]) == y[va])))
                            if how == "cold":
                                fits.append(head[-1])
                    if before:
                        (ci, cs, cv), (wi, ws, wv) = got["cold"], got["warm"]
                        print(f"| {choices[i].name} | {r + 1} | {kind} | {ci} | {wi} | "
                              f"{cs:.2f} | {ws:.2f} | {np.mean(cv):.4f} | {np.mean(wv):.4f} |")
                    before = fits


if __name__ == "__main__":
    main()
