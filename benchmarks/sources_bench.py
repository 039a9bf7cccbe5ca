"""Extraction from a loopback HTTP server vs the same photos on local disk, in the same run.

Run from the repository root::

    python benchmarks/sources_bench.py                     # 200 clothing-small train photos
    python benchmarks/sources_bench.py --images 400 --delay 0.02

Each row is the fastest of ``--repeats`` interleaved ``extract_features(..., cache=False)`` calls
(hash every image, decode, run the backbone: ``efficientnet_lite0``, ImageNet weights, offline),
after one warm-up call on disk that builds the model and fills the page cache. Rows:

  disk        the photos' local paths
  http        the same files served by a loopback HTTP server (127.0.0.1, its own process, a
              thread per request); each image is read twice over HTTP: hashed, then decoded
  http+delay  the same with ``--delay`` seconds added to every answer (a slow store; 0: skipped)

and the time ratio of each HTTP row to disk (1.00: no cost for reading over HTTP). The features
of every row are checked to be the disk row's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the loopback server the source tests use

DATA = Path("/work/shared/datasets/clothing-small/train")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA, help="a class-folder tree")
    p.add_argument("--images", type=int, default=200, help="photos used (spread over classes)")
    p.add_argument("--delay", type=float, default=0.02,
                   help="seconds added to every HTTP answer in the http+delay row (0: skip)")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--repeats", type=int, default=2, help="runs of each row; the fastest counts")
    args = p.parse_args(argv)

    from sources_server import served_in_subprocess

    from featx import ImageDataset
    from featx.extract import extract_features, forward_pass_count

    tree = ImageDataset.from_directory(args.data, verify="none")
    idx = np.linspace(0, len(tree) - 1, min(args.images, len(tree))).astype(int)
    disk = tree.subset(idx, name="bench-disk")

    def timed(ds):
        before = forward_pass_count()
        t = time.perf_counter()
        fs = extract_features(ds, args.backbone, cache=False, verbose=0)
        return time.perf_counter() - t, fs, forward_pass_count() - before

    timed(disk)  # warm-up: model build, page cache
    delays = [0.0] + ([args.delay] if args.delay > 0 else [])
    best: dict[str, tuple] = {}
    for _ in range(args.repeats):  # interleaved; the fastest of each (a shared machine is noisy)
        runs = [("disk", *timed(disk))]
        for delay in delays:
            with served_in_subprocess(args.data, delay) as url:
                urls = [f"{url}/{quote(os.path.relpath(p, args.data))}" for p in disk.paths]
                http = ImageDataset(urls, disk.labels, disk.class_names, name="bench-http")
                runs.append((f"http+{delay * 1000:.0f}ms" if delay else "http", *timed(http)))
        for name, *run in runs:
            if name not in best or run[0] < best[name][0]:
                best[name] = tuple(run)
    rows = [(name, *run) for name, run in best.items()]
    base, ref = rows[0][1], rows[0][2]
    print(f"{len(disk)} photos from {args.data}, {args.backbone}, cold (cache=False), "
          f"{os.cpu_count()} CPUs, fastest of {args.repeats}")
    print(f"{'source':<12} {'seconds':>8} {'images/s':>9} {'passes':>7} {'ratio':>6}")
    for name, secs, fs, passes in rows:
        assert fs.ids == ref.ids and np.allclose(fs.features, ref.features, atol=1e-5), name
        print(f"{name:<12} {secs:8.2f} {len(fs) / secs:9.1f} {passes:7d} {secs / base:6.2f}")


if __name__ == "__main__":
    main()
