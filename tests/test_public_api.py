import subprocess
import sys

import ctrkit


def test_every_public_name_resolves():
    for name in ctrkit.__all__:
        assert getattr(ctrkit, name) is not None, name
    assert "MMoE" in dir(ctrkit)


def test_import_is_side_effect_free():
    code = (
        "import socket, sys, random\n"
        "def boom(*a, **k): raise AssertionError('network access at import')\n"
        "socket.socket.connect = boom; socket.create_connection = boom\n"
        "state = random.getstate()\n"
        "import ctrkit\n"
        "assert random.getstate() == state\n"
        "heavy = [m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import ctrkit.cli\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr
