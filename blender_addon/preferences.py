"""Add-on preferences: where the engine lives, device, weights, cache folder, defaults (DESIGN 5)."""

import os
import sys
from pathlib import Path

import bpy
from bpy.props import EnumProperty, IntProperty
from bpy.types import AddonPreferences

from .properties import path_prop

__all__ = ["FLOWSTYLE_AP_preferences", "get", "engine_python", "EngineNotConfigured"]

_ENV_PYTHON = "FLOWSTYLE_ENGINE_PYTHON"


class EngineNotConfigured(RuntimeError):
    """No engine Python could be found; the message says what to do."""


class FLOWSTYLE_AP_preferences(AddonPreferences):
    """Flowstyle settings shared by every strip."""

    bl_idname = __package__

    engine_python: path_prop("Engine Python",
                             "Python of the environment install.py made (it runs 'python -m flowstyle')",
                             blend_relative=False)
    device: EnumProperty(
        name="Device", description="Where the engine computes",
        items=(
            ('AUTO', "Auto", "CUDA, then Apple MPS, then CPU"),
            ('CPU', "CPU", "Processor only"),
            ('CUDA', "CUDA", "NVIDIA GPU"),
            ('MPS', "MPS", "Apple GPU"),
        ),
        default='AUTO',
    )
    vgg_weights: path_prop("VGG-19 Weights",
                           "Local VGG-19 weights file for quality mode (offline studios); empty = torchvision download",
                           blend_relative=False)
    cache_dir: path_prop("Cache Folder",
                         "Where stylized frames go; empty = a 'flowstyle' folder next to the .blend file",
                         subtype='DIR_PATH', blend_relative=False)
    default_mode: EnumProperty(
        name="Default Mode", description="Mode of strips whose mode is 'Default'",
        items=(('FAST', "Fast", "Feed-forward networks plus temporal pass"),
               ('QUALITY', "Quality", "Optimization with temporal losses (needs a GPU)")),
        default='FAST',
    )
    preview_size: IntProperty(
        name="Preview Size", description="Longest side of preview frames, in pixels",
        min=64, max=4096, default=512, subtype='PIXEL',
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "engine_python")
        try:
            layout.label(text=f"Engine: {engine_python(self)}", icon='CHECKMARK')
        except EngineNotConfigured as exc:
            layout.label(text=str(exc), icon='ERROR')
        layout.prop(self, "device")
        layout.prop(self, "default_mode")
        layout.prop(self, "preview_size")
        layout.prop(self, "cache_dir")
        layout.prop(self, "vgg_weights")


def get(context=None) -> FLOWSTYLE_AP_preferences:
    """This add-on's preferences (works as an extension and as a legacy add-on)."""
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


def _venv_python(root: Path) -> Path:
    if sys.platform == "win32":
        return root / ".venv" / "Scripts" / "python.exe"
    return root / ".venv" / "bin" / "python"


def engine_python(prefs) -> str:
    """The engine's Python: the preference, else $FLOWSTYLE_ENGINE_PYTHON, else the repo's .venv.

    Raises:
        EngineNotConfigured: none of them exists (message: what to do).
    """
    configured = (prefs.engine_python or "").strip()
    if configured:
        path = Path(bpy.path.abspath(configured))
        if not path.is_file():
            raise EngineNotConfigured(
                f"engine Python '{path}' not found: fix it in Preferences > Add-ons > Flowstyle, or run install.py again"
            )
        return str(path)
    env = os.environ.get(_ENV_PYTHON, "").strip()
    if env and Path(env).is_file():
        return env
    candidate = _venv_python(Path(__file__).resolve().parent.parent)  # add-on run from the repository
    if candidate.is_file():
        return str(candidate)
    raise EngineNotConfigured(
        "flowstyle engine not set up: run 'python install.py' in the flowstyle folder, "
        "or set Engine Python in Preferences > Add-ons > Flowstyle"
    )


classes = (FLOWSTYLE_AP_preferences,)

register, unregister = bpy.utils.register_classes_factory(classes)
