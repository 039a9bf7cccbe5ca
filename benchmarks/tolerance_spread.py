"""How much recomputed numbers move: the figures behind the suite's tolerances (docs/testing.md,
``FEATURE_RTOL`` and ``PROBA_ATOL`` in tests/helpers.py).

For each runtime (Keras, ONNX Runtime), on today's installed releases:

- features of the 16 legacy photos (``tests/data/legacy``, written by an earlier featx on
  earlier releases) against the features stored then: max |a - b| / max |b|;
- the two legacy saved models' probabilities against those stored then: max |a - b|;
- ONNX Runtime against Keras on the same photos with the real EfficientNet-Lite0 weights at
  224 px: max |a - b| / max |b|.

    python benchmarks/tolerance_spread.py

Prints one line per measurement and the largest of each kind; nothing is cached on disk
(``cache=False``; the graph and weights go to a temporary folder).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LEGACY = ROOT / "tests" / "data" / "legacy"
EXTRACTOR = {"backbone": "efficientnet_lite0", "weights": None, "input_size": 64}


def _relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def main() -> None:
    os.environ.setdefault("FEATX_CACHE_DIR", tempfile.mkdtemp(prefix="featx-spread-"))
    import featx
    from featx.extract import extract_features

    expected = np.load(LEGACY / "expected.npz")
    test = featx.load_clothing_mini()["test"]
    root = Path(test.paths[0]).parents[2]
    index = {p: i for i, p in enumerate(test.paths)}
    photos = test.subset([index[str(root / n)] for n in expected["names"]])

    features, probas = [], []
    for runtime in ("keras", "onnxruntime"):
        fs = extract_features(photos, **EXTRACTOR, cache=False, verbose=0, runtime=runtime)
        rel = _relative(fs.features, expected["features"])
        features.append(rel)
        print(f"features, legacy releases vs today on {runtime}: {rel:.2g} (relative)")
        os.environ["FEATX_RUNTIME"] = runtime
        for name in ("transfer", "finetuned"):
            proba = featx.load(LEGACY / f"{name}.featx").predict_proba(photos.paths)
            diff = float(np.abs(proba - expected[name]).max())
            probas.append(diff)
            print(f"probabilities of legacy {name}.featx on {runtime}: {diff:.2g} (absolute)")
        del os.environ["FEATX_RUNTIME"]
    lite = {"backbone": "efficientnet_lite0", "input_size": 224, "cache": False, "verbose": 0}
    keras_fs = extract_features(photos, **lite, runtime="keras")
    ort_fs = extract_features(photos, **lite, runtime="onnxruntime")
    rel = _relative(ort_fs.features, keras_fs.features)
    features.append(rel)
    print(f"features, Lite0 ImageNet 224, ONNX Runtime vs Keras: {rel:.2g} (relative)")
    print(f"largest: features {max(features):.2g} relative (FEATURE_RTOL), "
          f"probabilities {max(probas):.2g} absolute (PROBA_ATOL)")


if __name__ == "__main__":
    main()
