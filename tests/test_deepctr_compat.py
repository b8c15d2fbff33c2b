"""DeepCTR-Torch example code runs with only its imports changed."""
import os
import re
import subprocess
import sys
from pathlib import Path

import ctrkit.datasets

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(ctrkit.datasets.__file__).resolve().parent / "data" / "samples"


def test_deepctr_torch_multitask_example_runs_unchanged():
    script = ROOT / "examples" / "deepctr_torch_mmoe.py"
    src = script.read_text()
    assert "from deepctr_torch" not in src.replace("# was: from deepctr_torch", "")
    proc = subprocess.run([sys.executable, str(script)], cwd=SAMPLES, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("Epoch ") == 10                      # verbose=2: one line per epoch
    aucs = [float(v) for v in re.findall(r"test AUC ([0-9.]+)", proc.stdout)]
    lls = [float(v) for v in re.findall(r"test LogLoss ([0-9.]+)", proc.stdout)]
    assert len(aucs) == 2 and len(lls) == 2
    assert all(0.0 <= a <= 1.0 for a in aucs) and all(0 < v < 5 for v in lls)
    assert "finish_binary_crossentropy" in proc.stdout           # per-task metric names
