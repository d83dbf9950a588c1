"""Keyframe-style overrides (DESIGN 4.5): which style mix, weights and painted frame apply where.

File format (frames count from 1 within the stylized range; paths relative to the file)::

    {"keys": [{"frame": 1,  "style": "builtin:7", "interpolation": "linear"},
              {"frame": 24, "style": ["starry_night.jpg:0.7", "the_scream.jpg:0.3"],
               "style_weight": 100, "temporal_weight": 1000}],
     "overrides": [{"frame": 12, "image": "painted_0012.png"}]}

A key's ``interpolation`` (``constant`` when omitted) governs the way from it to the next
key; its ``style`` replaces ``--style`` from that frame on; fields it omits keep the CLI's
values. A :class:`Timeline` answers per frame: the style mix, the weights, the painted image.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from ..base.errors import FlowstyleError
from ..io.images import read_image
from ..io.styles import StyleRef, parse_style
from ..settings import Settings

__all__ = ["StyleKey", "Override", "Timeline", "load_keyframes", "parse_keyframes", "blend_styles"]

INTERPOLATIONS = ("constant", "linear", "smooth")
WEIGHT_FIELDS = ("content_weight", "style_weight", "temporal_weight", "strength")
KEY_FIELDS = {"frame", "style", "interpolation", *WEIGHT_FIELDS}
OVERRIDE_FIELDS = {"frame", "image", "strength", "reach"}


@dataclass(frozen=True)
class StyleKey:
    """A style key: from ``frame`` (0-based here) on, this style mix and these weights."""

    frame: int
    styles: tuple[StyleRef, ...] = ()  # empty: keep the CLI's --style
    interpolation: str = "constant"
    weights: tuple[tuple[str, float], ...] = ()  # (field, value) pairs the key sets


@dataclass(frozen=True)
class Override:
    """A painted frame: the output at ``frame`` (0-based) is this image, and it sets the look of its
    stretch of the shot (:mod:`flowstyle.keyframes.painted`).

    ``strength`` (0-1) is how much of the look it decides; ``reach`` how many frames each side it
    holds (None: to the neighbouring painted keys, or the ends of the shot).
    """

    frame: int
    image: str
    strength: float = 1.0
    reach: Optional[int] = None


def blend_styles(a: Sequence[StyleRef], b: Sequence[StyleRef], t: float) -> tuple[StyleRef, ...]:
    """Weighted union of two style mixes, (1 − t)·a + t·b, weights normalized per mix first."""
    out: dict[tuple, float] = {}
    for mix, share in ((a, 1.0 - t), (b, t)):
        total = sum(s.weight for s in mix)
        if share <= 0 or total <= 0:
            continue
        for s in mix:
            ref = (s.builtin, s.image)
            out[ref] = out.get(ref, 0.0) + share * s.weight / total
    return tuple(StyleRef(builtin=k[0], image=k[1], weight=w) for k, w in out.items() if w > 0)


@dataclass(frozen=True)
class Timeline:
    """Style mix, weights and painted overrides over a range of ``length`` frames (0-based)."""

    length: int
    base: tuple[StyleRef, ...]
    keys: tuple[StyleKey, ...] = ()
    overrides: tuple[Override, ...] = ()
    source: str = ""

    def _segment(self, k: int) -> tuple[Optional[StyleKey], Optional[StyleKey], float]:
        """The key in force at frame k, the next key, and the eased position between them."""
        before = [key for key in self.keys if key.frame <= k]
        if not before:
            return None, None, 0.0
        a = before[-1]
        after = [key for key in self.keys if key.frame > k]
        if not after or a.interpolation == "constant":
            return a, None, 0.0
        b = after[0]
        t = (k - a.frame) / (b.frame - a.frame)
        if a.interpolation == "smooth":
            t = t * t * (3.0 - 2.0 * t)
        return a, b, t

    def styles_at(self, k: int) -> tuple[StyleRef, ...]:
        """The style mix at frame ``k`` (0-based): blended between keys, ``--style`` before the first."""
        a, b, t = self._segment(k)
        if a is None:
            return self.base
        sa = a.styles or self.base
        if b is None or t <= 0:
            return sa
        return blend_styles(sa, b.styles or self.base, t)

    def style_change(self, k: int) -> float:
        """How much the style mix changes from frame k−1 to frame k: half the L1 distance of the
        normalized weights, 0 (same mix) to 1 (nothing shared, a cut)."""
        if k <= 0:
            return 0.0
        def weights(refs):
            total = sum(r.weight for r in refs) or 1.0
            out: dict = {}
            for r in refs:
                out[(r.builtin, r.image)] = out.get((r.builtin, r.image), 0.0) + r.weight / total
            return out
        a, b = weights(self.styles_at(k - 1)), weights(self.styles_at(k))
        return 0.5 * sum(abs(a.get(key, 0.0) - b.get(key, 0.0)) for key in a.keys() | b.keys())

    def weight_at(self, k: int, name: str, default: float) -> float:
        """A per-key weight at frame ``k``: interpolated like the style, ``default`` where no key sets it."""
        a, b, t = self._segment(k)
        va = dict(a.weights).get(name, default) if a else default
        if b is None or t <= 0:
            return va
        vb = dict(b.weights).get(name, default)
        return (1.0 - t) * va + t * vb

    def fingerprint(self) -> str:
        """Changes when anything that decides the pixels changes (painted files by content)."""
        h = hashlib.blake2b(digest_size=12)
        h.update(repr((self.base, self.keys)).encode())
        for o in self.overrides:
            h.update(f"{o.frame}|{o.strength!r}|{o.reach!r}|".encode())
            h.update(Path(o.image).read_bytes())
        return h.hexdigest()


def _where(source: str, what: str) -> str:
    return f"keyframe file '{source}', {what}"


def _kind(value) -> str:
    """What a JSON value is, in the file's words (never the value itself: it may be huge or deep)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "a number")


def _frame(entry: dict, length: int, source: str, what: str) -> int:
    f = entry.get("frame")
    if isinstance(f, bool) or not isinstance(f, int):
        raise FlowstyleError(f"{_where(source, what)}: 'frame' must be a whole number, got {f!r}")
    if not 1 <= f <= length:
        raise FlowstyleError(f"{_where(source, what)}: frame {f} is outside the stylized range 1-{length} "
                             "(frames count from 1 within --frames)")
    return f - 1


def _styles(value, base: Path, source: str, what: str) -> tuple[StyleRef, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
        raise FlowstyleError(f"{_where(source, what)}: 'style' must be a string or a list of strings like \"starry.jpg:0.7\"")
    try:
        return tuple(parse_style(s, base) for s in items)
    except FlowstyleError as exc:
        raise FlowstyleError(f"{_where(source, what)}: {exc} (paths are relative to the keyframe file)") from None


def parse_keyframes(data: dict, length: int, base_styles: tuple[StyleRef, ...], folder: Path,
                    source: str = "<keyframes>") -> Timeline:
    """Check a keyframe structure (the JSON file's content) and build its :class:`Timeline`.

    Every problem is one FlowstyleError line naming the file, the entry and what to do.
    """
    if not isinstance(data, dict):
        raise FlowstyleError(f"keyframe file '{source}': the top level must be an object with 'keys' and/or 'overrides'")
    unknown = set(data) - {"keys", "overrides"}
    if unknown:
        raise FlowstyleError(f"keyframe file '{source}': unknown field(s) {', '.join(sorted(unknown))}; use 'keys' and 'overrides'")
    for name in ("keys", "overrides"):
        if not isinstance(data.get(name, []), list):
            raise FlowstyleError(f"keyframe file '{source}': '{name}' must be a list of objects, got "
                                 f"{_kind(data[name])}; leave it out when there are none")
    keys, seen = [], set()
    for n, entry in enumerate(data.get("keys", []), 1):
        what = f"key {n}"
        if not isinstance(entry, dict):
            raise FlowstyleError(f"{_where(source, what)}: each key must be an object like {{\"frame\": 1, \"style\": \"builtin:7\"}}")
        bad = set(entry) - KEY_FIELDS
        if bad:
            raise FlowstyleError(f"{_where(source, what)}: unknown field(s) {', '.join(sorted(bad))}; "
                                 f"allowed: {', '.join(sorted(KEY_FIELDS))}")
        frame = _frame(entry, length, source, what)
        if frame in seen:
            raise FlowstyleError(f"{_where(source, what)}: a second key at frame {frame + 1}; one key per frame")
        seen.add(frame)
        interp = entry.get("interpolation", "constant")
        if interp not in INTERPOLATIONS:
            raise FlowstyleError(f"{_where(source, what)}: interpolation {interp!r} is not one of {', '.join(INTERPOLATIONS)}")
        weights = []
        for name in WEIGHT_FIELDS:
            if name in entry:
                v = entry[name]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise FlowstyleError(f"{_where(source, what)}: '{name}' must be a number of 0 or more, got {v!r}")
                if name == "strength" and v > 1:
                    raise FlowstyleError(f"{_where(source, what)}: 'strength' must be between 0 and 1, got {v!r}")
                weights.append((name, float(v)))
        styles = _styles(entry["style"], folder, source, what) if "style" in entry else ()
        keys.append(StyleKey(frame, styles, interp, tuple(weights)))
    overrides, seen = [], set()
    for n, entry in enumerate(data.get("overrides", []), 1):
        what = f"override {n}"
        if not isinstance(entry, dict) or set(entry) - OVERRIDE_FIELDS or "image" not in entry:
            raise FlowstyleError(f"{_where(source, what)}: each override must be {{\"frame\": N, \"image\": \"painted.png\"}}, "
                                 "optionally with \"strength\" (0-1) and \"reach\" (frames)")
        frame = _frame(entry, length, source, what)
        if frame in seen:
            raise FlowstyleError(f"{_where(source, what)}: a second override at frame {frame + 1}; one per frame")
        seen.add(frame)
        if not isinstance(entry["image"], str) or not entry["image"]:
            raise FlowstyleError(f"{_where(source, what)}: 'image' must be a file name like \"painted_0012.png\", "
                                 f"got {_kind(entry['image'])}")
        image = Path(entry["image"])
        image = image if image.is_absolute() else folder / image
        if not image.is_file():
            raise FlowstyleError(f"{_where(source, what)}: painted image '{image}' not found (paths are relative to the keyframe file)")
        read_image(image, "painted image")  # decodable, or one clear line now rather than mid-run
        strength = entry.get("strength", 1.0)
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
            raise FlowstyleError(f"{_where(source, what)}: 'strength' must be a number from 0 to 1, got {strength!r}")
        reach = entry.get("reach")
        if reach is not None and (isinstance(reach, bool) or not isinstance(reach, int) or reach < 1):
            raise FlowstyleError(f"{_where(source, what)}: 'reach' must be a whole number of frames of 1 or more "
                                 f"(or left out: to the next painted key), got {reach!r}")
        overrides.append(Override(frame, str(image), float(strength), reach))
    return Timeline(length, base_styles, tuple(sorted(keys, key=lambda k: k.frame)),
                    tuple(sorted(overrides, key=lambda o: o.frame)), source)


def load_keyframes(settings: Settings, length: int, keyframes: Union[str, Path, dict, None] = None) -> Timeline:
    """The run's timeline: ``settings.keyframes`` (a JSON file) parsed against ``length`` frames.

    ``keyframes`` may also be given directly as the parsed structure (the Python API).
    """
    spec = keyframes if keyframes is not None else settings.keyframes
    if spec is None:
        return Timeline(length=length, base=settings.styles)
    if isinstance(spec, dict):
        return parse_keyframes(spec, length, settings.styles, Path.cwd())
    path = Path(spec)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FlowstyleError(f"keyframe file '{path}' not found: check the --keyframes path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowstyleError(f"cannot read keyframe file '{path}': {exc}") from None
    except json.JSONDecodeError as exc:
        raise FlowstyleError(f"keyframe file '{path}' is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except (RecursionError, ValueError) as exc:  # nested past Python's stack, or an integer of thousands of digits
        what = "is nested too deeply" if isinstance(exc, RecursionError) else f"holds a value Python cannot read ({str(exc).split(':')[0]})"
        raise FlowstyleError(f"keyframe file '{path}' {what}: keys and overrides are flat lists of objects "
                             "(see the README's keyframe format)") from None
    return parse_keyframes(data, length, settings.styles, path.resolve().parent, str(path))
