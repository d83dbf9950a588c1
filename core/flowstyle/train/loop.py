"""``flowstyle train``'s loop: fine-tune a shipped Magenta transformer into a video network, one file.

Reads top to bottom like fast_neural_style's ``train()``: device, data, teacher (the shipped network,
frozen) and student (a copy of it, all weights trained), Adam, then per step a batch of pairs ->
:func:`~flowstyle.train.losses.video_losses` -> weighted sum -> step. The temporal terms rise
linearly over ``--ramp`` steps, so training starts as pure distillation (the student *is* the
teacher at step 0) and the network is pulled towards stability gradually.

One network per style: a built-in style trains the 26-style network with that style's weights fixed
(the other 25 rows of its norms get no gradient and are meaningless afterwards); a painting trains
the arbitrary transformer with the painting's style vector fixed (the predictor is not trained).

Deterministic: step k draws its pairs from ``numpy.random.default_rng([seed, k])``, so a resumed run
sees the same batches as an uninterrupted one. A checkpoint ``OUT.ckpt`` (network, Adam state,
step) is written atomically every ``--checkpoint-every`` steps and removed once OUT is written.
"""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..base.device import pick_device
from ..base.errors import Cancelled, FlowstyleError
from ..fast.magenta import MagentaStylizer
from ..fast.video_net import build_network, load_video_network, save_video_network, shipped_network
from ..io.images import atomic_write_bytes
from ..io.styles import NUM_BUILTIN, StyleRef, parse_style, read_style_image
from ..quality.vgg import vgg19_features
from .config import TrainSettings
from .data import TrainingData
from .losses import video_losses
from .perceptual import Perceptual
from .predictor_style import PredictorGram

__all__ = ["train", "style_condition", "checkpoint_path", "TERMS"]

TERMS = ("distill", "sharpness", "feature", "temporal", "feature_temporal", "luminance", "content", "style",
         "predictor_style")


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".ckpt")


def style_condition(ref: StyleRef) -> tuple[str, np.ndarray]:
    """(base network, condition): the 26 one-hot style weights, or the painting's (100,) style vector."""
    if ref.builtin is not None:
        return "multistyle26", np.eye(NUM_BUILTIN, dtype=np.float32)[ref.builtin]
    return "arbitrary_transform", MagentaStylizer().style_vector(read_style_image(ref.image))


def _weights(s: TrainSettings, step: int) -> dict[str, float]:
    ramp = min(1.0, (step + 1) / s.ramp) if s.ramp else 1.0
    perceptual = {"content": s.content_weight, "style": s.style_weight} if s.vgg_weights else {}
    return {"distill": s.distill_weight, "sharpness": s.sharpness_weight, "feature": s.feature_weight,
            "predictor_style": s.predictor_style_weight, "temporal": ramp * s.temporal_weight,
            "feature_temporal": ramp * s.feature_temporal_weight, "luminance": ramp * s.luminance_weight} | perceptual


def _perceptual(s: TrainSettings, ref: StyleRef, device: str) -> Optional[Perceptual]:
    """The VGG-19 terms when ``--vgg-weights`` is given ('torchvision': torch.hub's cache or download)."""
    if not s.vgg_weights:
        return None
    vgg = vgg19_features(weights=None if s.vgg_weights == "torchvision" else s.vgg_weights).to(device)
    return Perceptual(vgg, read_style_image(ref.image) if ref.image else None)


def _save_checkpoint(path: Path, header: dict, student: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    buf = io.BytesIO()
    torch.save({"header": header, "state_dict": student.state_dict(), "optimizer": opt.state_dict()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _resume(path: Path, header: dict, student: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float]:
    """Load a checkpoint made with the same settings: (step, seconds so far)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        saved = data["header"]
    except Exception as exc:
        raise FlowstyleError(f"--resume: cannot read checkpoint '{path}' ({type(exc).__name__}); delete it to start "
                             "afresh") from None
    if saved.get("training") != header["training"] or saved.get("condition") != header["condition"]:
        raise FlowstyleError(f"--resume: checkpoint '{path}' was made with other training settings; use the same "
                             "flags, or delete it to start afresh")
    student.load_state_dict(data["state_dict"])
    opt.load_state_dict(data["optimizer"])
    return int(saved["steps"]), float(saved.get("seconds", 0.0))


def _start(s: TrainSettings, base: str) -> torch.nn.Module:
    """The student before step 1: the shipped network (widened for ``recurrent``), or the ``--init`` file's."""
    if not s.init:
        return build_network(base, s.variant)
    header, net = load_video_network(s.init)
    if (header["variant"], header["base"], header["style"]) != (s.variant, base, s.style):
        raise FlowstyleError(f"--init '{s.init}' is a {header['variant']} network for {header['style']}: train on "
                             f"with --variant {header['variant']} --style {header['style']}, or drop --init")
    return net


def train(settings: TrainSettings, out: Path | str, *, resume: bool = False, progress: bool = True,
          on_step: Optional[Callable[[int, dict], None]] = None, cancel: Optional[Callable[[], bool]] = None) -> dict:
    """Train a video network and write it to ``out``; returns the file's header.

    Args:
        resume: continue from ``OUT.ckpt`` when it exists (made with the same settings).
        progress: a tqdm bar on stderr.
        on_step: called after each step with (step, {term: unweighted value}).
        cancel: checked before each step; when it says stop, the checkpoint is written (``--resume``
            continues from there) and :class:`~flowstyle.base.errors.Cancelled` is raised.
    """
    s = settings.resolved()
    out = Path(out)
    if not out.parent.is_dir():
        raise FlowstyleError(f"--out '{out}': folder '{out.parent}' does not exist; create it or write elsewhere")
    device = pick_device(s.device)
    ref = parse_style(s.style)
    base, condition = style_condition(ref)
    header = {"variant": s.variant, "base": base, "style": s.style, "condition": [float(v) for v in condition],
              "training": s.header(), "steps": 0, "seconds": 0.0}
    data = TrainingData(s.images, s.pairs, s.hold_out, s.size, s.max_shift)
    header["data"] = data.describe()
    torch.manual_seed(s.seed)
    teacher = shipped_network(base).to(device).eval()
    student = _start(s, base).to(device).train()
    student.requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=s.lr)
    perceptual = _perceptual(s, ref, device)
    predictor_gram = PredictorGram().to(device) if s.predictor_style_weight else None
    cond = torch.from_numpy(condition).to(device)  # (26,) or (100,): the networks reshape it
    ckpt = checkpoint_path(out)
    step, seconds = _resume(ckpt, header, student, opt) if resume and ckpt.is_file() else (0, 0.0)
    from tqdm import tqdm

    bar = tqdm(total=s.steps, initial=step, desc=f"train {s.variant}", unit="step", file=sys.stderr,
               disable=not progress)
    while step < s.steps:
        if cancel is not None and cancel():
            _save_checkpoint(ckpt, header | {"steps": step, "seconds": seconds}, student, opt)
            bar.close()
            raise Cancelled()
        t0 = time.perf_counter()
        rng = np.random.default_rng([s.seed, step])
        pair = data.batch(rng, s.batch, real_share=s.real_share, patch_share=s.patch_share).to(device)
        terms = video_losses(student, teacher, pair, cond, recurrent=s.variant == "recurrent", perceptual=perceptual,
                             predictor_gram=predictor_gram)
        loss = sum(w * terms[k] for k, w in _weights(s, step).items() if w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seconds += time.perf_counter() - t0
        values = {k: float(v.detach()) for k, v in terms.items()}
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss.detach()):.4g}", temporal=f"{values['temporal']:.3g}", refresh=False)
        if on_step is not None:
            on_step(step, values)
        if step % s.checkpoint_every == 0 and step < s.steps:
            _save_checkpoint(ckpt, header | {"steps": step, "seconds": seconds}, student, opt)
    bar.close()
    header |= {"steps": step, "seconds": round(seconds, 1)}
    save_video_network(out, student, header)
    ckpt.unlink(missing_ok=True)
    return header
