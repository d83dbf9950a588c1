"""The stylizer as it was before the torch port: onnxruntime sessions on the shipped files, the
arbitrary transformer at its fixed 384x384 (frame shrunk to 384 px on its long side, padded square,
stylized, upscaled). Kept only to compare against (bench/stylizers.py, tests/test_stylizers.py);
the engine never imports onnxruntime.
"""
from __future__ import annotations

import numpy as np
import cv2

from flowstyle.fast.magenta import STYLE_SIZE, model_path
from flowstyle.io.styles import NUM_BUILTIN, StyleRef, read_style_image

__all__ = ["OnnxStylizer", "session", "ARBITRARY_SIZE"]

ARBITRARY_SIZE = 384  # the arbitrary-style file is fixed at 384x384


def session(name: str, *, optimize: bool = True):
    """An onnxruntime CPU session on a shipped network, on as many threads as torch uses (a fair race:
    onnxruntime's own default is one thread per core, whatever the process is allowed)."""
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads would slow what runs next
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(model_path(name)), opts, providers=["CPUExecutionProvider"])


class OnnxStylizer:
    """The old path: ``stylizer(rgb) -> rgb``, one style (a builtin or a painting)."""

    def __init__(self, style: StyleRef):
        self.style = style
        self.sessions = {n: session(n) for n in ("multistyle26", "arbitrary_predict", "arbitrary_transform")}
        if style.image is not None:
            self.vector = self.style_vector(read_style_image(style.image))

    def style_vector(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        sq = cv2.resize(rgb[top:top + side, left:left + side], (STYLE_SIZE, STYLE_SIZE), interpolation=cv2.INTER_AREA)
        sess = self.sessions["arbitrary_predict"]
        return sess.run(None, {sess.get_inputs()[0].name: sq[None].astype(np.float32)})[0].reshape(-1)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        if self.style.builtin is not None:
            weights = np.zeros(NUM_BUILTIN, np.float32)
            weights[self.style.builtin] = 1.0
            ph, pw = (-h) % 4, (-w) % 4
            x = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else rgb
            x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
            out = self.sessions["multistyle26"].run(None, {"image": x, "style_weights": weights})[0][0]
            return np.clip(out.transpose(1, 2, 0)[:h, :w], 0, 1)
        scale = ARBITRARY_SIZE / max(h, w)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        small = np.pad(small, ((0, ARBITRARY_SIZE - sh), (0, ARBITRARY_SIZE - sw), (0, 0)), mode="reflect")
        sess = self.sessions["arbitrary_transform"]
        names = [i.name for i in sess.get_inputs()]
        vec = self.vector.reshape(1, 1, 1, -1).astype(np.float32)
        out = sess.run(None, {names[0]: small[None].astype(np.float32), names[1]: vec})[0][0][:sh, :sw]
        return np.clip(cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
