"""Find Blender installs and put the flowstyle add-on into them (stdlib only; DESIGN 6).

``install.py`` imports this module; it also runs on its own::

    python install_blender.py                      # every Blender found, engine = this repo's .venv
    python install_blender.py --blender /opt/blender-4.2/blender
    python install_blender.py --zip dist/flowstyle_vse.zip   # archive for "Install from Disk"

Blender 4.2+ gets the add-on as an extension (``blender --command extension install-file``);
older releases get the legacy add-on zip. Either way the engine's Python is then written into
the add-on preferences and the preferences are saved. Re-running replaces what is there.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = [
    "ADDON_DIR",
    "ZIP_FOLDER",
    "EXTENSION_ID",
    "InstallError",
    "find_blenders",
    "blender_version",
    "build_zip",
    "engine_problem",
    "install_addon",
    "install_all",
    "main",
]

REPO = Path(__file__).resolve().parent
ADDON_DIR = REPO / "blender_addon"
ZIP_FOLDER = "flowstyle_vse"  # module name of the legacy add-on (not "flowstyle": that is the engine)
EXTENSION_ID = "flowstyle"  # from blender_manifest.toml
EXTENSION_REPO = "user_default"
_TIMEOUT = 300
MIN_VERSION = (3, 4, 0)  # Debian 12's Blender; legacy add-on before 4.2, extension from 4.2
TESTED = ((3, 4), (4, 2), (4, 4), (5, 0))  # the release lines the tests run on (README: Supported Blender)
SUPPORTED = "3.4 or 4.2 and newer"


class InstallError(RuntimeError):
    """Installing into one Blender failed; the message is one line saying why and what to do."""


def _usual_places() -> list[str]:
    home = Path.home()
    if sys.platform == "win32":
        roots = [os.environ.get(v, "") for v in ("ProgramFiles", "ProgramFiles(x86)", "LOCALAPPDATA")]
        patterns = [os.path.join(r, "Blender Foundation", "Blender*", "blender.exe") for r in roots if r]
        patterns.append(os.path.join(os.environ.get("ProgramFiles(x86)", ""), "Steam", "steamapps", "common",
                                     "Blender", "blender.exe"))
    elif sys.platform == "darwin":
        patterns = ["/Applications/Blender*.app/Contents/MacOS/Blender",
                    str(home / "Applications" / "Blender*.app" / "Contents" / "MacOS" / "Blender")]
    else:
        patterns = ["/usr/bin/blender", "/usr/local/bin/blender", "/snap/bin/blender", "/opt/blender*/blender",
                    str(home / "blender*" / "blender"), str(home / "Applications" / "blender*" / "blender"),
                    str(home / ".local" / "share" / "Steam" / "steamapps" / "common" / "Blender" / "blender")]
    found = []
    for pattern in patterns:
        found += sorted(glob.glob(pattern))
    return found


def _executable_in(path: Path) -> Path | None:
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("blender.exe", "blender", "Contents/MacOS/Blender"):
            if (path / name).is_file():
                return path / name
    return None


def find_blenders(extra_paths=()) -> list[Path]:
    """Blender executables: ``extra_paths`` first (files or install folders), then PATH, then the
    usual install folders of this OS. Duplicates (same resolved file) are listed once."""
    candidates: list[Path] = []
    for extra in extra_paths:
        exe = _executable_in(Path(extra).expanduser())
        if exe is not None:
            candidates.append(exe)
    on_path = shutil.which("blender")
    if on_path:
        candidates.append(Path(on_path))
    candidates += [Path(p) for p in _usual_places()]
    seen, result = set(), []
    for exe in candidates:
        key = os.path.normcase(str(exe.resolve()))
        if key not in seen and os.access(exe, os.X_OK):
            seen.add(key)
            result.append(exe)
    return result


def blender_version(blender_exe) -> tuple[int, int, int]:
    """(major, minor, patch) reported by ``blender --version``."""
    try:
        done = subprocess.run([str(blender_exe), "--version"], capture_output=True, text=True, timeout=_TIMEOUT,
                              errors="replace")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"cannot run Blender '{blender_exe}': {exc}") from None
    match = re.search(r"Blender\s+(\d+)\.(\d+)(?:\.(\d+))?", done.stdout)
    if not match:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        raise InstallError(f"'{blender_exe}' does not look like Blender ('--version' said: {tail[0]})")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def build_zip(out_path) -> Path:
    """Write the installable archive (extension for 4.2+ and legacy add-on in one) and return its path.

    The archive holds one folder, ``flowstyle_vse/``, with the add-on and its
    ``blender_manifest.toml``; caches and hidden files are left out.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(ADDON_DIR.rglob("*")):
            rel = path.relative_to(ADDON_DIR)
            if path.is_dir() or any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            if path.suffix in (".pyc", ".pyo", ".zip"):
                continue
            archive.write(path, f"{ZIP_FOLDER}/{rel.as_posix()}")
    os.replace(tmp, out)
    return out


_SET_PREFS = """
import sys, bpy, addon_utils
module, engine = {module!r}, {engine!r}
addon_utils.enable(module, default_set=True, handle_error=lambda exc: print("FLOWSTYLE-FAIL", exc))
addon = bpy.context.preferences.addons.get(module)
if addon is None:
    print("FLOWSTYLE-FAIL add-on did not enable")
    sys.exit(1)
addon.preferences.engine_python = engine
bpy.ops.wm.save_userpref()
print("FLOWSTYLE-OK", module)
"""

_LEGACY_INSTALL = """
import bpy
bpy.ops.preferences.addon_install(filepath={zip!r}, overwrite=True)
"""


def _run_blender(blender_exe, args: list[str], what: str) -> str:
    try:
        done = subprocess.run([str(blender_exe), "--background", *args],
                              capture_output=True, text=True, timeout=_TIMEOUT, errors="replace")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{what} failed: cannot run '{blender_exe}': {exc}") from None
    output = done.stdout + done.stderr
    failed = [line for line in output.splitlines() if "FLOWSTYLE-FAIL" in line or line.startswith("Error")]
    if done.returncode != 0 or failed:
        last = (failed or [l for l in output.splitlines() if l.strip()] or ["no output"])[-1]
        raise InstallError(f"{what} failed in '{blender_exe}': {last.strip()}")
    return output


def install_addon(blender_exe, engine_python, repo_root=REPO) -> str:
    """Install the add-on into one Blender and point it at ``engine_python``.

    Returns one line saying what was done. Raises :class:`InstallError` (one line) when it
    could not be done. Safe to run again: it replaces the installed copy.
    """
    repo_root = Path(repo_root)
    engine = str(Path(engine_python).absolute())
    version = blender_version(blender_exe)
    label = f"Blender {'.'.join(map(str, version))} at '{blender_exe}'"
    if version < MIN_VERSION:
        raise InstallError(f"{label} is too old: flowstyle needs Blender {SUPPORTED}")
    with tempfile.TemporaryDirectory(prefix="flowstyle-install-") as tmp:
        archive = str(build_zip(Path(tmp) / f"{ZIP_FOLDER}.zip"))
        if version >= (4, 2, 0):
            _run_blender(blender_exe, ["--command", "extension", "install-file", "--repo", EXTENSION_REPO,
                                       "--enable", archive], "installing the extension")
            module, how = f"bl_ext.{EXTENSION_REPO}.{EXTENSION_ID}", "extension"
        else:
            _run_blender(blender_exe, ["--python-expr", _LEGACY_INSTALL.format(zip=archive)],
                         "installing the legacy add-on")
            module, how = ZIP_FOLDER, "legacy add-on"
        _run_blender(blender_exe, ["--python-expr", _SET_PREFS.format(module=module, engine=engine)],
                     "setting the engine in the add-on preferences")
    tested = version[:2] in TESTED or version[:2] > TESTED[-1]
    note = "" if tested else f" (untested release: flowstyle is tested on {', '.join('%d.%d' % v for v in TESTED)})"
    return f"{label}: installed the flowstyle {how}{note}, engine Python {engine}"


def engine_problem(engine_python) -> str | None:
    """Why ``engine_python -m flowstyle --version`` does not work, or ``None`` when it does."""
    cmd = [str(engine_python), "-m", "flowstyle", "--version"]
    try:
        with tempfile.TemporaryDirectory(prefix="flowstyle-check-") as cwd:  # no local 'flowstyle' shadows it
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT, errors="replace", cwd=cwd)
    except FileNotFoundError:
        return f"'{engine_python}' does not exist"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"'{' '.join(cmd)}' could not run: {exc}"
    if done.returncode != 0 or not done.stdout.startswith("flowstyle "):
        said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()] or ["no output"]
        return f"'{' '.join(cmd)}' failed with exit code {done.returncode}: {said[-1].strip()}"
    return None


def install_all(extra_paths=(), engine_python=None, repo_root=REPO) -> list[str]:
    """Install into every Blender found; one line per Blender (or one saying none was found).

    The engine is checked first: an add-on pointing at an engine that does not start is
    not installed (the line says what to do instead).
    """
    engine_python = engine_python or _default_engine(Path(repo_root))
    blenders = find_blenders(extra_paths)
    if not blenders:
        return ["No Blender found (looked on PATH and in the usual install folders): install Blender "
                f"{SUPPORTED} or pass --blender PATH; the add-on archive is built with --zip for Install from Disk"]
    problem = engine_problem(engine_python)
    if problem:
        return [f"Could not set up the add-on: the flowstyle engine does not start ({problem}). "
                f"Run 'python3 install.py' in {repo_root} (it makes .venv with the engine), or pass "
                "--engine-python with the Python of an environment where '-m flowstyle --version' works"]
    lines = []
    for exe in blenders:
        try:
            lines.append(install_addon(exe, engine_python, repo_root))
        except InstallError as exc:
            lines.append(f"Could not install into '{exe}': {exc}")
    return lines


def _default_engine(repo_root: Path) -> str:
    sub = ("Scripts", "python.exe") if sys.platform == "win32" else ("bin", "python")
    return str(repo_root.joinpath(".venv", *sub))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Install the flowstyle add-on into Blender.")
    parser.add_argument("--blender", action="append", default=[], metavar="PATH",
                        help="a Blender executable or install folder (repeatable; default: search)")
    parser.add_argument("--engine-python", metavar="PATH",
                        help="Python of the engine environment (default: this repository's .venv)")
    parser.add_argument("--zip", metavar="OUT.zip", help="only build the add-on archive for Install from Disk")
    parser.add_argument("--list", action="store_true", help="only list the Blender installs found")
    args = parser.parse_args(argv)
    if args.zip:
        print(f"Built {build_zip(args.zip)}: Blender > Preferences > Get Extensions (4.2+) or Add-ons "
              "(older) > Install from Disk")
        return 0
    if args.list:
        found = find_blenders(args.blender)
        print("\n".join(map(str, found)) if found else "No Blender found")
        return 0
    lines = install_all(args.blender, args.engine_python)
    print("\n".join(lines))
    return 0 if all(not line.startswith(("Could not", "No Blender")) for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
