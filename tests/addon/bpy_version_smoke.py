"""The add-on's main flow in whichever ``bpy`` module runs this file (test_bpy_versions.py).

    python bpy_version_smoke.py ENGINE_PYTHON RUBBERWHALE_DIR CACHE_DIR

Uses only the add-on's own ``compat`` for the sequencer API, so it runs unchanged in bpy 4.2
(``sequences``), 4.4 (``strips``) and 5.x. The engine is whatever ``ENGINE_PYTHON -m
flowstyle`` finds (the fake worker, via PYTHONPATH). Prints ``RESULT {json}`` at the end.
"""

import json
import sys
import time
from pathlib import Path

import bpy  # first: it puts Blender's own modules (addon_utils) on sys.path

import addon_utils  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
engine_python, whale, cache = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

assert addon_utils.enable("blender_addon", default_set=True) is not None
from blender_addon import compat, jobs, planning, results  # noqa: E402

prefs = bpy.context.preferences.addons["blender_addon"].preferences
prefs.engine_python, prefs.cache_dir, prefs.preview_size = engine_python, cache, 64
scene = bpy.context.scene
scene.sequence_editor_create()
editor = scene.sequence_editor
strips = compat.top_strips(editor)
source = strips.new_image(name="whale", filepath=str(whale / "frame_0001.png"), channel=1, frame_start=1)
for i in range(2, 9):
    source.elements.append(f"frame_{i:04d}.png")
try:
    strips.new_effect(name="blocker", type='COLOR', channel=2, frame_start=7, length=4)
except TypeError:
    strips.new_effect(name="blocker", type='COLOR', channel=2, frame_start=7, frame_end=11)
style = source.flowstyle.styles.add()
style.source, style.builtin = 'BUILTIN', 2
source.flowstyle.size, source.flowstyle.enabled = 64, True
seen = {"version": list(bpy.app.version)}


def run(name):
    with bpy.context.temp_override(active_strip=source):
        return sorted(getattr(bpy.ops.flowstyle, name)())


def sizes():
    out = planning.strip_folder(source, prefs) / "frames"
    return sorted({results.png_size(p) for p in out.glob("frame_*.png")})


scene.frame_current = 3
seen["preview"] = run("preview_frame")
seen["preview_channel"] = results.preview_strips(editor, source)[0].channel
seen["stylize"] = run("stylize_strip")
result = results.result_strip(editor, source)
seen["result"] = [result.channel, len(result.elements), result.frame_final_start, result.frame_final_end]
seen["preview_channel_after"] = [p.channel for p in results.preview_strips(editor, source)]
seen["sizes"] = sizes()

# Re-run at another size, cancel it: the first result stays whole.
source.flowstyle.size = 96
job = jobs.start(scene, source, planning.make_plan(scene, source, prefs))
deadline = time.monotonic() + 60
while job.ready < 2 and time.monotonic() < deadline:
    jobs.step(job)
    time.sleep(0.02)
jobs.cancel(job)
jobs.run_to_end(job)
seen["cancelled"] = [job.status, sizes(), len(results.result_strip(editor, source).elements)]
seen["update"] = run("update")
seen["sizes_after_update"] = sizes()
seen["status"] = source.flowstyle.status

lost = strips.new_movie(name="lost", filepath=str(Path(cache) / "gone.mp4"), channel=5, frame_start=1)
lost.flowstyle.styles.add()
lost.flowstyle.enabled = True
try:
    bpy.ops.flowstyle.render_all(render=False)
    seen["render_all"] = "no error"
except RuntimeError as exc:
    seen["render_all"] = str(exc).strip()
print("RESULT " + json.dumps(seen), flush=True)
