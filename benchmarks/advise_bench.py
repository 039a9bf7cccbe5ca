"""`featx advise` on a warm cache: the learning curve's head fits with one BLAS thread (now) vs
one per core (before), in the same run, and the advice both give.

    FEATX_CACHE_DIR=/work/shared-cache python benchmarks/advise_bench.py \
        [--data clothing-mini ../shared/datasets/clothing-small] [--repeats 3]

For each DATA: one untimed ``advise`` fills the cache, then ``advise`` is timed (best of
``--repeats``) with ``FEATX_BLAS_THREADS`` set to the usable cores (what the curve's fits had
before: BLAS's own default, a thread per core) and with featx's default (one thread per fit,
:func:`featx.utils.threads.blas_limit`), alternating so that both see the same load; the advice's
verdicts, notes and curve must be the same. Then the whole command, ``python -m featx.cli advise
DATA`` in a fresh process (imports included), best of ``--repeats`` each way. Prints seconds and
the ratio before / now.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from unittest import mock

from featx.advise import advise
from featx.utils.threads import usable_cores


def _timed(fn, repeats: int, env: dict) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        with mock.patch.dict(os.environ, env):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
    return best, out


def _verdict(advice) -> dict:
    return {"size": advice.size, "similarity": advice.similarity, "strategy": advice.strategy,
            "notes": advice.notes, "curve": [round(a, 3) for a in advice.curve["accuracy"]],
            "lift": round(advice.lift, 3), "slope": round(advice.slope, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+",
                        default=["clothing-mini", "../shared/datasets/clothing-small"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    before = {"FEATX_BLAS_THREADS": str(usable_cores())}
    now = {"FEATX_BLAS_THREADS": "1"}
    cache = os.environ.get('FEATX_CACHE_DIR', '(default)')
    print(f"usable cores: {usable_cores()}; cache: {cache}")
    for data in args.data:
        advise(data)  # fills the cache: the timings below are warm
        t_before = t_now = float("inf")
        for _ in range(args.repeats):  # alternate, so both see the same load
            t, old = _timed(lambda d=data: advise(d), 1, before)
            t_before = min(t_before, t)
            t, new = _timed(lambda d=data: advise(d), 1, now)
            t_now = min(t_now, t)
        same = _verdict(old) == _verdict(new)
        print(f"\n{data}: advise() warm, best of {args.repeats}: before {t_before:.2f} s, now "
              f"{t_now:.2f} s, ratio {t_before / t_now:.1f}x; same advice: {same}")
        print(f"  now:    {_verdict(new)}")
        if not same:
            print(f"  before: {_verdict(old)}")
        cmd = [sys.executable, "-m", "featx.cli", "advise", data, "-q"]
        c_before = c_now = float("inf")
        for _ in range(args.repeats):
            for env, which in ((before, "before"), (now, "now")):
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **env})
                dt = time.perf_counter() - t0
                if which == "before":
                    c_before = min(c_before, dt)
                else:
                    c_now = min(c_now, dt)
        print(f"  `featx advise {data}` warm, whole command, best of {args.repeats}: before "
              f"{c_before:.2f} s, now {c_now:.2f} s, ratio {c_before / c_now:.1f}x")


if __name__ == "__main__":
    main()
