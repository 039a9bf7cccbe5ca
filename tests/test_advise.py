"""Advice: which transfer-learning strategy fits a dataset, from measured size and similarity
(synthetic features stand in for the backbone: the rules are what is tested here)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest


@pytest.fixture
def fake_extract(monkeypatch):
    """advise's extract_features -> synthetic features chosen per test (no backbone runs)."""
    import featx.advise

    state = {"sep": 4.0}

    def fake(dataset, backbone, **kw):
        rng = np.random.default_rng(len(dataset))
        y = np.asarray(dataset.labels)
        X = rng.normal(size=(len(y), 8))
        X[np.arange(len(y)), y] += state["sep"]
        return SimpleNamespace(features=X, labels=y, class_names=dataset.class_names)

    monkeypatch.setattr(featx.advise, "extract_features", fake)
    return state


def _dataset(n_per_class, k=3):
    from featx.data import ImageDataset

    labels = np.repeat(np.arange(k), n_per_class)
    return ImageDataset([f"/x/{i}.jpg" for i in range(len(labels))], labels,
                        [f"c{i}" for i in range(k)], name="synthetic")


@pytest.mark.parametrize("sep, large, expected", [
    (4.0, 1000, ("small", "similar", "frozen")),
    (0.0, 1000, ("small", "different", "last_n")),
    (4.0, 10, ("large", "similar", "blocks")),
    (0.0, 10, ("large", "different", "staged")),
])
def test_advise_applies_the_size_similarity_rules(fake_extract, sep, large, expected):
    from featx.advise import advise

    fake_extract["sep"] = sep
    advice = advise({"train": _dataset(24), "test": _dataset(10)},
                    thresholds={"large_images_per_class": large})
    assert (advice.size, advice.similarity, advice.strategy) == expected
    assert advice.images_per_class == {"c0": 24, "c1": 24, "c2": 24}
    assert advice.curve["n_per_class"] == [1, 2, 5, 10, 20, 24]
    text = str(advice)
    assert f"large means >= {large}" in text and "lift" in text and advice.command in text
    assert json.dumps(advice.to_dict())


def test_advise_rules_cover_every_cell_and_reject_unknown_thresholds(fake_extract):
    from featx.advise import RULES, advise

    assert set(RULES) == {(s, m) for s in ("small", "large") for m in ("similar", "different")}
    with pytest.raises(ValueError, match="unknown key"):
        advise(_dataset(5), thresholds={"big": 3})


def test_advice_command_repeats_the_probes_backbone_and_size(fake_extract):
    from featx.advise import advise

    splits = {"train": _dataset(24), "test": _dataset(10)}
    assert "--input-size" not in advise(splits).command
    advice = advise(splits, backbone="mobilenet_v2", input_size=(64, 96))
    assert advice.command.endswith(" --backbone mobilenet_v2 --input-size 64x96")
    assert advise(splits, input_size=64).command.endswith(" --input-size 64")
