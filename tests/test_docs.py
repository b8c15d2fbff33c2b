"""The documentation never drifts from the code.

* Every ```python block of every page under ``docs/`` runs: a page's blocks in order, in one namespace, in a
  fresh temporary working directory. One test per page (new pages are picked up by themselves); a page
  without python blocks is skipped. Commands and output belong in ```bash / ```text blocks.
* ``mkdocs build --strict`` passes (broken links, missing pages, unreadable docstrings fail it).
  ``scripts/test.sh`` builds the site before pytest and sets ``CTRKIT_DOCS_BUILT=1``, so CI does not build it
  twice.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                    re.M | re.S)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``[(first line number of the code, dedented code)]`` of the page's ```python blocks, in order."""
    out = []
    for m in _FENCE.finditer(text):
        if m.group("lang") == "python":
            first = text.count("\n", 0, m.start("body")) + 1
            out.append((first, textwrap.dedent(m.group("body"))))
    return out


def test_fence_parser_finds_blocks_in_order():
    text = ("# t\n\n```python\na = 1\n```\n\n```bash\nls\n```\n\n"
            "* item\n\n    ```python\n    b = a + 1\n    ```\n")
    assert python_blocks(text) == [(4, "a = 1\n"), (14, "b = a + 1\n")]


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_on_page_run(page, tmp_path, monkeypatch):
    path = DOCS / page
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"docs/{page} has no ```python blocks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    for first, code in blocks:
        # pad with newlines so that a traceback names the page's own line numbers
        compiled = compile("\n" * (first - 1) + code, str(path), "exec")
        try:
            exec(compiled, namespace)
        except Exception as e:
            raise AssertionError(f"docs/{page}: the python block starting at line {first} failed with "
                                 f"{type(e).__name__}: {e}") from e


def test_mkdocs_strict_build(tmp_path):
    if os.environ.get("CTRKIT_DOCS_BUILT") == "1":
        pytest.skip("scripts/test.sh already built the site with `mkdocs build --strict` before pytest")
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install 'ctrkit[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python",
                        reason="mkdocstrings[python] is not installed (pip install 'ctrkit[docs]')")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (f"mkdocs build --strict failed:\n{proc.stdout[-2000:]}\n"
                                  f"{proc.stderr[-4000:]}")
    assert (tmp_path / "site" / "reference" / "models" / "index.html").stat().st_size > 10_000
