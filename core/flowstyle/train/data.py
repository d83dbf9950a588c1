"""The training data of ``flowstyle train`` without a video dataset (Ruder et al. 2018's mix):

- stills (``--images``, and the first frame of every real pair) moved by known motion into pairs
  with exact flow and masks (:mod:`~flowstyle.train.pairs`), some with a pasted moving patch;
- real frame pairs (``--pairs``: consecutive images of one folder) with the engine's flow (DIS)
  both ways and its consistency mask (DESIGN 4.2).

Paths containing a ``--hold-out`` text are skipped, so benchmark clips stay out of training.
Everything is read and the flows computed once, at the start; each step then crops a batch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..base.errors import FlowstyleError
from ..base.tensors import to_tensor
from ..io.images import read_image
from ..motion.flow import flow_backend
from ..motion.masks import consistency_mask
from .pairs import Pair, crop, inside_mask, known_motion, margin_for, stack_pairs

__all__ = ["TrainingData", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _images_in(path: Path, hold_out: Sequence[str]) -> list[Path]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [p for p in files if not any(h in str(p) for h in hold_out)]


def _resized(rgb: np.ndarray, short: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = short / min(h, w)
    size = (max(short, round(w * s)), max(short, round(h * s)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def _read(path: Path, short: int) -> np.ndarray:
    return _resized(read_image(path, "training image")[0], short)


class TrainingData:
    """Stills and real pairs at the training size; :meth:`batch` draws one step's pairs.

    Args:
        images: folders (searched recursively) or files of stills.
        pairs: folders searched for real pairs: two consecutive images of the same folder (in natural
            order), from folders of two or more images.
        hold_out: skip every path that contains one of these texts.
        size: crop side S in pixels.
        max_shift: the largest known-motion shift; stills are read with the border it needs
            (:func:`~flowstyle.train.pairs.margin_for`) around a crop.
    """

    def __init__(self, images: Sequence[str], pairs: Sequence[str], hold_out: Sequence[str], size: int,
                 max_shift: float = 6.0):
        self.size, self.max_shift = size, max_shift
        short = size + 2 * margin_for(size, max_shift)
        for p in (*images, *pairs):
            if not Path(p).exists():
                raise FlowstyleError(f"training data '{p}' does not exist: give folders of images for --images and --pairs")
        self.stills = [to_tensor(_read(p, short)) for d in images for p in _images_in(Path(d), hold_out)]
        self.real: list[Pair] = []
        self.pair_names: list[str] = []
        dis = flow_backend("dis")
        for d in pairs:
            by_folder: dict[Path, list[Path]] = {}
            for p in _images_in(Path(d), hold_out):
                by_folder.setdefault(p.parent, []).append(p)
            for files in by_folder.values():
                for a_path, b_path in zip(files, files[1:]):
                    a, b = _read(a_path, short), _read(b_path, short)
                    if a.shape != b.shape:
                        continue
                    fw, bw = to_tensor(dis(a, b)), to_tensor(dis(b, a))
                    self.real.append(Pair(to_tensor(a), to_tensor(b), bw, consistency_mask(fw, bw)))
                    self.pair_names.append(f"{a_path.parent}: {a_path.name} -> {b_path.name}")
                    self.stills.append(to_tensor(a))
        if not self.stills:
            raise FlowstyleError(f"no training images found in {', '.join([*images, *pairs])} (after --hold-out): "
                                 f"give folders with {', '.join(IMAGE_SUFFIXES)} files")

    def _still_pair(self, rng: np.random.Generator, *, patch_share: float) -> Pair:
        s = self.size
        image = self.stills[int(rng.integers(len(self.stills)))]
        full = s + 2 * margin_for(s, self.max_shift)
        y, x = crop(image, full, rng)
        image = image[..., y:y + full, x:x + full]
        if rng.random() < 0.5:
            image = image.flip(-1)
        patch = None
        if rng.random() < patch_share:
            other = self.stills[int(rng.integers(len(self.stills)))]
            p = int(rng.integers(s // 6, s // 3 + 1))
            py, px = crop(other, p, rng)
            patch = other[..., py:py + p, px:px + p]
        return known_motion(image, s, rng, max_shift=self.max_shift, patch=patch, gain=float(rng.uniform(0.9, 1.1)))

    def _real_pair(self, rng: np.random.Generator) -> Pair:
        s = self.size
        pair = self.real[int(rng.integers(len(self.real)))]
        y, x = crop(pair.first, s, rng)
        cut = Pair(*(t[..., y:y + s, x:x + s] for t in (pair.first, pair.second, pair.flow_bw, pair.mask)))
        cut.mask = cut.mask * inside_mask(cut.flow_bw)  # flow that leaves the crop cannot be traced in it
        return cut

    def batch(self, rng: np.random.Generator, count: int, *, real_share: float, patch_share: float) -> Pair:
        """``count`` pairs: real ones with probability ``real_share`` (where there are any), else known motion."""
        pairs = [self._real_pair(rng) if self.real and rng.random() < real_share
                 else self._still_pair(rng, patch_share=patch_share) for _ in range(count)]
        return stack_pairs(pairs)

    def describe(self) -> str:
        return f"{len(self.stills)} stills, {len(self.real)} real pairs"


