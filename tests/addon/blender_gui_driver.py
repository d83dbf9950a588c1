"""Drive the installed add-on in a real Blender with a UI (run by test_blender_binary.py).

    blender --enable-event-simulate --python-exit-code 1 --python blender_gui_driver.py -- CONFIG.json

(with the add-on installed and enabled in the user preferences Blender reads; no factory startup)

Everything happens in the real event loop: ``bpy.app.timers`` step through the phases,
operators are invoked (``'INVOKE_DEFAULT'``) with ``context.temp_override`` on a Sequencer
area, so they run modal with their own event timers; Esc is a simulated key event. The
driver writes what it saw to the config's ``out`` JSON and quits (exit code 0; a driver bug
writes ``{"error": ...}``).

Phases: build a shot (a trimmed movie strip with a style) -> Preview Frame -> Stylize
Strip, Esc after a few frames -> Update -> report. While the Stylize job runs, a 0.1 s
timer counts how often the event loop gets round to it (updates per second).
"""

import json
import sys
import time
import traceback

import bpy

CONFIG = json.loads(open(sys.argv[sys.argv.index("--") + 1], encoding="utf-8").read())
MODULE = CONFIG["module"]  # the installed add-on's module: flowstyle_vse (legacy) or bl_ext.*.flowstyle
STATE = {"phase": "setup", "log": [], "ticks": [], "t0": time.monotonic()}
REPORT = {}


def log(text):
    STATE["log"].append(f"{time.monotonic() - STATE['t0']:6.2f} {text}")
    print(f"[driver] {text}", flush=True)


def addon():
    return sys.modules[MODULE]


def editor_strips(scene):
    editor = scene.sequence_editor
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


def sequencer_area():
    window = bpy.context.window_manager.windows[0]
    areas = sorted(window.screen.areas, key=lambda a: a.width * a.height, reverse=True)
    area = next((a for a in areas if a.type == 'SEQUENCE_EDITOR'), None)
    if area is None:
        area = areas[0]
        area.type = 'SEQUENCE_EDITOR'
        area.spaces.active.view_type = 'SEQUENCER_PREVIEW'
    region = next(r for r in area.regions if r.type == 'WINDOW')
    return window, area, region


def invoke(name, strip):
    window, area, region = sequencer_area()
    with bpy.context.temp_override(window=window, area=area, region=region, active_strip=strip):
        result = getattr(bpy.ops.flowstyle, name)('INVOKE_DEFAULT')
    log(f"{name} -> {result}")
    return result


def build():
    scene = bpy.context.scene
    scene.sequence_editor_create()
    editor = scene.sequence_editor
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    source = strips.new_movie("cave", CONFIG["movie"], 1, 1)
    source.frame_offset_start, source.frame_offset_end = CONFIG["trim"]
    # A strip the preview's channel would collide with if the add-on placed it carelessly.
    try:  # 4.0+: length; 3.x: frame_end
        blocker = strips.new_effect(name="blocker", type='COLOR', channel=2, frame_start=1, length=2)
    except TypeError:
        blocker = strips.new_effect(name="blocker", type='COLOR', channel=2, frame_start=1, frame_end=3)
    blocker.color = (0.1, 0.1, 0.1)
    scene.frame_start, scene.frame_end = int(source.frame_final_start), int(source.frame_final_end) - 1
    scene.render.resolution_x, scene.render.resolution_y = 320, 180
    style = source.flowstyle.styles.add()
    style.source, style.builtin = 'BUILTIN', 4
    source.flowstyle.size = CONFIG.get("size", 96)
    source.flowstyle.enabled = True
    editor.active_strip = source
    source.select = True
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.device = 'CPU'
    prefs.preview_size = 96
    bpy.ops.wm.save_as_mainfile(filepath=CONFIG["blend"])
    sequencer_area()
    REPORT["source_channel"] = source.channel
    return source


def source_strip():
    return editor_strips(bpy.context.scene)["cave"]


def job():
    return addon().jobs.find(bpy.context.scene.name, "cave")


def count_tick():
    if STATE["phase"] == "stylize":
        STATE["ticks"].append(time.monotonic())
    return 0.1 if STATE["phase"] != "done" else None


def snapshot(name):
    scene = bpy.context.scene
    source = source_strip()
    results = addon().results
    result = results.result_strip(scene.sequence_editor, source)
    previews = results.preview_strips(scene.sequence_editor, source)
    shot = {
        "status": source.flowstyle.status,
        "result": None if result is None else {
            "name": result.name, "channel": result.channel, "elements": len(result.elements),
            "start": result.frame_final_start, "end": result.frame_final_end,
            "directory": bpy.path.abspath(result.directory),
        },
        "previews": [{"channel": p.channel, "start": p.frame_final_start, "end": p.frame_final_end}
                     for p in previews],
        "strips": sorted((s.name, s.channel, s.frame_final_start, s.frame_final_end) for s in editor_strips(scene)),
    }
    REPORT[name] = shot
    log(f"{name}: {json.dumps(shot)}")


def step():
    """The driver's state machine, one call per 0.25 s."""
    phase = STATE["phase"]
    now = time.monotonic()
    if now - STATE["t0"] > CONFIG.get("timeout", 240):
        raise TimeoutError(f"driver timed out in phase '{phase}'")
    if phase == "setup":
        build()
        bpy.context.scene.frame_current = CONFIG["preview_frame"]
        invoke("preview_frame", source_strip())
        STATE["phase"] = "preview"
    elif phase == "preview" and job() is None:
        snapshot("after_preview")
        STATE["phase"], STATE["stylize_t0"] = "stylize", now
        invoke("stylize_strip", source_strip())
    elif phase == "stylize":
        running = job()
        if running is not None and running.frames >= CONFIG["cancel_after"]:
            window = bpy.context.window_manager.windows[0]
            window.event_simulate(type='ESC', value='PRESS')
            window.event_simulate(type='ESC', value='RELEASE')
            log(f"Esc after {running.frames} frames")
            STATE["phase"] = "cancelling"
            ticks = STATE["ticks"]
            span = ticks[-1] - ticks[0] if len(ticks) > 1 else 0.0
            REPORT["updates_per_second"] = (len(ticks) - 1) / span if span > 0 else 0.0
            gaps = [b - a for a, b in zip(ticks, ticks[1:])]
            REPORT["stalls_over_0.35s"] = sum(g > 0.35 for g in gaps)
            REPORT["measured_seconds"] = span
        elif running is None:
            raise RuntimeError(f"the job ended before {CONFIG['cancel_after']} frames: {source_strip().flowstyle.status}")
    elif phase == "cancelling" and job() is None:
        snapshot("after_cancel")
        STATE["phase"] = "update"
        invoke("update", source_strip())
    elif phase == "update" and job() is None:
        snapshot("after_update")
        STATE["phase"] = "done"
        finish()
        return None
    return 0.25


def guarded_step():
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - reported to the test, then quit
        REPORT["error"] = f"{type(exc).__name__}: {exc}"
        REPORT["traceback"] = traceback.format_exc()
        STATE["phase"] = "done"
        finish()
        return None


def finish():
    REPORT["log"] = STATE["log"]
    with open(CONFIG["out"], "w", encoding="utf-8") as fh:
        json.dump(REPORT, fh, indent=1)
    bpy.app.timers.register(lambda: bpy.ops.wm.quit_blender() and None, first_interval=0.5)


bpy.app.timers.register(guarded_step, first_interval=1.0)
bpy.app.timers.register(count_tick, first_interval=1.0)
