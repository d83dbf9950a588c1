"""Where the real test material lives (../shared/data beside the repository); never copied here."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
CLIPS = {
    "sintel_raft_demo": DATA / "clips" / "sintel_raft_demo",
    "middlebury_rubberwhale": DATA / "clips" / "middlebury_rubberwhale",
    "sintel_cave_2": DATA / "clips" / "sintel_cave_2" / "sintel_cave_2_clean.mp4",
}
