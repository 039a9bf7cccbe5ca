"""The checks behind :func:`featx.audit.inspect`: exact copies, near copies and leaks,
outlier fence, class health; each takes the FeatureSets (and their unit rows) by split."""

from __future__ import annotations

import numpy as np

from featx.audit.findings import Findings
from featx.audit.neighbours import nearest

#: Neighbours searched per image beyond ``outlier_k`` (exact twins are skipped among them).
_EXTRA = 3


def _neighbours(unit: dict, ids: dict, k: int) -> dict:
    """Per split: (sims, rows) of the nearest training rows, exact twins left out, k each."""
    train_ids = np.asarray(ids["train"])
    out = {}
    for split, x in unit.items():
        sim, idx = nearest(x, unit["train"], k + _EXTRA, same=split == "train")
        twin = train_ids[idx] == np.asarray(ids[split])[:, None]
        sim = np.where(twin, -np.inf, sim)
        order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        out[split] = (np.take_along_axis(sim, order, 1), np.take_along_axis(idx, order, 1))
    return out


def _exact(fss: dict, labels_of) -> Findings:
    rows, first = Findings(), {}
    for split, fs in fss.items():
        for i, cid in enumerate(fs.ids):
            if cid not in first:
                first[cid] = (split, i)
                continue
            s0, i0 = first[cid]
            rows.append({"path": fs.paths[i], "kind": "exact_duplicate", "score": 1.0,
                         "other_path": fss[s0].paths[i0], "given_label": labels_of(split, i),
                         "suggested_label": labels_of(s0, i0), "split": split,
                         "other_split": s0, "reason": "same file content"})
            if s0 == "train" and split != "train":
                rows.append({**rows[-1], "kind": "leak",
                             "reason": "exact copy of a training image"})
    return rows


def _near(fss, unit, nn, threshold, labels_of, exact_leaks) -> Findings:
    rows = Findings()
    for split, fs in fss.items():
        sim, idx = nn[split]
        if split == "train":
            pairs = set()
            for i in np.flatnonzero(sim[:, 0] >= threshold):
                j = int(idx[i, 0])
                pairs.add((min(i, j), max(i, j)))
            for i, j in sorted(pairs):
                s = float(unit["train"][i] @ unit["train"][j])
                rows.append({"path": fs.paths[j], "kind": "near_duplicate", "score": s,
                             "other_path": fs.paths[i], "given_label": labels_of(split, j),
                             "suggested_label": labels_of(split, i), "split": split,
                             "other_split": split,
                             "reason": f"cosine similarity {s:.4f} >= {threshold:.4f}"})
            continue
        for i in np.flatnonzero(sim[:, 0] >= threshold):
            if fs.paths[i] in exact_leaks:
                continue
            j = int(idx[i, 0])
            rows.append({"path": fs.paths[i], "kind": "leak", "score": float(sim[i, 0]),
                         "other_path": fss["train"].paths[j],
                         "given_label": labels_of(split, i),
                         "suggested_label": labels_of("train", j), "split": split,
                         "other_split": "train",
                         "reason": f"near copy of a training image: cosine similarity "
                                   f"{sim[i, 0]:.4f} >= {threshold:.4f}"})
        s2, i2 = nearest(unit[split], unit[split], 1, same=True)  # copies within the split
        pairs = set()
        for i in np.flatnonzero(s2[:, 0] >= threshold) if len(s2) and s2.shape[1] else []:
            j = int(i2[i, 0])
            if fs.ids[i] != fs.ids[j]:
                pairs.add((min(i, j), max(i, j)))
        for i, j in sorted(pairs):
            s = float(unit[split][i] @ unit[split][j])
            rows.append({"path": fs.paths[j], "kind": "near_duplicate", "score": s,
                         "other_path": fs.paths[i], "given_label": labels_of(split, j),
                         "suggested_label": labels_of(split, i), "split": split,
                         "other_split": split,
                         "reason": f"cosine similarity {s:.4f} >= {threshold:.4f}"})
    return rows


def _fence(values: np.ndarray) -> float:
    """Tukey's outlier fence, ``Q3 + 1.5 IQR``."""
    q1, q3 = np.quantile(values, [0.25, 0.75])
    return float(q3 + 1.5 * (q3 - q1))


def _class_health(fss: dict, class_names, min_per_class: int) -> tuple[list[dict], list[str]]:
    counts = {s: np.bincount(fs.labels, minlength=len(class_names)) for s, fs in fss.items()}
    rows, notes = [], []
    for k, name in enumerate(class_names):
        row = {"class": name, **{s: int(c[k]) for s, c in counts.items()}}
        if counts["train"][k] < min_per_class:
            row["note"] = f"fewer than {min_per_class} training images"
        elif any(c[k] == 0 for s, c in counts.items() if s != "train"):
            row["note"] = "absent from " + ", ".join(s for s, c in counts.items()
                                                     if s != "train" and c[k] == 0)
        rows.append(row)
    train = counts["train"]
    present = train[train > 0]
    if len(present) and present.min() > 0:
        ratio = float(present.max() / present.min())
        if ratio >= 3:
            notes.append(f"classes are imbalanced: {int(present.max())} to {int(present.min())} "
                         f"training images (ratio {ratio:.1f}); macro-F1 and balanced accuracy "
                         "are fairer than accuracy, and `[heads] imbalance` can help")
    small = [r["class"] for r in rows if train[class_names.index(r["class"])] < min_per_class]
    if small:
        notes.append(f"{len(small)} class(es) have fewer than {min_per_class} training images "
                     f"({', '.join(small)}): heads and cross-validation have too little to "
                     "learn from, and their test scores swing with each image")
    return rows, notes
