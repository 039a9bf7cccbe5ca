"""Write the pre-move fixtures in this folder (run once, with featx at commit 24c83d5).

    FEATX_CACHE_DIR=$(mktemp -d) python tests/data/legacy/make_legacy.py

- ``cache/``: a feature cache (row store + dataset file) of 16 bundled clothing-mini test
  photos, EfficientNet-Lite0 with its seeded random weights at 64 px.
- ``transfer.featx``: a TransferClassifier (same extractor, logreg head) fitted on them.
- ``finetuned.featx``: a FineTunedClassifier (mobilenet_v3_small row, random weights, 32 px,
  strategy "frozen", one epoch) fitted on them.
- ``expected.npz``: the features and both models' ``predict_proba`` on the same photos.

``tests/test_layout.py`` checks that today's featx reuses the cache with 0 backbone passes and
that both files load and predict identically.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[2]))

import featx  # noqa: E402
from featx.datasets import load_clothing_mini  # noqa: E402

EXTRACTOR = {"backbone": "efficientnet_lite0", "weights": None, "input_size": 64}


def photos():
    """16 bundled test photos: the first 4 of each of the first 4 classes, in a fixed order."""
    test = load_clothing_mini()["test"]
    keep = [i for c in range(4) for i in np.flatnonzero(test.labels == c)[:4]]
    return test.subset(keep)


def main() -> None:
    data = photos()
    cache = HERE / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    fs = featx.extract_features(data, **EXTRACTOR, cache=str(cache), verbose=0)
    for f in cache.rglob("*.lock"):
        f.unlink()
    clf = featx.TransferClassifier(**EXTRACTOR, head="logreg", cache=False, random_state=0)
    clf.fit(data.paths, np.asarray(data.label_names))
    featx.save(clf, HERE / "transfer.featx")
    ft = featx.FineTunedClassifier("mobilenet_v3_small", weights=None, input_size=(32, 32),
                                   strategy="frozen", epochs=1, batch_size=8,
                                   validation_split=0.0, random_state=0, verbose=0)
    ft.fit(data.paths, np.asarray(data.label_names))
    featx.save(ft, HERE / "finetuned.featx")
    np.savez(HERE / "expected.npz", features=fs.features, ids=np.asarray(fs.ids),
             names=np.asarray([os.path.relpath(p, data.paths[0] + "/../../..")
                               for p in data.paths]),
             transfer=clf.predict_proba(data.paths), finetuned=ft.predict_proba(data.paths))


if __name__ == "__main__":
    main()
