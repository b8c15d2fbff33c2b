"""Every command of docs/cli.md's `bash` blocks runs as written, in order, in a fresh folder holding only the
example configs: the files a command reads are written by an earlier one (the page promises this)."""
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ctrkit.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[str]:
    text = (ROOT / "docs" / "cli.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_page_has_commands_for_every_subcommand():
    used = {shlex.split(c, comments=True)[1] for c in _commands() if c.startswith("ctrkit ")}
    assert used == {"train", "evaluate", "predict", "export", "inspect"}


def test_every_command_in_docs_cli_runs_as_written(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pyarrow")
    pytest.importorskip("onnx")
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("*.py"))
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        for line in _commands():
            argv = shlex.split(line, comments=True)
            if argv[0] == "ctrkit":
                rc = main(argv[1:])
                err = capsys.readouterr().err
                assert rc == 0, f"{line}\n{err}"
            else:
                assert argv[0] == "python", line
                proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, env=env)
                assert proc.returncode == 0, f"{line}\n{proc.stderr}"
    finally:
        os.umask(old)
    run = tmp_path / "runs" / "census-mmoe-quick"
    assert (run / "model" / "config.json").is_file() and (tmp_path / "runs" / "try2" / "model").is_dir()
    # the run folder with the modes of ordinary files and folders (umask 022), model/ included
    for p in [run, run / "model", *run.iterdir(), *(run / "model").iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644), p
    assert len(pd.read_csv(tmp_path / "scores.csv")) == 5000
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert list(scores.columns) == ["age", "income", "marital"] and len(scores) == 99762
    assert (tmp_path / "census.onnx.json").is_file() and (tmp_path / "census.pt2").is_file()
