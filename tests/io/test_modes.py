"""Saved models and checkpoints get the modes an ordinary write gives (the umask decides), not the private
600 / 700 of the temporary files they are written through."""
import os
import stat

import pytest

from ctrkit import MMoE
from ctrkit.io import save_checkpoint


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture()
def umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_saved_model_and_checkpoint_follow_the_umask(byterec_encoded, tmp_path, umask, mask):
    enc, _, _ = byterec_encoded
    os.umask(mask)
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(4,), task_names=["finish", "like"])
    m.save(str(tmp_path / "model"))
    m.save(str(tmp_path / "model"))                           # the replacing save too
    assert _mode(tmp_path / "model") == 0o777 & ~mask        # 755 under umask 022 (mkdtemp alone: 700)
    for name in os.listdir(tmp_path / "model"):
        assert _mode(tmp_path / "model" / name) == 0o666 & ~mask, name
    save_checkpoint(str(tmp_path / "ckpt.pt"), {"epoch": 1})
    assert _mode(tmp_path / "ckpt.pt") == 0o666 & ~mask       # 644 under umask 022 (mkstemp alone: 600)
