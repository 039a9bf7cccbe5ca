"""Helpers shared by the ``featx`` commands: exit codes, argument conversions, DATA resolution,
quiet Keras start-up, progress lines and plain-text tables. Nothing here imports Keras at import
time (``featx --version`` must stay instant)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from featx.errors import CommandError  # noqa: F401 (its public home is featx.errors)
from featx.utils.progress import quiet_tensorflow, say
from featx.utils.tables import text_table

_EXIT_ERROR, _EXIT_USAGE, _EXIT_INTERRUPT = 1, 2, 130


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _weights(value: str | None):
    from featx.backbones import random_weights  # the table half: no Keras

    return None if random_weights(value) else value


def _verbose(args) -> int:
    return 0 if getattr(args, "quiet", False) else 1


def _check_names(args) -> None:
    """``--backbone``, ``--weights``, ``--head`` and ``--heads`` checked against their tables (no
    Keras: well under a second), so a typo fails before TensorFlow starts or any image is read."""
    if getattr(args, "backbone", None) is not None:
        from featx.backbones import check_weights, get_backbone_spec

        get_backbone_spec(args.backbone)
        check_weights(_weights(args.weights))
    heads = [args.head] if isinstance(getattr(args, "head", None), str) else []
    heads += _names(args.heads) if isinstance(getattr(args, "heads", None), str) else []
    if heads:
        from featx.heads.names import check_head_name  # no scikit-learn: a typo is answered at once

        for head in heads:
            check_head_name(head)


def _resolve(args) -> dict:
    """Names checked (:func:`_check_names`), then DATA (a folder, CSV, shards or URL:
    :func:`featx.sources.resolve_data`; ``--data-format`` when its suffix does not say) -> splits;
    no Keras: it comes (quietly,
    see :func:`featx.cli.main.main`) only when a command needs a model, so a cache hit of
    ``featx extract`` never imports it."""
    from featx.sources import resolve_data

    _check_names(args)
    splits = resolve_data(args.data, test_size=args.test_size, val_size=args.val_size,
                          limit=args.limit, seed=args.seed,
                          path_column=getattr(args, "path_column", "path"),
                          label_column=getattr(args, "label_column", "label"),
                          format=getattr(args, "data_format", None),
                          allow_local=getattr(args, "allow_local", False))
    return splits


def _say(args, text: str = "") -> None:
    """A message on stderr through the ``"featx"`` logger (:func:`featx.cli.main.main` gives it
    its handler); nothing with ``--quiet``."""
    if not getattr(args, "quiet", False):
        say(text)


def _print_table(rows: Sequence[dict], columns: Sequence[str], headers: Sequence[str] | None
                 = None) -> None:
    """A plain-text table on stdout (:func:`featx.utils.tables.text_table`, 4 decimals)."""
    print(text_table(rows, columns, headers=headers, digits=4))


def _fit_kwargs(args) -> dict:
    return dict(weights=_weights(args.weights), input_size=args.input_size,
                pooling=args.pooling, cache=args.cache, batch_size=args.batch_size,
                decoder=args.decoder)


def _keras(args) -> None:
    """Import Keras (and its backend) now, with TensorFlow's C++ start-up chatter kept off stderr
    (:func:`featx.utils.progress.quiet_tensorflow`, which :func:`featx.cli.main.main` sets up
    unless ``--debug``): those lines are not featx's and would bury its one-line messages.
    Commands call this after their cheap checks, so a bad argument fails fast. Python-level
    errors surface later, when the command imports Keras itself."""
    if "keras" in sys.modules:
        return
    if not getattr(args, "debug", False):
        quiet_tensorflow()
    try:
        import keras  # noqa: F401
    except Exception:  # noqa: BLE001 - the command itself reports a broken install
        pass
