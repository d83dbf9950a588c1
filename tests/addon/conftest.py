"""Headless add-on tests in bpy (Blender as a Python module; STYLE 15).

Fixtures give each test an empty sequencer, a private cache folder, and an engine: the
real one (``python -m flowstyle`` in this environment) or ``tests/fake_worker.py`` behind
a shim package on PYTHONPATH. A test that asks for the real engine never gets the fake:
when the engine does not start it is skipped with the reason, or fails where the engine
must be there (``FLOWSTYLE_REQUIRE_ENGINE=1``, set by ``.ci/run``). Operators run their blocking ``execute()`` path, as under
``blender -b``; tests that need the timer body call ``jobs.step`` themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fake_worker.py"

if str(ROOT) not in sys.path:  # Blender finds add-ons on sys.path; tests import its modules too
    sys.path.insert(0, str(ROOT))


ENGINE_PATH = str(ROOT / "core")  # the engine runs from the checkout whether or not it is pip-installed


def _real_engine_problem() -> str | None:
    env = dict(os.environ, PYTHONPATH=ENGINE_PATH)
    try:
        done = subprocess.run([sys.executable, "-m", "flowstyle", "stylize", "--help"], capture_output=True,
                              text=True, timeout=120, cwd=str(ROOT / "tests"), env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run the engine: {exc}"
    if done.returncode != 0 or "--json-progress" not in done.stdout:
        return f"'python -m flowstyle stylize --help' failed: {(done.stderr or done.stdout).strip()[-200:]}"
    return None


@pytest.fixture(scope="session")
def real_engine_problem():
    return _real_engine_problem()


@pytest.fixture(scope="session")
def addon():
    """The add-on, enabled as Blender enables it (repository root on sys.path)."""
    import addon_utils

    module = addon_utils.enable("blender_addon", default_set=True)
    assert module is not None, "enabling the add-on failed (see the output above)"
    yield module
    addon_utils.disable("blender_addon", default_set=True)


@pytest.fixture(scope="session")
def shim_dir(tmp_path_factory) -> Path:
    """A ``flowstyle`` package whose ``__main__`` is the fake worker."""
    root = tmp_path_factory.mktemp("shim")
    package = root / "flowstyle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import runpy, sys\n"
        f"sys.argv[0] = {str(FAKE)!r}\n"
        f"runpy.run_path({str(FAKE)!r}, run_name='__main__')\n"
    )
    return root


def _use_engine(kind: str, monkeypatch, shim_dir: Path, problem: str | None) -> str:
    if kind == "real":
        if problem and os.environ.get("FLOWSTYLE_REQUIRE_ENGINE") == "1":
            pytest.fail(f"real engine required (FLOWSTYLE_REQUIRE_ENGINE=1) but it does not start: {problem}")
        if problem:
            pytest.skip(f"real engine not available: {problem}")
        monkeypatch.setenv("PYTHONPATH", ENGINE_PATH)
    else:
        monkeypatch.setenv("PYTHONPATH", str(shim_dir))
    return kind


@pytest.fixture(params=["fake", "real"])
def any_engine(request, monkeypatch, shim_dir, real_engine_problem, prefs):
    """Run the test against the fake worker and against the real engine."""
    return _use_engine(request.param, monkeypatch, shim_dir, real_engine_problem)


@pytest.fixture
def engine(monkeypatch, shim_dir, real_engine_problem, prefs):
    """The real engine (skipped with the reason when it does not start here; never the fake)."""
    return _use_engine("real", monkeypatch, shim_dir, real_engine_problem)


@pytest.fixture
def fake_engine(monkeypatch, shim_dir, prefs):
    """Always the fake worker (scripted timing and failures)."""
    return _use_engine("fake", monkeypatch, shim_dir, None)


@pytest.fixture
def prefs(addon, tmp_path):
    """Add-on preferences pointing at this Python and a private cache folder."""
    p = bpy.context.preferences.addons["blender_addon"].preferences
    p.engine_python = sys.executable
    p.cache_dir = str(tmp_path / "cache")
    p.default_mode = 'FAST'
    p.preview_size = 160
    p.device = 'CPU'
    yield p
    p.cache_dir = ""


@pytest.fixture
def scene(addon, prefs):
    """The scene with an empty sequencer, small render size, frames 1-20."""
    from blender_addon import jobs

    sc = bpy.context.scene
    sc.sequence_editor_clear()
    sc.sequence_editor_create()
    sc.frame_start, sc.frame_end, sc.frame_current = 1, 20, 1
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 160, 90, 100
    sc.render.image_settings.file_format = 'PNG'
    yield sc
    leftover = list(jobs.JOBS.values())
    for job in leftover:
        job.proc.cancel()
        job.proc.wait(timeout=30)
    jobs.JOBS.clear()
    assert not leftover, "a test left a flowstyle job running"
