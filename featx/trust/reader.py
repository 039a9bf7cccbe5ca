"""The bounded reader: every item featx reads goes through it, with a size cap, a deadline and
bounded retries."""

from __future__ import annotations

__all__ = ["MAX_ITEM_BYTES", "max_item_bytes"]

#: The default cap on one item's bytes (an image, a record, a member): generous for photos.
MAX_ITEM_BYTES = 256 * 2**20


def max_item_bytes() -> int:
    """The most bytes one item may have."""
    return MAX_ITEM_BYTES
