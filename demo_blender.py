"""flowstyle in Blender, end to end, headless: the README's main job.

    .venv/bin/python demo_blender.py [--out demo_out] [--style 7] [--frames 24]

1. Builds a short animated shot with bpy itself (Workbench, 320x180) and renders its frames.
2. Adds them to a Video Sequencer edit as an image strip, saves ``DIR/demo.blend``.
3. Stylizes the strip through the add-on (``bpy.ops.flowstyle.stylize_strip``, the same
   blocking path ``blender -b`` uses) with a built-in style: the result strip lands above it.
4. Renders the edit's sequencer to ``DIR/flowstyle.mp4``.
5. Runs the engine once more with ``--temporal-weight 0`` (per-frame stylization, which
   flickers) and writes ``DIR/side_by_side.png``: source / per-frame / flowstyle as stills, and
   under them each one's time slice (the middle row of every frame stacked over time, the
   engine's own ``time_slice``: flicker is noise across the streaks), with the temporal (warping)
   error of both from the engine's reports. Each result folder also holds the engine's
   ``report.png``.

Runs in about a minute on 2 CPU cores. Needs the bpy module and the engine in this Python
(``python install.py`` sets both up).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SIZE = (320, 180)


def _log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def build_shot(bpy, frames_dir: Path, count: int) -> list[Path]:
    """Model, animate and render a small shot; returns the rendered frame files."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Shot"
    scene.render.engine = 'BLENDER_WORKBENCH'
    scene.render.resolution_x, scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    shading = scene.display.shading
    shading.light, shading.color_type = 'STUDIO', 'TEXTURE'
    shading.show_shadows, shading.show_cavity, shading.cavity_type = True, True, 'BOTH'

    grid = bpy.data.images.new("grid", 1024, 1024)
    grid.generated_type = 'COLOR_GRID'

    def material(name, color, textured=False):
        mat = bpy.data.materials.new(name)
        mat.diffuse_color = (*color, 1.0)
        if textured:  # Workbench's texture colour mode shows the node tree's image
            mat.use_nodes = True
            bsdf = mat.node_tree.nodes["Principled BSDF"]
            tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
            tex.image = grid
            mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        return mat

    def add(op, name, color, textured=True, smooth=False, **kwargs):
        op(**kwargs)
        obj = bpy.context.object
        obj.name = name
        obj.data.materials.append(material(name, color, textured))
        if smooth:
            bpy.ops.object.shade_smooth()
        return obj

    add(bpy.ops.mesh.primitive_plane_add, "ground", (0.8, 0.8, 0.8), size=24)
    monkey = add(bpy.ops.mesh.primitive_monkey_add, "monkey", (0.9, 0.35, 0.1), textured=False, smooth=True,
                 location=(0, 0, 1.2))
    monkey.modifiers.new("smooth", 'SUBSURF').levels = 1
    torus = add(bpy.ops.mesh.primitive_torus_add, "torus", (0.1, 0.5, 0.9), location=(2.6, 1.0, 0.6))
    add(bpy.ops.mesh.primitive_uv_sphere_add, "ball", (0.2, 0.8, 0.3), smooth=True, location=(-2.6, 1.5, 0.8),
        radius=0.8)
    for i, (x, y) in enumerate([(-1.6, -2.0), (1.6, -2.6), (3.8, -1.0), (-3.8, -1.0)]):
        add(bpy.ops.mesh.primitive_cube_add, f"box{i}", (0.9, 0.8, 0.2), location=(x, y, 0.4), size=0.8,
            rotation=(0, 0, i))

    bpy.ops.object.camera_add()
    camera = bpy.context.object
    scene.camera = camera
    target = bpy.data.objects.new("target", None)
    scene.collection.objects.link(target)
    target.location = (0, 0, 0.9)
    camera.constraints.new('TRACK_TO').target = target

    scene.frame_start, scene.frame_end = 1, count
    for frame, angle in ((1, -0.5), (count, 0.6)):  # an orbit: parallax, occlusions, new pixels
        camera.location = (11 * math.sin(angle), -11 * math.cos(angle), 4.0)
        camera.keyframe_insert("location", frame=frame)
    for obj, start, end in ((monkey, (0, 0, -0.6), (0, 0, 0.6)), (torus, (0, 0, 0), (1.2, 0, 0))):
        obj.rotation_euler = start
        obj.keyframe_insert("rotation_euler", frame=1)
        obj.rotation_euler = end
        obj.keyframe_insert("rotation_euler", frame=count)

    frames_dir.mkdir(parents=True, exist_ok=True)
    scene.render.image_settings.file_format = 'PNG'
    scene.render.filepath = str(frames_dir / "frame_")
    bpy.ops.render.render(animation=True)
    files = [frames_dir / f"frame_{i:04d}.png" for i in range(1, count + 1)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"demo: the shot did not render ({len(missing)} frames missing, first {missing[0]})")
    return files


def edit(bpy, files: list[Path]):
    """A sequencer scene with the rendered frames as one image strip."""
    scene = bpy.data.scenes.new("Edit")
    scene.render.resolution_x, scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    scene.render.fps = 24
    scene.frame_start, scene.frame_end = 1, len(files)
    editor = scene.sequence_editor_create()
    strip = editor.strips.new_image("shot", str(files[0]), 1, 1)
    for path in files[1:]:
        strip.elements.append(path.name)
    return scene, strip


def render_video(bpy, scene, path: Path) -> None:
    """Render the sequencer of ``scene`` to an H.264 MP4."""
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.0: pick video before the container
        settings.media_type = 'VIDEO'
    settings.file_format = 'FFMPEG'
    scene.render.ffmpeg.format, scene.render.ffmpeg.codec = 'MPEG4', 'H264'
    scene.render.ffmpeg.constant_rate_factor = 'HIGH'
    scene.render.filepath = str(path)
    scene.render.use_file_extension = False
    bpy.ops.render.render(animation=True, scene=scene.name)


def per_frame(worker, python: str, source: Path, out: Path, style: int) -> None:
    """The baseline: the same network frame by frame (temporal weight 0), through the bridge."""
    spec = worker.JobSpec(input=str(source), out=str(out), styles=(f"builtin:{style}",), mode="fast",
                          size=max(SIZE), temporal_weight=0.0, device="cpu")
    proc = worker.EngineProcess(worker.build_args(python, spec))
    errors = []
    status = worker.run_blocking(proc, lambda e: errors.append(e["message"]) if e["event"] == "error" else None)
    if status != "ok":
        raise SystemExit(f"demo: per-frame stylization failed: {errors[0] if errors else status}")


def warping_error(folder: Path) -> float | None:
    try:
        return json.loads((folder / "report.json").read_text())["summary"]["warping_error_mean"]
    except (OSError, KeyError, ValueError):
        return None


def slice_tile(folder: Path, pattern: str, count: int) -> tuple["Image.Image", float]:
    """The engine's time slice of ``count`` frames (one row each, time running down), stretched to a
    tile, and its mean row-to-row change."""
    import numpy as np
    from PIL import Image
    from flowstyle.io.report_image import slice_change, time_slice

    def frames():
        for i in range(1, count + 1):
            yield np.asarray(Image.open(folder / pattern.format(i)).convert("RGB").resize(SIZE), np.float32) / 255

    s = time_slice(frames())
    tile = Image.fromarray((s * 255 + 0.5).astype(np.uint8)).resize((SIZE[0], max(SIZE[1], count)), Image.NEAREST)
    return tile, slice_change(s)


def side_by_side(rows: list[int], columns: list[tuple[str, Path, str]], path: Path, count: int) -> None:
    """A grid: one row per frame, one column per version, labelled; under them each version's time slice."""
    from PIL import Image, ImageDraw

    label_h, pad = 16, 4
    w, h = SIZE
    slice_h = max(h, count)
    sheet = Image.new("RGB", (len(columns) * (w + pad) + pad,
                              len(rows) * (h + pad) + 2 * pad + 2 * label_h + slice_h), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (title, folder, pattern) in enumerate(columns):
        x = pad + c * (w + pad)
        draw.text((x + 2, 2), title, fill="black")
        for r, frame in enumerate(rows):
            tile = Image.open(folder / pattern.format(frame)).convert("RGB").resize(SIZE, Image.LANCZOS)
            y = label_h + pad + r * (h + pad)
            sheet.paste(tile, (x, y))
            if c == 0:
                draw.text((x + 4, y + 4), f"frame {frame}", fill="white")
        tile, change = slice_tile(folder, pattern, count)
        y = label_h + pad + len(rows) * (h + pad)
        draw.text((x + 2, y + 2), f"time slice (time runs down): change {change:.3f}", fill="black")
        sheet.paste(tile, (x, y + label_h))
    sheet.save(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--style", type=int, default=7, help="built-in style 0-25 (default: 7)")
    parser.add_argument("--frames", type=int, default=24, help="length of the shot in frames (default: 24)")
    args = parser.parse_args(argv)
    if not 0 <= args.style <= 25:
        parser.error(f"--style must be 0 to 25; got {args.style}")
    if args.frames < 2:
        parser.error(f"--frames must be at least 2; got {args.frames}")
    try:
        import bpy
    except ImportError:
        print("ERROR: the bpy module is missing: run 'python install.py' first (it installs bpy for tests and "
              "this demo)", file=sys.stderr)
        return 1
    import addon_utils

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    _log(f"rendering a {args.frames}-frame shot with Workbench at {SIZE[0]}x{SIZE[1]}...")
    files = build_shot(bpy, out / "source", args.frames)
    bpy.context.preferences.filepaths.save_version = 0  # no demo.blend1 backups (after the factory reset)

    sys.path.insert(0, str(ROOT))
    if addon_utils.enable("blender_addon", default_set=True) is None:
        print("ERROR: the flowstyle add-on did not enable (see above)", file=sys.stderr)
        return 1
    from blender_addon import results, worker

    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.engine_python = sys.executable
    prefs.device = 'CPU'

    scene, strip = edit(bpy, files)
    settings = strip.flowstyle
    style = settings.styles.add()
    style.source, style.builtin = 'BUILTIN', args.style
    settings.size, settings.enabled = max(SIZE), True
    for window in bpy.context.window_manager.windows:  # open demo.blend on the edit
        window.scene = scene
    blend = out / "demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))

    _log(f"stylizing strip '{strip.name}' through the add-on (built-in style {args.style})...")
    with bpy.context.temp_override(scene=scene, active_strip=strip):
        bpy.ops.flowstyle.stylize_strip()
    result = results.result_strip(scene.sequence_editor, strip)
    stylized = Path(bpy.path.abspath(result.directory))
    _log(f"result strip '{result.name}' in channel {result.channel}, frames {result.frame_final_start}-"
         f"{result.frame_final_end - 1}, from {stylized}")
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))

    video = out / "flowstyle.mp4"
    _log(f"rendering the sequencer to {video}...")
    render_video(bpy, scene, video)

    _log("per-frame baseline (--temporal-weight 0)...")
    baseline = out / "per_frame"
    per_frame(worker, sys.executable, out / "source", baseline, args.style)

    picks = sorted({max(1, args.frames // 4), max(1, args.frames // 2), max(1, 3 * args.frames // 4)})
    picks += [p + 1 for p in picks if p + 1 <= args.frames and p + 1 not in picks][:1]
    sheet = out / "side_by_side.png"
    side_by_side(sorted(picks), [("source", out / "source", "frame_{:04d}.png"),
                                 ("per-frame (temporal weight 0)", baseline, "frame_{:05d}.png"),
                                 ("flowstyle", stylized, "frame_{:05d}.png")], sheet, args.frames)

    flicker, ours = warping_error(baseline), warping_error(stylized)
    _log(f"wrote {sheet}")
    if flicker and ours:
        _log(f"temporal (warping) error: per-frame {flicker:.4f}, flowstyle {ours:.4f} ({ours / flicker:.2f}x)")
    _log(f"open {blend} in Blender to see the strips; done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
