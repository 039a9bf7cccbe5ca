"""Nearest neighbours of cached feature rows by cosine similarity (scikit-learn's brute search).

Rows are L2-normalised once (:func:`unit_rows`); on unit vectors the Euclidean distance is
``sqrt(2 - 2 cos)``, so scikit-learn's exact brute-force search (``NearestNeighbors(algorithm=
"brute")``, whose float32 Euclidean k-nearest search runs in chunks of bounded memory, in
parallel, without forming the full distance matrix) gives the most similar rows. Its time grows
with ``n_query x n_base x dim``: measured by ``benchmarks/inspect_bench.py --scale``
(``docs/inspect.md``). Past :data:`PCA_ABOVE` base rows the search first runs on a 128-column PCA
of the rows for ``k + CANDIDATES_EXTRA`` candidates, and the candidates' similarities are then
computed exactly on the full rows: the same neighbours in practice (on clothing-small's 3,781
EfficientNet-Lite0 rows: the same nearest neighbour for 99.8% of the images and for every pair
above 0.9 cosine), at a fifth of the time.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CANDIDATES_EXTRA", "PCA_ABOVE", "PCA_DIM", "nearest", "unit_rows"]

#: Base rows above which candidates are searched on a PCA of the rows first.
PCA_ABOVE = 5_000
#: Columns of that PCA.
PCA_DIM = 128
#: Candidates beyond ``k`` re-scored exactly on the full rows.
CANDIDATES_EXTRA = 10


def unit_rows(features) -> np.ndarray:
    """``features`` as float32 rows of unit length (a zero row stays zero).

    Examples
    --------
    >>> unit_rows([[3.0, 4.0], [0.0, 0.0]]).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    x = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _search(query: np.ndarray, base: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean").fit(base)
    return index.kneighbors(query, return_distance=False)


def nearest(query, base, k: int = 1, *, same: bool = False, seed: int = 0,
            pca_above: int = PCA_ABOVE) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``base`` most similar (cosine) to each row of ``query``.

    Parameters
    ----------
    query, base : array-like (n, d)
        Unit rows (:func:`unit_rows`).
    k : int
        Neighbours per query row (at most ``len(base)``, minus one with ``same``).
    same : bool
        ``query`` is ``base``: each row's own index is left out of its neighbours.
    seed : int
        Seed of the PCA's randomised solver (large bases only).
    pca_above : int
        Base size above which candidates come from a PCA of the rows (:data:`PCA_ABOVE`).

    Returns
    -------
    similarity : ndarray (n, k) float32
        Cosine similarities, most similar first.
    index : ndarray (n, k) int64
        Rows of ``base``.

    Examples
    --------
    >>> x = unit_rows([[1, 0], [0.9, 0.1], [0, 1]])
    >>> sim, idx = nearest(x, x, 1, same=True)
    >>> idx.ravel().tolist()
    [1, 0, 1]
    """
    query = np.asarray(query, dtype=np.float32)
    base = np.asarray(base, dtype=np.float32)
    k = int(min(k, len(base) - (1 if same else 0)))
    if k < 1 or len(query) == 0:
        return np.zeros((len(query), 0), np.float32), np.zeros((len(query), 0), np.int64)
    want = k + (1 if same else 0)
    if len(base) > pca_above and base.shape[1] > PCA_DIM:
        from sklearn.decomposition import PCA

        pca = PCA(PCA_DIM, svd_solver="randomized", random_state=seed).fit(
            base[np.random.default_rng(seed).permutation(len(base))[:20_000]])
        want_c = min(len(base), want + CANDIDATES_EXTRA)
        cand = _search(pca.transform(query).astype(np.float32),
                       pca.transform(base).astype(np.float32), want_c)
    else:
        cand = _search(query, base, want)
    sims = np.concatenate([  # exact, on the full rows (in chunks: n x k x d floats is large)
        np.einsum("nd,nkd->nk", query[i:i + 2048], base[cand[i:i + 2048]])
        for i in range(0, len(query), 2048)])
    if same:  # the row itself is left out (it may tie with an exact twin: drop it by index)
        sims = np.where(cand == np.arange(len(query))[:, None], -np.inf, sims)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return (np.take_along_axis(sims, order, 1).astype(np.float32),
            np.take_along_axis(cand, order, 1).astype(np.int64))
