"""The port test: DeepCTR-Torch 0.3.0's own tests and examples, with only their imports changed, run on ctrkit.

DeepCTR-Torch's ``tests/`` and ``examples/`` (Apache-2.0) are read from ``<repo>/../shared/reference/deepctr-torch``
and copied to a temporary folder; nothing of theirs is kept in this repository. In the copy only the
``deepctr_torch`` import lines change (``deepctr_torch`` -> ``ctrkit``), plus one TensorFlow-only helper:
``examples/run_multivalue_movielens.py`` imports Keras' ``pad_sequences``, which is replaced by the numpy
function :data:`PAD_SEQUENCES` (the same post-padding with zeros). The tests run with pytest in a subprocess, the
examples as scripts; the pass rate over the files whose models ctrkit has must be at least 95%. The table is
printed (``pytest -s``) and is the one in ``docs/deepctr_torch.md``.

A file counts once ctrkit exports every DeepCTR-Torch model it uses, so tests for a model added later (NFM,
PNN, ...) join the rate by themselves. Without ``../shared`` (a bare clone) the tests skip.

Runtime: about 30 s for the tests and 30 s for the examples on one CPU thread; no part needs the slow marker.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import ctrkit.models

ROOT = Path(__file__).resolve().parents[2]


def _reference() -> Path:
    """``<repo>/../shared/reference/deepctr-torch``; in a git worktree, ``<main checkout>/../shared/...``;
    ``CTRKIT_DEEPCTR_REFERENCE`` overrides."""
    tail = Path("shared", "reference", "deepctr-torch")
    candidates = [ROOT.parent / tail, ROOT / tail]
    dotgit = ROOT / ".git"
    if dotgit.is_file():   # a worktree: ".git" says "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(dotgit.read_text().split("gitdir:", 1)[-1].strip())
        candidates.append(gitdir.parents[2].parent / tail)
    if os.environ.get("CTRKIT_DEEPCTR_REFERENCE"):
        candidates.insert(0, Path(os.environ["CTRKIT_DEEPCTR_REFERENCE"]))
    return next((c for c in candidates if c.is_dir()), candidates[0])


REFERENCE = _reference()
MIN_PASS_RATE = 0.95

# The models of DeepCTR-Torch 0.3.0 (deepctr_torch/models/__init__.py).
DEEPCTR_MODELS = ("WDL", "DeepFM", "xDeepFM", "AFM", "DIFM", "IFM", "AutoInt", "DCN", "DCNMix", "FiBiNET", "NFM",
                  "MLR", "ONN", "PNN", "CCPM", "DIEN", "DIN", "AFN", "SharedBottom", "ESMM", "MMOE", "PLE")

TF_PAD_IMPORT = "from tensorflow.python.keras.preprocessing.sequence import pad_sequences"
PAD_SEQUENCES = '''import numpy as _np


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0):
    """numpy stand-in for Keras' pad_sequences (the port test's one change beyond the imports)."""
    maxlen = max(len(s) for s in sequences) if maxlen is None else maxlen
    out = _np.full((len(sequences), maxlen), value, dtype=dtype)
    for i, s in enumerate(sequences):
        s = list(s)[-maxlen:] if truncating == "pre" else list(s)[:maxlen]
        if padding == "post":
            out[i, :len(s)] = s
        else:
            out[i, maxlen - len(s):] = s
    return out
'''

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(),
                                reason=f"DeepCTR-Torch's tests are not at {REFERENCE} (a bare clone): nothing to port")


def _port(tmp: Path) -> Path:
    """Copy tests/ and examples/ and rewrite only the deepctr_torch import lines."""
    dst = tmp / "deepctr-torch"
    for part in ("tests", "examples"):
        shutil.copytree(REFERENCE / part, dst / part)
    for py in dst.rglob("*.py"):
        src = py.read_text()
        lines = [re.sub(r"\bdeepctr_torch\b", "ctrkit", ln) if re.match(r"\s*(from|import)\s+deepctr_torch\b", ln)
                 else ln for ln in src.splitlines(keepends=True)]
        out = "".join(lines).replace(TF_PAD_IMPORT, PAD_SEQUENCES)
        py.write_text(out)
    return dst


def _models_used(path: Path) -> list[str]:
    src = path.read_text()
    return [m for m in DEEPCTR_MODELS if re.search(rf"\b{m}\b", src)]


def _has(models: list[str]) -> bool:
    return all(hasattr(ctrkit.models, m) for m in models)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def _table(rows: list[tuple[str, str, bool, int, int]]) -> str:
    lines = ["| file | models | ctrkit has them | passed / run |", "|---|---|---|---|"]
    for f, models, has, passed, total in rows:
        lines.append(f"| `{f}` | {models or '-'} | {'yes' if has else 'not yet'} | {passed} / {total} |")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def ported(tmp_path_factory) -> Path:
    return _port(tmp_path_factory.mktemp("port"))


def test_deepctr_tests_pass_on_ctrkit(ported: Path) -> None:
    junit = ported / "junit.xml"
    # tests/utils.py's check_model does torch.save(model) then torch.load(path) of the whole pickled model,
    # which torch >= 2.6 refuses by default (weights_only=True): allowed here, for those trusted files only.
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                    "--continue-on-collection-errors", f"--junitxml={junit}", "tests"],
                   cwd=ported, capture_output=True, text=True, timeout=600,
                   env=_env(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1"))
    per_file: dict[str, list[int]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        cls = case.get("classname") or case.get("name", "")   # a collection error names the module
        f = cls.replace(".", "/") + ".py"
        if not (ported / f).exists():
            f = "/".join(cls.split(".")[:-1]) + ".py"
        failed = any(c.tag in ("failure", "error") for c in case)
        skipped = any(c.tag == "skipped" for c in case)
        if skipped:
            continue
        counts = per_file.setdefault(f, [0, 0])
        counts[0] += 0 if failed else 1
        counts[1] += 1
    rows = []
    for path in sorted((ported / "tests").rglob("*_test.py")):
        f = str(path.relative_to(ported))
        models = _models_used(path)
        passed, total = per_file.get(f, [0, 1])
        rows.append((f, ", ".join(models), _has(models), passed, total))
    print("\n" + _table(rows))
    ours = [r for r in rows if r[2]]
    passed, total = sum(r[3] for r in ours), sum(r[4] for r in ours)
    assert total > 0
    assert passed / total >= MIN_PASS_RATE, f"{passed}/{total} DeepCTR-Torch tests pass:\n{_table(ours)}"


def test_deepctr_examples_run_on_ctrkit(ported: Path) -> None:
    rows, failures = [], []
    for script in sorted((ported / "examples").glob("run_*.py")):
        models = _models_used(script)
        if not _has(models):
            rows.append((f"examples/{script.name}", ", ".join(models), False, 0, 1))
            continue
        proc = subprocess.run([sys.executable, script.name], cwd=script.parent, capture_output=True, text=True,
                              timeout=300, env=_env())
        ok = proc.returncode == 0
        rows.append((f"examples/{script.name}", ", ".join(models), True, int(ok), 1))
        if not ok:
            failures.append(f"{script.name}:\n{proc.stderr[-1500:]}")
    print("\n" + _table(rows))
    assert not failures, "\n\n".join(failures)
