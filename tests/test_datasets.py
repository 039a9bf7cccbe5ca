"""Bundled data: the clothing demo ships inside featx and reads without a download."""

from __future__ import annotations

from featx.datasets import load_clothing_mini
from featx.images import read_image


def test_bundled_demo_data():
    data = load_clothing_mini()
    assert set(data) == {"train", "test"}
    assert len(data["train"]) == 300 and len(data["test"]) == 100
    assert not data["train"].skipped
    assert set(data["train"].class_counts().values()) == {30}
    img = read_image(data["train"].paths[0], size=224)
    assert img.shape == (224, 224, 3) and img.std() > 10  # a real photo, not a blank
