"""Unfreeze strategies for fine-tuning: a table of rows, each turning parameters into phases.

A strategy is a function ``(base, spec, params) -> list[Phase]``. A :class:`Phase` names the base's
top-level layers ("units") that train in it, its epochs and learning rate, and optional per-unit
learning-rate multipliers (discriminative learning rates). The estimator runs the phases in order,
re-applying ``trainable`` and recompiling before each.

Two rules hold in every strategy, enforced by :func:`set_trainable` rather than by the rows:
BatchNormalization layers stay frozen (``trainable=False``), and the base is always *called* with
``training=False`` by the model, so their moving statistics never change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from featx.utils.checks import check_int
from featx.utils.registry import Registry

if TYPE_CHECKING:  # pragma: no cover - the table imports no Keras; the functions import it
    import keras

__all__ = [
    "ALL",
    "STRATEGIES",
    "Phase",
    "Strategy",
    "layer_blocks",
    "resolve_phases",
    "set_trainable",
    "unit_layers",
]

ALL: None = None  # Phase.layers value meaning "every unit of the base"


@dataclass(frozen=True)
class Phase:
    """One training phase: which base units train, for how long, at what learning rate."""

    name: str
    layers: tuple[str, ...] | None  # () = head only; None (ALL) = the whole base
    epochs: int
    learning_rate: float
    lr_multipliers: Mapping[str, float] = field(default_factory=dict)  # unit name -> factor


@dataclass(frozen=True)
class Strategy:
    """A row of the strategy table."""

    name: str
    build: Callable[[keras.Model, Any, dict], list[Phase]]
    defaults: Mapping[str, Any]
    doc: str


# --------------------------------------------------------------------------- layers and blocks
def unit_layers(base: keras.Model) -> list[keras.layers.Layer]:
    """The base's top-level layers in order, without the input layer."""
    import keras

    return [lyr for lyr in base.layers if not isinstance(lyr, keras.layers.InputLayer)]


def _all_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=False, recursive=True))
    out = []
    for sub in getattr(layer, "layers", []):
        out.append(sub)
        out.extend(_all_layers(sub))
    return out


def is_batchnorm(layer: keras.layers.Layer) -> bool:
    import keras

    return isinstance(layer, keras.layers.BatchNormalization)


def set_trainable(base: keras.Model, layers: Sequence[str] | None) -> None:
    """Make exactly the named units trainable (all when ``None``); BatchNorm always frozen."""
    base.trainable = True
    wanted = None if layers is None else set(layers)
    for unit in unit_layers(base):
        unit.trainable = wanted is None or unit.name in wanted
    for lyr in [base, *_all_layers(base)]:
        if is_batchnorm(lyr):
            lyr.trainable = False


_BLOCK_RE = re.compile(r"^(block_?\d+)")


def _block_of_fallback(names: Sequence[str]) -> list[str]:
    """Group names by a ``blockN``/``block_N`` prefix; before the first block is ``stem``, after
    the last is ``top`` (EfficientNet's own ``top_*`` names land in ``top`` too)."""
    matches = [_BLOCK_RE.match(n) for n in names]
    idx = [i for i, m in enumerate(matches) if m]
    first, last = (idx[0], idx[-1]) if idx else (len(names), -1)
    out = []
    for i, m in enumerate(matches):
        if m:
            out.append(m.group(1))
        elif i < first:
            out.append("stem")
        elif i > last:
            out.append("top")
        else:  # an unnamed layer between blocks (e.g. a shared add) joins the block before it
            out.append(out[-1] if out else "stem")
    return out


def layer_blocks(base: keras.Model, spec: Any = None) -> dict[str, list[str]]:
    """Named blocks of the base, bottom to top: ``{block: [unit names]}``.

    Uses the backbone spec's own grouping when it has one (``spec.layer_blocks(names)`` returning
    one block name per layer name, or ``spec.block_of(name)``), else a ``blockN`` prefix rule.
    """
    names = [u.name for u in unit_layers(base)]
    if spec is not None and callable(getattr(spec, "layer_blocks", None)):
        groups = list(spec.layer_blocks(names))
    elif spec is not None and callable(getattr(spec, "block_of", None)):
        groups = [spec.block_of(n) for n in names]
    else:
        groups = _block_of_fallback(names)
    blocks: dict[str, list[str]] = {}
    for name, group in zip(names, groups, strict=True):
        blocks.setdefault(group, []).append(name)
    return blocks


def _units_of_blocks(blocks: dict[str, list[str]], wanted: Sequence[str], param: str) -> tuple:
    unknown = [b for b in wanted if b not in blocks]
    if unknown:
        raise ValueError(f"{param} names unknown block(s) {unknown}; allowed: {list(blocks)}")
    return tuple(n for b in blocks if b in wanted for n in blocks[b])


def _top_units(base: keras.Model, n: int, param: str) -> tuple[str, ...]:
    units = unit_layers(base)
    check_int(param, n, 1)
    return tuple(u.name for u in units[-n:])


def _multipliers(base, spec, layers: tuple[str, ...] | None, decay: float) -> dict[str, float]:
    """Discriminative learning rates: the top trainable block gets 1, each block below ``decay``
    times the one above. ``decay == 1`` turns it off."""
    if decay == 1.0:
        return {}
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"lr_decay must be in (0, 1], got {decay!r}")
    chosen = None if layers is None else set(layers)
    factor, out = 1.0, {}
    for names in reversed(list(layer_blocks(base, spec).values())):
        live = [n for n in names if chosen is None or n in chosen]
        if not live:
            continue
        out.update({n: factor for n in live})
        factor *= decay
    return out


# --------------------------------------------------------------------------- the rows
def _lr(params: dict, default: float) -> float:
    lr = params.get("learning_rate")
    return float(default if lr is None else lr)


def _frozen(base, spec, p) -> list[Phase]:
    return [Phase("head", (), p["epochs"], _lr(p, 1e-3))]


def _full(base, spec, p) -> list[Phase]:
    return [Phase("full", ALL, p["epochs"], _lr(p, 1e-5),
                  _multipliers(base, spec, ALL, p["lr_decay"]))]


def _last_n(base, spec, p) -> list[Phase]:
    layers = _top_units(base, p["n"], "strategy_params['n']")
    return [Phase(f"last_{p['n']}", layers, p["epochs"], _lr(p, 1e-4),
                  _multipliers(base, spec, layers, p["lr_decay"]))]


def _blocks(base, spec, p) -> list[Phase]:
    blocks = layer_blocks(base, spec)
    wanted = p["blocks"] if p["blocks"] is not None else list(blocks)[-2:]
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    layers = _units_of_blocks(blocks, wanted, "strategy_params['blocks']")
    return [Phase("blocks:" + "+".join(wanted), layers, p["epochs"], _lr(p, 1e-4),
                  _multipliers(base, spec, layers, p["lr_decay"]))]


def default_schedule(base, spec, epochs: int) -> list[tuple]:
    """Top two blocks, then one more block below them; the epochs split in two."""
    names = list(layer_blocks(base, spec))
    first = max(1, epochs // 2)
    return [(names[-2:], first), (names[-3:-2], max(1, epochs - first))]


def _staged(base, spec, p) -> list[Phase]:
    schedule = p["schedule"] if p["schedule"] is not None else default_schedule(
        base, spec, p["epochs"])
    blocks = layer_blocks(base, spec)
    phases, so_far = [], []
    for k, entry in enumerate(schedule):
        if not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) not in (2, 3):
            raise ValueError(
                "schedule entries must be (layers, epochs) or (layers, epochs, learning_rate) "
                f"with layers an int (top N) or block name(s), got {entry!r}")
        what, epochs = entry[0], int(entry[1])
        lr = float(entry[2]) if len(entry) == 3 else _lr(p, 1e-4)
        if isinstance(what, int) and not isinstance(what, bool):
            layers = _top_units(base, what, f"schedule[{k}][0]")
        else:
            new = [what] if isinstance(what, str) else list(what)
            so_far += [b for b in new if b not in so_far]  # staged unfreezing is cumulative
            layers = _units_of_blocks(blocks, so_far, f"schedule[{k}][0]")
        phases.append(Phase(f"stage{k + 1}", layers, epochs, lr,
                            _multipliers(base, spec, layers, p["lr_decay"])))
    return phases


def _top_blocks(base, spec, p) -> list[Phase]:
    """The top ``n_blocks`` blocks in one phase, each block below ``lr_decay`` times the learning
    rate of the one above: the CPU recipe (no gradient flows below the lowest trained block)."""
    blocks = layer_blocks(base, spec)
    n = check_int("strategy_params['n_blocks']", p["n_blocks"], 1)
    wanted = list(blocks)[-n:]
    layers = _units_of_blocks(blocks, wanted, "strategy_params['n_blocks']")
    return [Phase(f"top_blocks:{len(wanted)}", layers, p["epochs"], _lr(p, 1e-4),
                  _multipliers(base, spec, layers, p["lr_decay"]))]


STRATEGIES: Registry[Strategy] = Registry("strategy", {
    row.name: row
    for row in [
        Strategy("frozen", _frozen, {}, "head only; the base never trains"),
        Strategy("full", _full, {"lr_decay": 1.0}, "every layer (except BatchNorm), LR 1e-5"),
        Strategy("last_n", _last_n, {"n": 20, "lr_decay": 1.0}, "the top n layers, LR 1e-4"),
        Strategy("blocks", _blocks, {"blocks": None, "lr_decay": 1.0},
                 "named blocks (default: the top two, e.g. block7+top), LR 1e-4"),
        Strategy("staged", _staged, {"lr_decay": 1.0},
                 "a schedule of (layers or blocks, epochs[, lr]), unfreezing more each phase"),
        Strategy("top_blocks", _top_blocks, {"n_blocks": 3, "lr_decay": 0.5},
                 "the top n_blocks blocks at once, discriminative LRs (each block below "
                 "lr_decay x the one above; top LR 1e-4): with the warm start and early "
                 "stopping, the CPU recipe"),
    ]
})


def resolve_phases(strategy: str, base, spec, *, epochs: int, learning_rate: float | None,
                   schedule, strategy_params: Mapping[str, Any] | None) -> list[Phase]:
    """Look up the strategy row and build its phases; errors list what is allowed."""
    row = STRATEGIES.get(strategy)
    extra = dict(strategy_params or {})
    unknown = sorted(set(extra) - set(row.defaults))
    if unknown:
        raise ValueError(f"strategy_params {unknown} not used by strategy {strategy!r}; "
                         f"allowed: {sorted(row.defaults)}")
    params = {**row.defaults, **extra, "epochs": epochs, "learning_rate": learning_rate,
              "schedule": schedule}
    return row.build(base, spec, params)


def variable_multipliers(base: keras.Model, unit_factors: Mapping[str, float]) -> dict:
    """Unit-name factors -> ``{variable.path: factor}`` for :class:`DiscriminativeAdam`."""
    out = {}
    for unit in unit_layers(base):
        if unit.name in unit_factors:
            for v in unit.trainable_weights:
                out[v.path] = float(unit_factors[unit.name])
    return out


def __getattr__(name: str):
    if name == "DiscriminativeAdam":  # moved to featx.finetune.optim (it imports Keras)
        from featx.finetune.optim import DiscriminativeAdam

        return DiscriminativeAdam
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
