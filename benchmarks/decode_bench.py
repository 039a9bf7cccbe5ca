"""Decoders side by side: featx's decode path with ``decoder="pillow"`` and ``decoder="opencv"``.

    python benchmarks/decode_bench.py [--data ../shared/datasets/clothing-small] [--probe]

Speed: ``DecodePool`` (read + SHA-256 + decode + resize to ``--size``, exactly what extraction
runs) over every JPEG of ``<data>/train``, once on one thread and once with one worker per core;
the decoders alternate within each of ``--repeats`` rounds, so the opencv/pillow ratio of a round
compares runs seconds apart (absolute rates on a shared machine drift). Quality (``--probe``):
EfficientNet-Lite0 features with each decoder (through the cache), then the linear probe of
``benchmarks/lite_linear_probe.py`` (StandardScaler + LogisticRegression), train -> test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from featx._decode_pool import DecodePool, default_workers
from featx._image import DECODERS


def decode_rate(paths: list[str], size: int, decoder: str, n_workers: int) -> float:
    start = time.perf_counter()
    n = 0
    with DecodePool((size, size), decoder=decoder, n_workers=n_workers, chunk=8) as pool:
        for _, images, _ in pool.imap(paths):
            n += len(images)
    assert n == len(paths), f"{decoder}: decoded {n} of {len(paths)}"
    return n / (time.perf_counter() - start)


def probe(data: Path, decoder: str, size: int) -> float:
    import featx
    from featx.heads import make_head

    splits = featx.ImageDataset.from_directory(data)
    kw = dict(input_size=size, decoder=decoder, verbose=0)
    train = featx.extract_features(splits["train"], "efficientnet_lite0", **kw)
    test = featx.extract_features(splits["test"], "efficientnet_lite0", **kw)
    head = make_head("logreg").fit(train.features, train.labels)
    return float(head.score(test.features, test.labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/clothing-small"))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probe", action="store_true", help="also the Lite0 linear probe")
    args = parser.parse_args()

    paths = sorted(str(p) for p in (args.data / "train").rglob("*.jpg"))
    cores = default_workers()
    print(f"{len(paths)} JPEGs from {args.data / 'train'}, to {args.size}x{args.size}; "
          f"{cores} cores")
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for workers in (0, cores):
            for decoder in DECODERS:
                rates.setdefault((decoder, workers), []).append(
                    decode_rate(paths, args.size, decoder, workers))
    print("\n| decoder | workers | img/s (median) | opencv / pillow per round |")
    print("|---|---|---|---|")
    for workers in (0, cores):
        ratios = [c / p for c, p in zip(rates["opencv", workers], rates["pillow", workers],
                                        strict=True)]
        for decoder in DECODERS:
            r = rates[decoder, workers]
            ratio = (", ".join(f"{x:.2f}" for x in ratios)) if decoder == "opencv" else ""
            label = "1 (calling thread)" if workers == 0 else f"{workers} threads"
            print(f"| {decoder} | {label} | {statistics.median(r):.0f} | {ratio} |")
    if args.probe:
        print("\n| decoder | Lite0 linear probe, test accuracy |")
        print("|---|---|")
        for decoder in DECODERS:
            print(f"| {decoder} | {probe(args.data, decoder, args.size):.4f} |", flush=True)


if __name__ == "__main__":
    main()
