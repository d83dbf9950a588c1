"""The add-on in a real Blender executable (Debian's ``blender`` package in CI: 3.4.1).

Installs with ``install_blender.py`` into throwaway user folders, renders a movie strip
headless with the README's farm command (success and failure exit codes), and drives
Preview, Stylize, Esc and Update through the modal operators in a Blender with a UI under
Xvfb (``blender_gui_driver.py``). Skipped with the reason where no Blender (or Xvfb) is
installed; ``.ci/run`` installs both from the OS packages. Each Blender run has a timeout.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .addon_helpers import CAVE, need

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import install_blender  # noqa: E402

DRIVER = Path(__file__).with_name("blender_gui_driver.py")
README = ROOT / "README.md"


@pytest.fixture(scope="session")
def blender_exe() -> Path:
    exe = os.environ.get("FLOWSTYLE_TEST_BLENDER") or shutil.which("blender")
    if not exe:
        pytest.skip("no Blender executable on PATH (CI installs Debian's: apt-get install blender xvfb)")
    try:
        install_blender.blender_version(exe)
    except install_blender.InstallError as exc:
        pytest.skip(f"Blender does not run here: {exc}")
    return Path(exe)


@pytest.fixture(scope="session")
def blender_env(tmp_path_factory) -> dict:
    """User folders of a Blender that has never run (never this machine's own settings)."""
    user = tmp_path_factory.mktemp("blender-user")
    env = dict(os.environ)
    for name in ("CONFIG", "SCRIPTS", "DATAFILES", "EXTENSIONS"):
        env[f"BLENDER_USER_{name}"] = str(user / name.lower())
    env["BLENDER_USER_RESOURCES"] = str(user / "resources")
    env["PYTHONPATH"] = str(ROOT / "core")  # the engine Blender starts runs this checkout
    return env


@pytest.fixture(scope="session")
def installed(blender_exe, blender_env):
    """The add-on installed by install_blender.py: (its module name, what the installer said)."""
    saved = dict(os.environ)
    os.environ.update(blender_env)
    try:
        (line,) = install_blender.install_all([blender_exe], sys.executable, ROOT)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    version = install_blender.blender_version(blender_exe)
    module = "flowstyle_vse" if version < (4, 2, 0) else "bl_ext.user_default.flowstyle"
    return module, line, version


def blender(exe, env, *args, timeout=300, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, errors="replace", env=env,
                          timeout=timeout, cwd=cwd)


def test_install_into_real_blender(blender_exe, blender_env, installed):
    module, line, version = installed
    assert line.startswith(f"Blender {'.'.join(map(str, version))} at '{blender_exe}': installed the flowstyle")
    assert line.endswith(f"engine Python {Path(sys.executable).absolute()}")
    check = ("import bpy, json; a = bpy.context.preferences.addons.get(%r); "
             "print('RESULT', json.dumps([a is not None and a.preferences.engine_python, "
             "hasattr(bpy.ops.flowstyle, 'render_all') and 'FLOWSTYLE_OT_render_all' in dir(bpy.types)]))" % module)
    done = blender(blender_exe, blender_env, "-b", "--python-exit-code", "1", "--python-expr", check)
    result = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert result, done.stdout + done.stderr
    assert json.loads(result[0][7:]) == [str(Path(sys.executable).absolute()), True]


_SHOT = """
import bpy
scene = bpy.context.scene
scene.sequence_editor_create()
editor = scene.sequence_editor
strips = editor.strips if hasattr(editor, "strips") else editor.sequences
strip = strips.new_movie("cave", {movie!r}, 1, 1)
strip.frame_offset_start, strip.frame_offset_end = 20, 27  # 3 frames: 21..23
style = strip.flowstyle.styles.add()
style.source, style.builtin = 'BUILTIN', 11
strip.flowstyle.size, strip.flowstyle.enabled = 96, True
scene.frame_start, scene.frame_end = 21, 23
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 160, 90, 100
scene.render.image_settings.file_format = 'PNG'
scene.render.filepath = "//render/shot_"
bpy.context.preferences.addons[{module!r}].preferences.device = 'CPU'
bpy.ops.wm.save_as_mainfile(filepath={blend!r})
"""


def farm_command(blend: Path) -> list[str]:
    """The README's render-farm command, as a list, on ``blend``."""
    match = re.search(r'^(blender -b shot\.blend --python-exit-code 1 --python-expr "([^"]+)")$', README.read_text(),
                      re.M)
    assert match, "README: the render-farm command with --python-exit-code 1 is gone"
    return ["-b", str(blend), "--python-exit-code", "1", "--python-expr", match[2]]


def make_shot(blender_exe, blender_env, module, folder: Path, movie: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    blend = folder / "shot.blend"
    code = _SHOT.format(movie=str(movie), module=module, blend=str(blend))
    done = blender(blender_exe, blender_env, "-b", "--python-exit-code", "1", "--python-expr", code)
    assert done.returncode == 0 and blend.is_file(), done.stdout[-2000:] + done.stderr[-2000:]
    return blend


def read_rgb(path: Path):
    cv2 = pytest.importorskip("cv2")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return image.astype("float32") / 255.0


def test_render_all_headless_on_a_movie_strip(blender_exe, blender_env, installed, tmp_path):
    module = installed[0]
    blend = make_shot(blender_exe, blender_env, module, tmp_path / "shot", need(CAVE))
    done = blender(blender_exe, blender_env, *farm_command(blend))
    log = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, log
    frames = sorted((blend.parent / "flowstyle" / "cave" / "frames").glob("frame_*.png"))
    assert [p.name for p in frames] == ["frame_00001.png", "frame_00002.png", "frame_00003.png"], log
    rendered = sorted((blend.parent / "render").glob("shot_*.png"))
    assert [p.name for p in rendered] == ["shot_0021.png", "shot_0022.png", "shot_0023.png"], log
    # The same frame rendered from the saved file (no result strip in it): the source.
    plain = blender(blender_exe, blender_env, "-b", str(blend), "-o", "//plain/shot_", "-f", "22")
    assert plain.returncode == 0, plain.stdout[-2000:]
    source, stylized = read_rgb(blend.parent / "plain" / "shot_0022.png"), read_rgb(rendered[1])
    assert source.shape == stylized.shape == (90, 160, 3)
    assert source.std() > 0.02 and stylized.std() > 0.02, "a render came out blank"
    assert abs(stylized - source).mean() > 0.03, "the render shows the source, not the stylized strip"


def test_render_all_failure_exits_nonzero(blender_exe, blender_env, installed, tmp_path):
    module = installed[0]
    movie = tmp_path / "media" / "gone.mp4"
    movie.parent.mkdir()
    shutil.copy(need(CAVE), movie)
    blend = make_shot(blender_exe, blender_env, module, tmp_path / "shot", movie)
    movie.unlink()  # the farm node cannot see the media
    done = blender(blender_exe, blender_env, *farm_command(blend))
    assert done.returncode != 0, "a render farm would count this failed job as a success"
    assert "1 of 1 strips not stylized, nothing rendered: cannot stylize 'cave': movie" in done.stdout + done.stderr
    assert not (blend.parent / "render").exists()


@pytest.fixture
def xvfb_display():
    """A private X display (Xvfb), stopped afterwards."""
    if not shutil.which("Xvfb"):
        pytest.skip("no Xvfb for the Blender UI test (CI installs it: apt-get install xvfb)")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=[write_end], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        number = os.read(read_end, 32).decode().strip() if ready else ""
        if not number:
            pytest.skip("Xvfb did not start within 30 s")
        yield f":{number}"
    finally:
        os.close(read_end)
        proc.terminate()
        proc.wait(timeout=10)


def test_ui_preview_stylize_esc_update(blender_exe, blender_env, installed, shim_dir, xvfb_display, tmp_path):
    """The UI path: modal operators on timers, Esc as a real event, channels, frames, responsiveness."""
    module = installed[0]
    out = tmp_path / "driver.json"
    config = {"module": module, "movie": str(need(CAVE)), "trim": [0, 26], "preview_frame": 5,
              "cancel_after": 10, "size": 96, "blend": str(tmp_path / "ui" / "shot.blend"), "out": str(out),
              "timeout": 200}
    (tmp_path / "ui").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = dict(blender_env, DISPLAY=xvfb_display, PYTHONPATH=str(shim_dir), FAKE_WORKER_DELAY="0.3")
    done = blender(blender_exe, env, "--enable-event-simulate", "--python-exit-code", "1", "--python", str(DRIVER),
                   "--", str(tmp_path / "config.json"), timeout=280)
    assert out.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    seen = json.loads(out.read_text())
    assert "error" not in seen, seen.get("traceback", "") + "\n".join(seen.get("log", []))
    frames = tmp_path / "ui" / "flowstyle" / "cave" / "frames"

    (preview,) = seen["after_preview"]["previews"]
    assert (preview["channel"], preview["start"]) == (2, 5), "the preview goes where channel 2 is free"

    cancelled = seen["after_cancel"]
    result = cancelled["result"]
    assert result["channel"] == 3, "channel 2 is taken at frame 1: 3 is the first free over the whole strip"
    assert 10 <= result["elements"] < 24 and (result["start"], result["end"]) == (1, 1 + result["elements"])
    assert cancelled["status"] == f"Cancelled: {result['elements']} of 24 frames kept"
    (preview,) = cancelled["previews"]
    assert preview["channel"] > result["channel"], "the result hides the preview"

    updated = seen["after_update"]
    result = updated["result"]
    assert (result["channel"], result["elements"], result["start"], result["end"]) == (3, 24, 1, 25)
    assert Path(result["directory"]) == frames
    assert sorted(p.name for p in frames.glob("frame_*.png")) == [f"frame_{i:05d}.png" for i in range(1, 25)]
    assert not (frames.parent / "frames.new").exists()
    assert updated["status"] == "Stylized 24 frames of 'cave'" and updated["previews"] == []
    # The event loop keeps going while the job runs (a 0.1 s timer: at most 10 a second).
    print(f"event loop during the job: {seen['updates_per_second']:.1f} updates/s, "
          f"{seen['stalls_over_0.35s']} stalls over 0.35 s in {seen['measured_seconds']:.1f} s")
    assert seen["updates_per_second"] > 3.0
