"""Decoders side by side: featx's decode path with ``decoder="pillow"`` and ``decoder="opencv"``.

    python benchmarks/decode_bench.py [--data ../shared/datasets/clothing-small] [--probe]

Speed: ``DecodePool`` (read + SHA-256 + decode + resize to ``--size``, exactly what extraction
runs) over every JPEG of ``<data>/train``, once on one thread and once with one worker per core;
the decoders alternate within each of ``--repeats`` rounds, so the opencv/pillow ratio of a round
compares runs seconds apart (absolute rates on a shared machine drift). Quality (``--probe``):
EfficientNet-Lite0 features with each decoder (through the cache), then the linear probe of
``benchmarks/lite_linear_probe.py`` (StandardScaler + LogisticRegression), train -> test.
``--breakdown`` times the two steps apart on one thread (ms per image): JPEG decode alone (Pillow
with draft mode, OpenCV full decode) and the resize alone of the decoded images (Pillow's
antialiased bilinear, OpenCV's ``INTER_LINEAR``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from featx.images import DECODERS, DecodePool, default_workers


def decode_rate(paths: list[str], size: int, decoder: str, n_workers: int) -> float:
    start = time.perf_counter()
    n = 0
    with DecodePool((size, size), decoder=decoder, n_workers=n_workers, chunk=8) as pool:
        for _, images, _ in pool.imap(paths):
            n += len(images)
    assert n == len(paths), f"{decoder}: decoded {n} of {len(paths)}"
    return n / (time.perf_counter() - start)


def breakdown(paths: list[str], size: int, repeats: int) -> dict[str, float]:
    """Median ms per image of decode alone and resize alone, per library, on one thread."""
    import io

    import cv2
    import numpy as np
    from PIL import Image

    cv2.setNumThreads(1)
    datas = [Path(p).read_bytes() for p in paths]

    def pil_decode(d):
        img = Image.open(io.BytesIO(d))
        img.draft("RGB", (size, size))
        img.load()
        return img

    pil_images = [pil_decode(d) for d in datas]
    cv_images = [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) for d in datas]
    steps = {
        "pillow decode": lambda: [pil_decode(d) for d in datas],
        "pillow resize": lambda: [im.resize((size, size), Image.Resampling.BILINEAR)
                                  for im in pil_images],
        "opencv decode": lambda: [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR)
                                  for d in datas],
        "opencv resize": lambda: [cv2.resize(a, (size, size), interpolation=cv2.INTER_LINEAR)
                                  for a in cv_images],
    }
    out: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            out.setdefault(name, []).append(1000 * (time.perf_counter() - start) / len(datas))
    return {name: statistics.median(v) for name, v in out.items()}


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
    parser.add_argument("--breakdown", action="store_true",
                        help="also decode and resize timed apart (one thread, ms per image)")
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
    if args.breakdown:
        print("\n| step (one thread) | ms per image (median) |")
        print("|---|---|")
        for name, ms in breakdown(paths, args.size, args.repeats).items():
            print(f"| {name} | {ms:.2f} |")
    if args.probe:
        print("\n| decoder | Lite0 linear probe, test accuracy |")
        print("|---|---|")
        for decoder in DECODERS:
            print(f"| {decoder} | {probe(args.data, decoder, args.size):.4f} |", flush=True)


if __name__ == "__main__":
    main()
