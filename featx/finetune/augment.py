"""Training-time augmentation for fine-tuning: a table of Keras preprocessing layers.

Each row maps an option name to a built-in Keras layer and its default strength. The layers are
active only when the model is called with ``training=True`` (inside ``fit``), so the exported model
predicts on the raw image unchanged. All of them are built-in and serialisable, which keeps the
``.keras`` export loadable with ``safe_mode=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featx.utils.registry import Registry

if TYPE_CHECKING:  # pragma: no cover - the table imports no Keras; its rows import it to build
    import keras

__all__ = ["AUGMENTATIONS", "DEFAULT_AUGMENT", "build_augmentation", "resolve_augment"]


@dataclass(frozen=True)
class Augmentation:
    """One row: ``make(value, seed)`` builds the layer for the option's value."""

    name: str
    make: Callable[[Any, int | None], keras.layers.Layer]
    default: Any
    doc: str


def _layer(cls: str, name: str, **fixed) -> Callable[[Any, int | None], keras.layers.Layer]:
    """``make`` for a row: builds ``keras.layers.<cls>(value, seed=seed, name=name, **fixed)``,
    importing Keras only then (the table itself is read by validation, which needs no Keras)."""

    def make(value, seed):
        import keras

        return getattr(keras.layers, cls)(value, seed=seed, name=name, **fixed)

    return make


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation", {
    row.name: row
    for row in [
        Augmentation(
            "flip",
            _layer("RandomFlip", "aug_flip"),
            "horizontal",
            "RandomFlip mode: 'horizontal', 'vertical' or 'horizontal_and_vertical'",
        ),
        Augmentation(
            "rotation",
            _layer("RandomRotation", "aug_rotation", fill_mode="reflect"),
            0.05,
            "RandomRotation factor, a fraction of a full turn",
        ),
        Augmentation(
            "zoom",
            _layer("RandomZoom", "aug_zoom", fill_mode="reflect"),
            0.1,
            "RandomZoom height factor (fraction of the size)",
        ),
        Augmentation(
            "brightness",
            _layer("RandomBrightness", "aug_brightness", value_range=(0, 255)),
            0.1,
            "RandomBrightness factor on the 0-255 scale",
        ),
        Augmentation(
            "contrast",
            _layer("RandomContrast", "aug_contrast", value_range=(0, 255)),
            0.1,
            "RandomContrast factor",
        ),
    ]
})

DEFAULT_AUGMENT: dict[str, Any] = {name: row.default for name, row in AUGMENTATIONS.items()}


def resolve_augment(augment: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Turn the estimator's ``augment`` parameter into ``{option: value}`` (enabled options only).

    ``"default"`` (or ``True``, the pipeline's spelling) gives every row at its default; ``None``
    (or ``False``) gives nothing; a dict overrides the defaults of the options it names
    (``None``/``False`` turns one off). An option absent from a dict keeps its default.
    """
    allowed = "'default' (or True), None (or False) or a dict of options"
    if augment is None or augment is False:
        return {}
    if augment is True or augment == "default":
        return dict(DEFAULT_AUGMENT)
    if not isinstance(augment, Mapping):
        raise ValueError(f"augment must be {allowed}; got augment={augment!r}")
    unknown = sorted(set(augment) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(
            f"augment has unknown option(s) {unknown}; allowed: {sorted(AUGMENTATIONS)}"
        )
    merged = {**DEFAULT_AUGMENT, **augment}
    return {k: v for k, v in merged.items() if v is not None and v is not False and v != 0}


def build_augmentation(options: Mapping[str, Any], seed: int | None = None) -> list:
    """Layers for the enabled ``options`` in table order (each with its own derived seed)."""
    layers = []
    for i, (name, row) in enumerate(AUGMENTATIONS.items()):
        if name in options:
            layers.append(row.make(options[name], None if seed is None else seed + i))
    return layers
