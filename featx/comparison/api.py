"""The public entry point: :func:`compare` runs the comparison loop
(:func:`~featx.comparison.run.run_comparison`) on one backbone, or first the feature-choice step
(:func:`~featx.comparison.selection.select_features`) when it is asked to choose among
backbones, layer taps or views.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from featx.comparison.run import DEFAULT_HEADS, run_comparison
from featx.comparison.selection import feature_choices, select_features

__all__ = ["compare"]


def compare(train, test, *, validation=None, backbone: str = "efficientnet_lite0",
            weights="imagenet", heads: Sequence[str] = DEFAULT_HEADS,
            finetune: Sequence[str] = (), finetune_params: Mapping | None = None,
            cache=None, input_size=None, decoder: str = "pillow", taps=None, views=None,
            concat: bool = False, norms=None, sizes=None, folds: int = 5,
            metric: str = "accuracy",
            rule: str = "auto", budget=None, verbose: int = 1):
    """Evaluate frozen heads and fine-tuning strategies on the same split.

    Parameters
    ----------
    train, test : ImageDataset
    validation : ImageDataset, optional
        Early-stopping data for fine-tuning; without it each fine-tune holds out
        ``validation_split`` of ``train``.
    backbone, weights, input_size, decoder
        As in :func:`featx.extract.extract_features`; fine-tuning decodes with the same
        ``decoder``.
    heads : sequence of str
        Frozen heads (names from :func:`featx.heads.list_heads`).
    finetune : sequence of str, default=()
        Strategies (rows of :data:`featx.finetune.STRATEGIES`) to fine-tune, e.g.
        ``("staged",)``; empty (the default) for heads only. Fine-tuning is opt-in everywhere:
        ``featx compare --finetune staged`` and a pipeline's ``finetune.strategies`` default to
        none too. *Changed:* the default was ``("staged",)``.
    finetune_params : dict, optional
        :class:`~featx.finetune.FineTunedClassifier` parameters, shared, or keyed by strategy
        name (``{"blocks": {"epochs": 3}, "staged": {...}}``). An ``input_size`` here fine-tunes
        at that size while the heads keep ``input_size`` (e.g. heads at 224, fine-tuning at 160
        on a CPU); the warm start then reads (or extracts) features at the fine-tuning size.
    cache
        Feature cache, as in :func:`featx.extract.extract_features`.
    taps, views, concat, norms, sizes, folds, metric, rule, budget
        A feature-choice step (:func:`select_features`) instead of one backbone's features:
        candidate tap sets (``[[-1], [-2, -3, -4]]``), views (``["none", "flip"]``),
        normalisations (``["none", "sqrt"]``, rows of :data:`featx.heads.FEATURE_NORMS`), input
        sizes (``[96, 224]``: each backbone at each size, a pass per size), and
        with ``concat`` the concatenation of several ``backbone`` (a list then) as a candidate; one
        row per candidate with the first of ``heads``, the others on the candidate chosen by
        ``folds``-fold cross-validation on ``train`` by ``rule`` within ``budget``
        (``selected: True``; :func:`~featx.comparison.choose_candidate`; ``rule="auto"``: the
        best score within a budget, else the cheapest within one standard error of it).
        Fine-tunes then run on the first backbone.
    verbose : int, default=1
        Progress of the extractions and fine-tunes, and a line as the heads are fitted, on
        stderr (or the ``"featx"`` logger when it has a handler); ``0`` silent.

    Returns
    -------
    HeadTable
        Rows of :data:`featx.evaluate.ROW_KEYS`: frozen rows (``kind="head"``) then fine-tune
        rows (``kind="finetune"``, named ``finetune:<strategy>``, with the fitted ``estimator``).
        ``backbone_forward_passes`` is the backbone work this call ran for a row, counted
        (:func:`featx.extract.forward_pass_count`): for heads, the images the extraction sent
        through the backbone (``n_train + n_test`` on a cold cache, shared by every head; 0 when
        every feature came from the cache); for fine-tuning the images of every epoch,
        validation, warm-start features not found in the cache, and the test predictions. The
        loop is :func:`run_comparison`.
    """
    backbones = [backbone] if isinstance(backbone, str) else list(backbone)
    if taps is None and views is None and norms is None and sizes is None \
            and not (concat and len(backbones) > 1):
        if len(backbones) != 1:
            raise ValueError(f"backbone must be one name unless taps, views or concat select "
                             f"among several, got backbone={backbone!r}")
        return run_comparison(train, test, validation=validation, backbone=backbones[0],
                              weights=weights, heads=heads, finetune=finetune,
                              finetune_params=finetune_params, cache=cache,
                              input_size=input_size, decoder=decoder, verbose=verbose).table
    choices = feature_choices(backbones, taps=taps or (), views=views or ("none",),
                              concat=concat, norms=norms or ("none",),
                              sizes=sizes or (None,))
    table = select_features(train, test, choices, heads=list(heads) or ["logreg"],
                            select_head=(list(heads) or ["logreg"])[0], folds=folds,
                            metric=metric, rule=rule, budget=budget, cache=cache,
                            verbose=verbose,
                            extract_params={"weights": weights, "input_size": input_size,
                                            "decoder": decoder}).table
    if finetune:
        tuned = run_comparison(train, test, validation=validation, backbone=backbones[0],
                               weights=weights, heads=(), finetune=finetune,
                               finetune_params=finetune_params, cache=cache,
                               input_size=input_size, decoder=decoder,
                               verbose=verbose).table
        for row in tuned:
            table.append(row)
    return table
