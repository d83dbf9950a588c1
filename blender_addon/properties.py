"""Per-strip settings: styles, mode, sizes, weights, flow, keyframes (DESIGN 5, STYLE 12).

Every strip gets ``strip.flowstyle`` (a PointerProperty on the strip type). Each property
has ``min``/``max`` where it is a number, so Blender clamps on assignment and an
out-of-range value never reaches the engine.
"""

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)
from bpy.types import PropertyGroup

from . import compat

__all__ = ["FLOWSTYLE_PG_style", "FLOWSTYLE_PG_keyframe", "FLOWSTYLE_PG_strip_settings", "style_spec", "path_prop",
           "BUILTIN_COUNT"]

BUILTIN_COUNT = 26  # shipped Magenta styles: builtin:0 .. builtin:25 (DESIGN 2)

# Choices of the enum properties below: (identifier saved in .blend files, UI name, tooltip).
_STYLE_SOURCES = (
    ('BUILTIN', "Built-in", "One of the 26 styles shipped with the engine"),
    ('IMAGE', "Image", "A painting or picture whose look is transferred"),
)
_KEY_KINDS = (
    ('STYLE', "Style Key", "From this frame on, use this style (blended towards the next key)"),
    ('OVERRIDE', "Painted Override", "This frame is painted; its look holds until the next painted key"),
)
_INTERPOLATIONS = (
    ('CONSTANT', "Constant", "Keep this style until the next key"),
    ('LINEAR', "Linear", "Blend linearly into the next key's style"),
    ('SMOOTH', "Smooth", "Blend smoothly (ease in and out) into the next key's style"),
)
_ROLES = (
    ('SOURCE', "Source", "A strip that can be stylized"),
    ('RESULT', "Result", "The stylized copy of another strip"),
    ('PREVIEW', "Preview", "A temporary one-frame preview of another strip"),
)
_MODES = (
    ('DEFAULT', "Default", "The mode set in the add-on preferences"),
    ('FAST', "Fast", "Shipped feed-forward networks with the temporal pass; runs on a laptop CPU"),
    ('QUALITY', "Quality", "Per-frame optimization with temporal losses (Ruder et al.); needs a GPU"),
)
_FLOWS = (
    ('DIS', "DIS", "OpenCV DIS: fast and good (default)"),
    ('DEEPFLOW', "DeepFlow", "OpenCV DeepFlow: the papers' choice, slower"),
)
_LONG_TERM = (
    ('DEFAULT', "Mode Default", "Fast: 1; Quality: 1, 2, 4"),
    ('1', "1", "Previous frame only"),
    ('1,2', "1, 2", "The two previous frames"),
    ('1,2,4', "1, 2, 4", "Frames 1, 2 and 4 back (the papers' choice)"),
    ('1,2,4,8', "1, 2, 4, 8", "Frames 1, 2, 4 and 8 back"),
)


def style_spec(source: str, builtin: int, image: str, weight: float | None = None) -> str:
    """The engine's ``--style`` text for one style (``builtin:N``, ``path`` or ``path:weight``).

    ``image`` must already be absolute; ``weight`` is left out when ``None``.
    """
    base = f"builtin:{int(builtin)}" if source == 'BUILTIN' else image
    if weight is None:
        return base
    text = repr(float(weight))
    return f"{base}:{text[:-2] if text.endswith('.0') else text}"


# Property factories: one declaration per idea, shared by the groups below (a style, a key, a strip).

def _switch(name: str, description: str):
    """An off-by-default checkbox (``use_*`` overrides, ``enabled``)."""
    return BoolProperty(name=name, description=description, default=False)


def path_prop(name: str, description: str, subtype: str = 'FILE_PATH', blend_relative: bool = True):
    """A file (``FILE_PATH``) or folder (``DIR_PATH``) path; ``blend_relative`` ones may start with ``//``.

    Paths stored in the .blend file are blend-relative; the add-on preferences' paths are not.
    """
    options = {"options": compat.BLEND_RELATIVE_PATH} if blend_relative else {}
    return StringProperty(name=name, description=description, subtype=subtype, **options)


def _source(description: str):
    """Where a style comes from: built-in or image."""
    return EnumProperty(name="Source", description=description, items=_STYLE_SOURCES, default='BUILTIN')


def _builtin():
    """Index of a shipped style."""
    return IntProperty(name="Built-in Style", description="Index of the shipped style (0-25)",
                       min=0, max=BUILTIN_COUNT - 1, default=0)


def _loss_weight(name: str, description: str, soft_max: float, default: float):
    """A weight of the quality mode's loss (0 .. 1e6)."""
    return FloatProperty(name=name, description=description, min=0.0, max=1e6, soft_max=soft_max, default=default)


def _style_weight(description: str):
    """The style loss weight (a strip's, or a key's override of it)."""
    return _loss_weight("Style Weight", description, soft_max=1000.0, default=100.0)


def _temporal_weight():
    """The temporal consistency weight (a strip's, or a key's override of it)."""
    return _loss_weight("Temporal Weight", "Weight of the temporal consistency term", soft_max=2000.0, default=1000.0)


class FLOWSTYLE_PG_style(PropertyGroup):
    """One style of a strip's blend: a built-in style or an image, with a weight."""

    __slots__ = ()

    source: _source("Where the style comes from")
    builtin: _builtin()
    image: path_prop("Style Image", "Painting or picture to take the style from")
    weight: FloatProperty(name="Weight", description="Share of this style in the blend (weights are normalized)",
                          min=0.0, max=100.0, soft_max=1.0, default=1.0)


class FLOWSTYLE_PG_keyframe(PropertyGroup):
    """A style key or a painted override at one source frame (DESIGN 4.5)."""

    __slots__ = ()

    kind: EnumProperty(name="Kind", description="What this key does", items=_KEY_KINDS, default='STYLE')
    frame: IntProperty(name="Source Frame",
                       description="Frame of the strip's media (1 = its first frame), so keys move with the strip",
                       min=1, max=1_000_000, default=1)
    source: _source("Where the key's style comes from")
    builtin: _builtin()
    image: path_prop("Image", "Style image (style key) or the painted frame (painted override)")
    interpolation: EnumProperty(name="Interpolation", description="How the style changes from this key to the next",
                                items=_INTERPOLATIONS, default='CONSTANT')
    use_style_weight: _switch("Style Weight", "Override the style weight from this key on")
    style_weight: _style_weight("Weight of the style loss (quality mode)")
    use_temporal_weight: _switch("Temporal Weight", "Override the temporal weight from this key on")
    temporal_weight: _temporal_weight()
    strength: FloatProperty(name="Strength",
                            description="How much of the look the painting decides around it: 1 = the painting's "
                                        "look, lower lets the style underneath show through",
                            min=0.0, max=1.0, default=1.0, subtype='FACTOR')
    use_reach: _switch("Limit Reach", "Hold the painting only a set number of frames each side of it; "
                                      "off, it holds until the next painted key or the end of the shot")
    reach: IntProperty(name="Reach", description="Frames each side of the painted frame that its look holds "
                                                 "(fading out over the last third)",
                       min=1, max=1_000_000, soft_max=250, default=12)


class FLOWSTYLE_PG_strip_settings(PropertyGroup):
    """Flowstyle settings and job state of one strip (``strip.flowstyle``)."""

    __slots__ = ()

    enabled: _switch("Flowstyle", "Stylize this strip (Render All and headless renders include it)")
    role: EnumProperty(name="Role", description="What this strip is to flowstyle", items=_ROLES, default='SOURCE')
    source_name: StringProperty(name="Source Strip", description="The strip this result or preview was made from")
    result_name: StringProperty(name="Result Strip", description="The stylized strip made from this one")
    output_dir: path_prop("Output", "Folder holding the stylized frames of the last run", subtype='DIR_PATH')

    styles: CollectionProperty(type=FLOWSTYLE_PG_style, name="Styles")
    active_style: IntProperty(name="Active Style", min=0, default=0)

    mode: EnumProperty(name="Mode",
                       description="Fast: feed-forward network plus temporal smoothing. Quality: optimization",
                       items=_MODES, default='DEFAULT')
    stylizer: path_prop("Trained Stylizer", "A video network made by 'flowstyle train' (fast mode): it replaces "
                                            "the shipped network and brings its own style; empty uses the styles above")
    use_source_size: _switch("Source Size", "Stylize at the media's own resolution")
    size: IntProperty(name="Working Size", description="Longest side of the stylized frames, in pixels",
                      min=64, max=8192, soft_max=4096, default=1024, subtype='PIXEL')
    flow: EnumProperty(name="Flow", description="Optical flow backend that ties frames together", items=_FLOWS,
                       default='DIS')
    use_temporal_weight: _switch("Custom Temporal Weight",
                                 "Override the mode's temporal weight (0 = per-frame, flickers)")
    temporal_weight: _temporal_weight()
    long_term: EnumProperty(name="Long-Term Frames", description="Earlier frames each frame is tied to",
                            items=_LONG_TERM, default='DEFAULT')
    content_weight: _loss_weight("Content Weight", "How much each frame keeps its content (quality mode)",
                                 soft_max=100.0, default=5.0)
    style_weight: _style_weight("How strongly the style applies (quality mode)")
    passes: IntProperty(name="Passes", description="Forward/backward passes (quality mode); 0 = mode default",
                        min=0, max=50, default=0)
    recipe: EnumProperty(
        name="Recipe", description="Quality mode's iteration budgets (previews always use Fast)",
        items=(('DEFAULT', "Default", "The papers' iteration counts (1000 for a shot's first frame, 500 after)"),
               ('FAST', "Fast", "Coarse-to-fine start and fewer iterations: within 1 percent of the default's "
                                "loss in about a seventh of its time")),
        default='DEFAULT')

    keyframes: CollectionProperty(type=FLOWSTYLE_PG_keyframe, name="Keyframes")
    active_keyframe: IntProperty(name="Active Keyframe", min=0, default=0)

    # Job state shown in the panel (written on the main thread only).
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, default=0.0, subtype='FACTOR')
    status: StringProperty(name="Status", description="What the last flowstyle job did")


classes = (
    FLOWSTYLE_PG_style,
    FLOWSTYLE_PG_keyframe,
    FLOWSTYLE_PG_strip_settings,
)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    compat.strip_type().flowstyle = PointerProperty(type=FLOWSTYLE_PG_strip_settings)


def unregister() -> None:
    del compat.strip_type().flowstyle
    _unregister_classes()
