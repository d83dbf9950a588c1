"""Flowstyle: temporally coherent neural style transfer for Video Sequencer strips.

The add-on is a thin Blender shell: it never imports torch or the engine. Stylizing runs
``python -m flowstyle`` in the engine's own environment (made by install.py) as a worker
process that reports progress as JSON lines (see ``worker.py``).

Installs as a Blender 4.2+ extension (``blender_manifest.toml``) and as a legacy add-on
(``bl_info`` below) for older setups.
"""

bl_info = {
    "name": "Flowstyle",
    "author": "flowstyle contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "Sequencer > Sidebar > Flowstyle",
    "description": "Stylize movie and image strips like a painting, without flicker",
    "category": "Sequencer",
}

if "bpy" in locals():  # F8 / script reload: pick up edited modules
    import importlib

    for _module in (compat, worker, properties, preferences, planning, results, jobs,  # noqa: F821
                    operators, panels):  # noqa: F821
        importlib.reload(_module)

import bpy  # noqa: E402

from . import compat, worker, properties, preferences, planning, results, jobs, operators, panels  # noqa: E402,F401

_modules = (properties, preferences, operators, panels)


def _render_menu(self, context):
    self.layout.separator()
    self.layout.operator("flowstyle.render_all", icon='RENDER_ANIMATION')


def register():
    for module in _modules:
        module.register()
    bpy.types.TOPBAR_MT_render.append(_render_menu)


def unregister():
    jobs.cancel_all()
    bpy.types.TOPBAR_MT_render.remove(_render_menu)
    for module in reversed(_modules):
        module.unregister()
