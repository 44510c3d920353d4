"""scripts/demo_story.sh (what the README's demo command plays) runs and prints the seed's story."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_story_runs(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TMPDIR": str(tmp_path / "tmp"),
        # Set on purpose: the demo must ignore them and use the embedded default.
        "DATAKEEP_API_URL": "http://127.0.0.1:9",
        "DATAKEEP_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo_story.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"^Created dataset: ds[0-9a-z]{13}$", out, re.M)
    assert re.search(r"^Committed dataset version: ds[0-9a-z]{13}:[0-9a-z]{7}$", out, re.M)
    assert re.search(r"^Set dataset tag: ds[0-9a-z]{13}:prod$", out, re.M)
    assert "| hello.txt | 12   |" in out
    assert "| added  | hello2.txt | 12   |" in out
    assert out.rstrip().endswith("hello world")
    assert list((tmp_path / "tmp").iterdir()) == []  # the throw-away data home is removed
