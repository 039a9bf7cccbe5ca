"""Maintainer script: rebuild the bundled ``clothing_mini`` demo subset from clothing-small.

Run from the repository root::

    python -m featx.datasets._make_clothing_mini ../shared/datasets/clothing-small

It takes 30 train and 10 test photos per class (a fixed, hash-ordered choice, so reruns give the
same files), shrinks each to at most 256 px on the short side and saves it as JPEG quality 85.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from PIL import Image, ImageOps

PER_SPLIT = {"train": 30, "test": 10}
SHORT_SIDE = 256
OUT = Path(__file__).parent / "clothing_mini"


def main(source: str) -> None:
    src = Path(source)
    if OUT.exists():
        shutil.rmtree(OUT)
    for split, n in PER_SPLIT.items():
        for cls_dir in sorted(p for p in (src / split).iterdir() if p.is_dir()):
            files = sorted(
                cls_dir.glob("*.jpg"), key=lambda p: hashlib.sha256(p.name.encode()).hexdigest()
            )
            dest = OUT / split / cls_dir.name
            dest.mkdir(parents=True)
            for f in files[:n]:
                img = ImageOps.exif_transpose(Image.open(f)).convert("RGB")
                scale = SHORT_SIDE / min(img.size)
                if scale < 1:
                    img = img.resize((round(img.width * scale), round(img.height * scale)),
                                     Image.Resampling.LANCZOS)
                img.save(dest / f.name, quality=85, optimize=True)
    shutil.copy(src / "LICENSE", OUT / "LICENSE")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/clothing-small")
