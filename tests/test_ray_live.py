"""The README's way to an existing cluster, against a real one: `ray start --head`, then
`flowstyle stylize ... --ray HOST:PORT` (issue 14). Ray 2.60 clusters may use token authentication;
the engine must reach them with the token `ray` saved, without the user setting RAY_AUTH_MODE."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray")
RAY = Path(sys.executable).with_name("ray")
FLOWSTYLE = Path(sys.executable).with_name("flowstyle")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("token", [False, True], ids=["open", "token-auth"])
def test_cli_reaches_a_ray_start_head_cluster(data_dir, tmp_path, token):
    if not RAY.is_file() or not FLOWSTYLE.is_file():
        pytest.skip("the ray and flowstyle commands are not installed beside this Python")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")}
    env["HOME"] = str(tmp_path / "home")
    head_env = dict(env)
    if token:
        subprocess.run([str(RAY), "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
        assert (tmp_path / "home" / ".ray" / "auth_token").is_file()
        head_env["RAY_AUTH_MODE"] = "token"
    temp = tempfile.mkdtemp(prefix="fsray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    try:
        subprocess.run([str(RAY), "start", "--head", f"--port={port}", "--num-cpus=2", "--disable-usage-stats",
                        "--include-dashboard=false", f"--temp-dir={temp}"],
                       env=head_env, check=True, capture_output=True, timeout=120)
        out = tmp_path / "out"
        run = subprocess.run([str(FLOWSTYLE), "stylize", str(data_dir / "clips" / "middlebury_rubberwhale"),
                              "--style", "builtin:3", "--size", "64", "--out", str(out),
                              "--ray", f"127.0.0.1:{port}", "--chunks", "2"],
                             env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        assert len(list(out.glob("frame_*.png"))) == 8
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
