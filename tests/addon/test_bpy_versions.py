"""The add-on in the bpy modules of the other supported lines: 4.2 LTS (``sequences``) and 4.4.

Each runs ``bpy_version_smoke.py`` in its own Python 3.11 environment, made once with
``pip install bpy==X numpy<2`` and kept in ``~/.cache/flowstyle-tests`` (about 30 s to make
from a downloaded wheel, instant afterwards). Skipped with the reason where Python 3.11 or
the wheel cannot be had. The fake worker stands in for the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .addon_helpers import RUBBERWHALE, need

SMOKE = Path(__file__).with_name("bpy_version_smoke.py")
CACHE = Path(os.environ.get("FLOWSTYLE_TEST_CACHE", Path.home() / ".cache" / "flowstyle-tests"))


def bpy_python(version: str) -> Path:
    """Python of an environment with ``bpy==version`` (made on first use)."""
    env_dir = CACHE / f"bpy-{version}"
    python = env_dir / "bin" / "python"
    if (env_dir / ".complete").is_file():
        return python
    base = shutil.which("python3.11") or (sys.executable if sys.version_info[:2] == (3, 11) else None)
    if base is None:
        pytest.skip(f"bpy {version} needs Python 3.11, and there is none here")
    shutil.rmtree(env_dir, ignore_errors=True)
    try:
        subprocess.run([base, "-m", "venv", str(env_dir)], check=True, capture_output=True, timeout=120)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               f"bpy=={version}", "numpy<2"], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot make an environment with bpy {version}: {exc}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot install bpy=={version} (no network or no wheel for this platform?): {last}")
    (env_dir / ".complete").write_text(version)
    return python


@pytest.mark.parametrize("version", ["4.2.0", "4.4.0"])
def test_main_flow_in_bpy(version, shim_dir, tmp_path):
    python = bpy_python(version)
    env = dict(os.environ, PYTHONPATH=str(shim_dir), FAKE_WORKER_DELAY="0.2")
    done = subprocess.run([str(python), str(SMOKE), sys.executable, str(need(RUBBERWHALE)), str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert line, done.stdout[-3000:] + done.stderr[-3000:]
    seen = json.loads(line[0][7:])
    assert seen["version"][:2] == [int(v) for v in version.split(".")[:2]]
    assert seen["preview"] == seen["stylize"] == seen["update"] == ["FINISHED"]
    assert seen["preview_channel"] == 2, "channel 2 is free at the playhead"
    assert seen["result"] == [3, 8, 1, 9], "channel 2 is taken at frames 7-8: the result goes to 3"
    assert seen["preview_channel_after"] == [], "a finished run removes the previews"
    assert seen["sizes"] == [[64, 36]]
    assert seen["cancelled"] == ["cancelled", [[64, 36]], 8], "a cancelled re-run touched the old result"
    assert seen["sizes_after_update"] == [[96, 54]]
    assert seen["status"] == "Stylized 8 frames of 'whale'"
    assert seen["render_all"].startswith("Error: 1 of 2 strips not stylized, nothing rendered: cannot stylize 'lost'")
