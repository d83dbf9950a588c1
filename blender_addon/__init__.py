"""Flowstyle: temporally coherent neural style transfer for Video Sequencer strips.

The add-on is a thin Blender shell: it never imports torch or the engine. Stylizing runs
``python -m flowstyle`` in the engine's own environment (made by install.py) as a worker
process that reports progress as JSON lines (see ``worker.py``).

Installs as a Blender 4.2+ extension (``blender_manifest.toml``) and as a legacy add-on
(``bl_info`` below) for Blender 3.4 (Debian 12's package) and other setups without extensions.
"""

bl_info = {
    "name": "Flowstyle",
    "author": "flowstyle contributors",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Sequencer > Sidebar > Flowstyle",
    "description": "Stylize movie and image strips like a painting, without flicker",
    "category": "Sequencer",
}

if "bpy" in locals():  # F8 / script reload: pick up edited modules
    import importlib

    for _module in (compat, worker, properties, preferences, planning, results, run_report,  # noqa: F821
                    jobs, operators, panels):  # noqa: F821
        importlib.reload(_module)

import bpy  # noqa: E402

from . import compat, worker, properties, preferences, planning, results, run_report, jobs, operators, panels  # noqa: E402,F401

_modules = (properties, preferences, operators, panels)


def _render_menu(self, context):
    self.layout.separator()
    self.layout.operator("flowstyle.render_all", icon='RENDER_ANIMATION')


@bpy.app.handlers.persistent
def _check_results(*_args):
    """Undo, redo and file load bring back strips, never files: say what is really on disk."""
    for scene in bpy.data.scenes:
        results.check_on_disk(scene)


_HANDLERS = (bpy.app.handlers.undo_post, bpy.app.handlers.redo_post, bpy.app.handlers.load_post)


def register():
    for module in _modules:
        module.register()
    bpy.types.TOPBAR_MT_render.append(_render_menu)
    for handlers in _HANDLERS:
        handlers.append(_check_results)


def unregister():
    jobs.cancel_all()
    for handlers in _HANDLERS:
        for handler in [h for h in handlers if getattr(h, "__name__", "") == "_check_results"]:
            handlers.remove(handler)
    bpy.types.TOPBAR_MT_render.remove(_render_menu)
    for module in reversed(_modules):
        module.unregister()
