"""Helpers shared by the ``featx`` commands: exit codes, argument conversions, DATA resolution,
quiet Keras start-up, progress lines and plain-text tables. Nothing here imports Keras at import
time (``featx --version`` must stay instant)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from featx.utils.tables import text_table

_EXIT_ERROR, _EXIT_USAGE, _EXIT_INTERRUPT = 1, 2, 130


class CommandError(Exception):
    """A command cannot do what was asked; the message is shown as is."""


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _weights(value: str | None):
    return None if value is None or value.lower() in ("none", "random") else value


def _verbose(args) -> int:
    return 0 if getattr(args, "quiet", False) else 1


def _resolve(args) -> dict:
    """DATA -> splits (cheap: no Keras), then Keras imported quietly for the work to come."""
    from featx.sources import resolve_data

    splits = resolve_data(args.data, test_size=args.test_size, val_size=args.val_size,
                          limit=args.limit, seed=args.seed)
    _keras(args)
    return splits


def _say(args, text: str = "") -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def _print_table(rows: Sequence[dict], columns: Sequence[str], headers: Sequence[str] | None
                 = None) -> None:
    """A plain-text table on stdout (:func:`featx.utils.tables.text_table`, 4 decimals)."""
    print(text_table(rows, columns, headers=headers, digits=4))


def _fit_kwargs(args) -> dict:
    return dict(weights=_weights(args.weights), input_size=args.input_size,
                pooling=args.pooling, cache=args.cache, batch_size=args.batch_size,
                decoder=args.decoder)


def _keras(args) -> None:
    """Import Keras (and its backend) with the C++ start-up chatter of TensorFlow sent to
    /dev/null: those lines are not featx's and would bury its one-line messages. Commands call
    this after their cheap checks, so a bad argument fails fast. Python-level errors surface
    later, when the command imports Keras itself. ``--debug`` leaves stderr alone."""
    if "keras" in sys.modules or getattr(args, "debug", False):
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        import keras  # noqa: F401
    except Exception:  # noqa: BLE001 - the command itself reports a broken install
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
