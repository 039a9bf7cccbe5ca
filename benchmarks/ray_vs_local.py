"""Wall time of the local engine vs the Ray engine, each on a cold cache, in fresh processes.

Run from the repository root (needs ``pip install 'featx[ray]'``)::

    python benchmarks/ray_vs_local.py                          # 3,068 clothing-small train images
    python benchmarks/ray_vs_local.py --limit 256 --input-size 96   # a quick run

Each engine runs in its own Python process (imports, model build and, for Ray, the embedded
instance's start-up all counted) with a fresh temporary ``cache=``. Rows: total wall time of the
process's ``extract_features`` call, images/s, and for Ray the ``ray.init`` share of it. The two
feature matrices are compared at the end (same ids, allclose), and the 1-minute load average is
printed before each run, since this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _dataset(args):
    import numpy as np

    from featx.data import ImageDataset

    full = ImageDataset.from_directory(args.data, verify="none", name="bench")
    if args.limit:
        full = full.subset(np.random.default_rng(0).permutation(len(full))[: args.limit])
    return full


def _one(args) -> None:
    """Child process: one engine, cold cache; prints a JSON line."""
    ds = _dataset(args)
    kw = dict(weights=args.weights if args.weights != "none" else None,
              input_size=args.input_size, cache=args.cache, verbose=0)
    t0 = time.perf_counter()
    init = 0.0
    if args.engine == "ray":
        import ray

        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
        init = time.perf_counter() - t0
        from featx.extract import extract_on_ray as extract_features

        fs = extract_features(ds, args.backbone, concurrency=args.actors, **kw)
    else:
        from featx.extract import extract_features

        fs = extract_features(ds, args.backbone, **kw)
    wall = time.perf_counter() - t0
    print(json.dumps({"engine": args.engine, "n": len(fs), "wall_s": wall, "init_s": init,
                      "path": str(fs.path)}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared/datasets/clothing-small/train"))
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--weights", default="imagenet", help="'imagenet' or 'none'")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--limit", type=int, default=None, help="use N images (a fixed random subset)")
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="embedded Ray's CPUs")
    ap.add_argument("--actors", type=int, default=1, help="Ray model actors")
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.engine:
        return _one(args)

    results = {}
    with tempfile.TemporaryDirectory(prefix="featx-bench-") as tmp:
        for engine in args.engines.split(","):
            cache = Path(tmp) / engine
            cmd = [sys.executable, __file__, "--engine", engine, "--cache", str(cache),
                   *(argv if argv is not None else sys.argv[1:])]
            load = os.getloadavg()[0]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT,
                                 env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray on 127.0.0.1
                                      **os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            res = json.loads(out.stdout.strip().splitlines()[-1])
            res["load_before"] = load
            results[engine] = res
            extra = f" (ray.init {res['init_s']:.1f} s)" if engine == "ray" else ""
            print(f"{engine:>5}: {res['n']} images in {res['wall_s']:.1f} s = "
                  f"{res['n'] / res['wall_s']:.1f} img/s{extra}; load average before "
                  f"{load:.1f} on {os.cpu_count()} cores", flush=True)
        if {"local", "ray"} <= results.keys():
            import numpy as np

            from featx.extract import FeatureSet

            a, b = (FeatureSet.load(results[e]["path"]) for e in ("local", "ray"))
            same = a.ids == b.ids and np.allclose(a.features, b.features, rtol=1e-3, atol=1e-4)
            print(f"same features: {same}; ray / local wall time: "
                  f"{results['ray']['wall_s'] / results['local']['wall_s']:.2f}")


if __name__ == "__main__":
    main()
