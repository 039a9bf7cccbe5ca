"""Linear probe of EfficientNet-Lite features on clothing-small: the acceptance measurement.

Images are read with plain PIL (RGB, bilinear resize to the variant's resolution),
mapped by ``(x - 127) / 128``, run through the frozen trunk and global-average
pooled; a StandardScaler + LogisticRegression fits the train split and is scored
on the test split. The same is done with randomly initialised weights for contrast.

Usage (from the repository root)::

    python3 benchmarks/lite_linear_probe.py                      # lite0, full data set
    python3 benchmarks/lite_linear_probe.py --variant efficientnet_lite2 --limit 20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featx.backbones.efficientnet_lite import (  # noqa: E402
    LITE_VARIANTS,
    build_efficientnet_lite,
    preprocess_input,
)

DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "clothing-small"


def list_split(root: Path, limit: int | None) -> tuple[list[Path], np.ndarray, list[str]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for k, name in enumerate(classes):
        files = sorted((root / name).glob("*.jpg"))[:limit]
        paths += files
        labels += [k] * len(files)
    return paths, np.asarray(labels), classes


def features(model, paths: list[Path], size: int, batch_size: int) -> np.ndarray:
    import keras

    pooled = keras.Sequential([model, keras.layers.GlobalAveragePooling2D()])
    out = []
    for start in range(0, len(paths), batch_size):
        batch = np.stack([
            np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR))
            for p in paths[start : start + batch_size]
        ])
        out.append(np.asarray(pooled.predict_on_batch(preprocess_input(batch))))
    return np.concatenate(out)


def probe(train_x, train_y, test_x, test_y) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(clf.fit(train_x, train_y).score(test_x, test_y))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="efficientnet_lite0", choices=sorted(LITE_VARIANTS))
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--size", type=int, default=None,
                    help="input size (default: the variant's resolution, 224 for lite0)")
    ap.add_argument("--limit", type=int, default=None, help="at most this many images per class")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip-random", action="store_true", help="skip the random-init contrast")
    args = ap.parse_args(argv)

    size = args.size or LITE_VARIANTS[args.variant].resolution
    train_p, train_y, classes = list_split(args.data / "train", args.limit)
    test_p, test_y, test_classes = list_split(args.data / "test", args.limit)
    if classes != test_classes:
        raise SystemExit(f"train/test classes differ: {classes} vs {test_classes}")
    print(f"{args.variant} @ {size}px: {len(train_p)} train, {len(test_p)} test, "
          f"{len(classes)} classes")

    runs = [("imagenet", "imagenet")] + ([] if args.skip_random else [("random init", None)])
    for label, weights in runs:
        import keras

        keras.utils.set_random_seed(0)
        t0 = time.perf_counter()
        model = build_efficientnet_lite(args.variant, weights=weights,
                                        input_shape=(size, size, 3))
        tr = features(model, train_p, size, args.batch_size)
        te = features(model, test_p, size, args.batch_size)
        secs = time.perf_counter() - t0
        acc = probe(tr, train_y, te, test_y)
        print(f"{label:>12}: test accuracy {acc:.4f}  (features {tr.shape[1]}-d, "
              f"{(len(train_p) + len(test_p)) / secs:.0f} img/s, {secs:.0f} s)")


if __name__ == "__main__":
    main()
