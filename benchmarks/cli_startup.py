"""How long the ``featx`` command takes to answer what needs no model: help, version, the tables,
``init`` and usage errors, against a bare ``python -c pass`` in the same run.

Each command runs in a fresh interpreter (``python -m featx.cli ...``, the ``featx`` script's
entry point) from an empty temporary folder, with a temporary feature cache, once to write the
bytecode caches (as an installed package has them), then ``--repeats`` times; the best time
counts (timings of a busy machine only ever add). Run from the repository root::

    python benchmarks/cli_startup.py               # best of 3
    python benchmarks/cli_startup.py --repeats 5

Prints a markdown table: command, best seconds, the ratio to ``python -c pass``, what the command
exits with, and the heavy modules it imported (goal: < 0.3 s each, on 2 quiet cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "h5py", "PIL", "scipy", "sklearn", "keras", "tensorflow")
COMMANDS = (
    ["--help"],
    ["--version"],
    ["backbones"],
    ["backbones", "resnet"],
    ["pipelines"],
    ["init", "quickstart", "--out", "mine.toml"],
    ["extarct", "x"],
    ["extract", "/nope"],
    # names checked against the heads table: it holds scikit-learn's classes, so these import it
    ["fit", "clothing-mini", "--head", "svmm", "--out", "m.featx"],
    ["run", "quickstart", "--set", "heads.names=[\"svn\"]"],
)
# what each command imported: the same command run under this wrapper prints sys.modules' heavy
# names after main() returns
_PROBE = ("import runpy, sys\nsys.argv = ['featx', *sys.argv[1:]]\n"
          "try:\n    runpy.run_module('featx.cli', run_name='__main__')\n"
          "except SystemExit:\n    pass\n"
          f"print('heavy:', *(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n")


def _env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(ROOT), FEATX_CACHE_DIR=str(cache))
    return env


def best_of(argv: list[str], cwd: Path, env: dict, repeats: int) -> tuple[float, int]:
    """Best wall seconds of ``repeats`` runs of ``argv`` (after one run that writes bytecode)."""
    times, code = [], 0
    for i in range(repeats + 1):
        for leftover in ("mine.toml",):
            (cwd / leftover).unlink(missing_ok=True)
        t0 = time.perf_counter()
        r = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i:
            times.append(time.perf_counter() - t0)
        code = r.returncode
    return min(times), code


def imported(args: list[str], cwd: Path, env: dict) -> str:
    (cwd / "mine.toml").unlink(missing_ok=True)
    r = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=cwd, env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    return last.removeprefix("heavy:").strip() if last.startswith("heavy:") else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per command")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd, cache = Path(tmp) / "here", Path(tmp) / "cache"
        cwd.mkdir()
        env = _env(cache)
        base, _ = best_of([sys.executable, "-c", "pass"], cwd, env, opts.repeats)
        rows = [("python -c pass", base, 0, "")]
        for args in COMMANDS:
            seconds, code = best_of([sys.executable, "-m", "featx.cli", *args], cwd, env,
                                    opts.repeats)
            rows.append(("featx " + " ".join(args), seconds, code, imported(args, cwd, env)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"best of {opts.repeats}, {os.cpu_count()} cores, load average {load:.2f}\n")
    print("| command | best (s) | x python -c pass | exit | heavy modules imported |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, seconds, code, heavy in rows:
        print(f"| `{name}` | {seconds:.3f} | {seconds / base:.1f} | {code} | {heavy or '-'} |")


if __name__ == "__main__":
    main()
