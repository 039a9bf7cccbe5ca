"""Copy a small, carriable subset of clothing-small into ``.devdata/clothing/`` (git-ignored).

The device machine used for ``benchmarks/gpu_bench.py`` receives only the repository checkout
(64 MiB in all), not ``../shared``. This script copies ``--per-class`` photos of every class from
``../shared/datasets/clothing-small/train`` into ``.devdata/clothing/<class>/``; ``gpu_bench.py``
then expands them into a set of >= 20,000 distinct JPEGs on the device itself.

By default the files are copied byte for byte (the photos are mostly 400x533, ~29 KB each, so 40
per class is ~12 MB): decoding cost depends on the source resolution, and the benchmark should
decode what a user's photos cost. ``--short-side 256`` re-encodes them smaller (~5 MB) if space is
tight, at the price of a decode ceiling that flatters featx.

    python benchmarks/make_devdata.py                     # 40 per class, originals
    python benchmarks/make_devdata.py --per-class 50 --short-side 256
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SRC = ROOT / ".." / "shared" / "datasets" / "clothing-small" / "train"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=str(DEFAULT_SRC), help="class-folder tree to sample from")
    ap.add_argument("--dst", default=str(ROOT / ".devdata" / "clothing"))
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--short-side", type=int, default=0,
                    help="re-encode with this short side (0: copy the files unchanged)")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality when re-encoding")
    args = ap.parse_args(argv)

    src, dst = Path(args.src), Path(args.dst)
    if not src.is_dir():
        raise SystemExit(f"--src {src} is not a folder")
    if dst.exists():
        shutil.rmtree(dst)
    total, count = 0, 0
    for cls in sorted(d for d in src.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = sorted(p for p in cls.iterdir()
                       if p.suffix.lower() in (".jpg", ".jpeg") and not p.name.startswith("."))
        out = dst / cls.name
        out.mkdir(parents=True, exist_ok=True)
        for p in files[: args.per_class]:  # sorted by (random, uuid-like) name: an unbiased pick
            target = out / p.name
            if args.short_side > 0:
                from PIL import Image, ImageOps

                with Image.open(p) as im:
                    im = ImageOps.exif_transpose(im).convert("RGB")
                    s = args.short_side / min(im.size)
                    if s < 1:
                        im = im.resize((round(im.width * s), round(im.height * s)),
                                       Image.Resampling.LANCZOS)
                    im.save(target, "JPEG", quality=args.quality)
            else:
                shutil.copyfile(p, target)
            total += target.stat().st_size
            count += 1
    (dst.parent / "README.txt").write_text(
        f"{count} photos sampled from {src.resolve()} by benchmarks/make_devdata.py "
        f"(--per-class {args.per_class} --short-side {args.short_side}).\n"
        "Source: the public 'clothing dataset (subset)' by Alexey Grigorev, free for any use.\n"
        "Git-ignored; carried to the device machine for benchmarks/gpu_bench.py (docs/gpu.md).\n")
    print(f"{count} images, {total / 2**20:.1f} MiB -> {dst}")


if __name__ == "__main__":
    main()
