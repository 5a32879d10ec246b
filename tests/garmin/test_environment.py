"""garth never sees `GARTH_HOME`/`GARTH_TOKEN`: the adapter removes both before garth loads.

garth builds a module-level client on import that resumes a session from either variable
(and writes plaintext tokens under `GARTH_HOME`). A fresh interpreter proves the order:
with a token garth cannot parse, importing garth first would fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import os, sys\n"
    "import service.garmin\n"
    "print('garth' in sys.modules, os.environ.get('GARTH_HOME'), os.environ.get('GARTH_TOKEN'))\n"
)


def test_importing_the_adapter_removes_garths_session_variables(tmp_path: Path) -> None:
    env = {**os.environ, "GARTH_HOME": str(tmp_path), "GARTH_TOKEN": "not-a-garth-token"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "None", "None"]
    assert list(tmp_path.iterdir()) == []
