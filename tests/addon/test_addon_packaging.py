"""The add-on archive, its manifest, and install_blender.py (extension and legacy installs).

No Blender executable exists here, so a stand-in ``blender`` script runs the same steps in
the bpy module: ``--version``, ``--command extension install-file`` (through Blender's own
extension installer) and ``--python-expr``. User files go to a temporary
BLENDER_USER_RESOURCES, never to this machine's Blender settings.
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import install_blender  # noqa: E402

FAKE_BLENDER = r'''#!{python}
"""Stand-in for the blender executable, driving the bpy module."""
import json, os, sys
with open(os.environ["FAKE_BLENDER_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
args = sys.argv[1:]
if args == ["--version"]:
    print("Blender " + os.environ.get("FAKE_BLENDER_VERSION", "4.2.3") + "\n\tbuild date: today")
    sys.exit(0)
if os.environ.get("FAKE_BLENDER_FAIL"):
    print("Error: " + os.environ["FAKE_BLENDER_FAIL"])
    sys.exit(1)
assert args[0] == "--background", args
import bpy
if args[1:4] == ["--command", "extension", "install-file"]:
    repo = args[args.index("--repo") + 1]
    result = bpy.ops.extensions.package_install_files(filepath=args[-1], repo=repo,
                                                     enable_on_install="--enable" in args)
    sys.exit(0 if result == {{"FINISHED"}} else 1)
if args[1] == "--python-expr":
    bpy.ops.wm.read_userpref()
    exec(compile(args[2], "<python-expr>", "exec"))
    sys.exit(0)
sys.exit("unknown arguments: %r" % (args,))
'''


@pytest.fixture
def fake_blender(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "blender"
    exe.parent.mkdir()
    exe.write_text(FAKE_BLENDER.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setenv("FAKE_BLENDER_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("BLENDER_USER_RESOURCES", str(tmp_path / "user"))
    return exe


def calls(tmp_path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


def read_back(module: str, tmp_path) -> dict:
    """What a fresh Blender sees after loading the saved preferences."""
    code = (
        "import bpy, json\n"
        "bpy.ops.wm.read_userpref()\n"
        f"a = bpy.context.preferences.addons.get({module!r})\n"
        "print('RESULT', json.dumps({'engine': a and a.preferences.engine_python,"
        " 'registered': hasattr(bpy.types, 'FLOWSTYLE_OT_stylize_strip')}))\n"
    )
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert line, done.stdout + done.stderr
    return json.loads(line[0][7:])


def test_zip_contents(tmp_path):
    (ROOT / "blender_addon" / "__pycache__").mkdir(exist_ok=True)
    path = install_blender.build_zip(tmp_path / "dist" / "flowstyle.zip")
    names = zipfile.ZipFile(path).namelist()
    assert "flowstyle_vse/__init__.py" in names and "flowstyle_vse/blender_manifest.toml" in names
    assert "flowstyle_vse/worker.py" in names
    assert all(n.startswith("flowstyle_vse/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_manifest_validates_with_blenders_own_checker(tmp_path):
    checker = Path(bpy.utils.system_resource('SCRIPTS')) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    if not checker.is_file():
        pytest.skip(f"Blender's extension checker not found at {checker}")
    archive = install_blender.build_zip(tmp_path / "flowstyle.zip")
    for target in (ROOT / "blender_addon", archive):
        done = subprocess.run([sys.executable, str(checker), "validate", str(target)], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0 and "Success" in done.stdout, done.stdout + done.stderr


def test_bl_info_and_manifest_agree():
    import tomllib

    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    source = (ROOT / "blender_addon" / "__init__.py").read_text()
    import ast

    bl_info = next(ast.literal_eval(node.value) for node in ast.parse(source).body
                   if isinstance(node, ast.Assign) and node.targets[0].id == "bl_info")
    assert ".".join(map(str, bl_info["version"])) == manifest["version"]
    assert manifest["blender_version_min"] == "4.2.0"  # extensions exist from 4.2 on
    assert bl_info["blender"] == install_blender.MIN_VERSION  # the legacy add-on reaches back to 3.4
    assert manifest["id"] == install_blender.EXTENSION_ID


def test_install_as_extension(fake_blender, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_BLENDER_VERSION", "4.2.3")
    message = install_blender.install_addon(fake_blender, "/opt/engine/bin/python", ROOT)
    assert message.startswith(f"Blender 4.2.3 at '{fake_blender}': installed the flowstyle extension")
    made = calls(tmp_path)
    assert made[1][:6] == ["--background", "--command", "extension", "install-file", "--repo", "user_default"]
    assert made[2][:2] == ["--background", "--python-expr"]
    assert read_back("bl_ext.user_default.flowstyle", tmp_path) == {"engine": "/opt/engine/bin/python",
                                                                     "registered": True}
    # Running it again is safe.
    install_blender.install_addon(fake_blender, "/opt/other/bin/python", ROOT)
    assert read_back("bl_ext.user_default.flowstyle", tmp_path)["engine"] == "/opt/other/bin/python"


def test_install_as_legacy_addon(fake_blender, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_BLENDER_VERSION", "4.1.1")
    message = install_blender.install_addon(fake_blender, "/opt/engine/bin/python", ROOT)
    assert "installed the flowstyle legacy add-on" in message
    assert calls(tmp_path)[1][:2] == ["--background", "--python-expr"]
    assert read_back("flowstyle_vse", tmp_path) == {"engine": "/opt/engine/bin/python", "registered": True}


def test_install_failures_are_one_line(fake_blender, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_BLENDER_VERSION", "2.79")
    with pytest.raises(install_blender.InstallError, match="too old: flowstyle needs Blender 3.4 or 4.2"):
        install_blender.install_addon(fake_blender, "/py", ROOT)
    monkeypatch.setenv("FAKE_BLENDER_VERSION", "4.2.0")
    monkeypatch.setenv("FAKE_BLENDER_FAIL", "cannot write to the extensions folder")
    with pytest.raises(install_blender.InstallError,
                       match="installing the extension failed in .*: Error: cannot write to the extensions folder"):
        install_blender.install_addon(fake_blender, "/py", ROOT)
    with pytest.raises(install_blender.InstallError, match="cannot run Blender"):
        install_blender.blender_version(tmp_path / "missing-blender")


def test_install_refuses_an_engine_that_does_not_start(fake_blender, tmp_path, monkeypatch):
    """A clone without .venv: the installer must not claim success with a Python that is not there."""
    monkeypatch.setattr(install_blender, "_usual_places", lambda: [])
    monkeypatch.setenv("PATH", str(fake_blender.parent))
    missing = tmp_path / "clone" / ".venv" / "bin" / "python"
    (lines,) = install_blender.install_all(engine_python=str(missing))
    assert lines.startswith(f"Could not set up the add-on: the flowstyle engine does not start ('{missing}' does "
                            "not exist). Run 'python3 install.py' in")
    assert not (tmp_path / "calls.jsonl").exists() or calls(tmp_path) == [["--version"]], "installed anyway"
    broken = tmp_path / "python-without-engine"
    broken.write_text("#!/bin/sh\necho 'No module named flowstyle' >&2\nexit 1\n")
    broken.chmod(0o755)
    (lines,) = install_blender.install_all(engine_python=str(broken))
    assert "failed with exit code 1: No module named flowstyle" in lines
    done = subprocess.run([sys.executable, str(ROOT / "install_blender.py"), "--engine-python", str(missing)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 1 and "Could not set up the add-on" in done.stdout
    # An engine that starts: installed, and the line names it.
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "core"))
    (line,) = install_blender.install_all(engine_python=sys.executable)
    assert line.endswith(f"engine Python {Path(sys.executable).absolute()}"), line


def test_find_blenders(fake_blender, tmp_path, monkeypatch):
    monkeypatch.setattr(install_blender, "_usual_places", lambda: [])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert install_blender.find_blenders() == []
    lines = install_blender.install_all(engine_python="/py")
    assert len(lines) == 1 and lines[0].startswith("No Blender found")
    # A folder or the executable itself; found once even when also on PATH.
    monkeypatch.setenv("PATH", str(fake_blender.parent))
    assert install_blender.find_blenders([fake_blender.parent, fake_blender]) == [fake_blender]


def test_cli_zip(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "install_blender.py"), "--zip", str(tmp_path / "a.zip")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and (tmp_path / "a.zip").is_file()
    assert "Install from Disk" in done.stdout
