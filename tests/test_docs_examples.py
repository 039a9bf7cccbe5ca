"""Every ```python block of docs/*.md runs as written (like tests/test_readme.py for the README).

The blocks use the bundled clothing-mini data at small sizes (random weights where the weights do
not matter), run in a temporary folder with the feature cache there, and a file's blocks share one
namespace, top to bottom, as a reader would paste them. A block that cannot run here (it needs the
network, a GPU or a cluster) is marked ```` ```python no-run: <reason> ````; the reason is required.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", flags=re.S | re.M)


def _blocks(path: Path) -> list[tuple[int, str, str]]:
    """``(line, info string after "python", code)`` of each python block of a markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1).strip(), m.group(2))
            for m in BLOCK.finditer(text)]


RUNNABLE = sorted(p.name for p in DOCS.glob("*.md")
                  if any(not info.startswith("no-run") for _, info, _ in _blocks(p)))


def test_docs_have_examples_and_every_skip_says_why():
    assert RUNNABLE, "no runnable python block found in docs/*.md"
    for path in sorted(DOCS.glob("*.md")):
        for line, info, _ in _blocks(path):
            if info:  # only "no-run: <reason>" may follow the language
                assert re.fullmatch(r"no-run: \S.{9,}", info), \
                    f"{path.name}:{line}: ```python {info!r}: write ```python no-run: <reason>"


def test_block_pattern_reads_markers():
    sample = "x\n```python\na = 1\n```\n```python no-run: needs a GPU to run\nb\n```\n"
    found = [(m.group(1).strip(), m.group(2)) for m in BLOCK.finditer(sample)]
    assert found == [("", "a = 1\n"), ("no-run: needs a GPU to run", "b\n")]


@pytest.mark.parametrize("name", RUNNABLE)
def test_docs_python_blocks_run(name, tmp_path, monkeypatch, capsys, fresh_cache):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEATX_CACHE_DIR", str(fresh_cache))
    path = DOCS / name
    namespace = {"__name__": f"docs_{path.stem}"}
    ran = 0
    for line, info, code in _blocks(path):
        if info.startswith("no-run"):
            continue
        # line numbers in tracebacks point into the markdown file
        exec(compile("\n" * line + code, str(path), "exec"), namespace)
        ran += 1
    assert ran
    capsys.readouterr()
