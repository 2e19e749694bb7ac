"""Drawing helpers for the exported frames: fonts, text, integer upscaling and packing panels into a frame.

Pictures are numpy (H, W, 3) uint8 RGB arrays; Pillow draws the text and lines. A layout is computed once per
animation (the shapes of the layers do not change from frame to frame) and filled in for every frame, so the
panels keep their place and the animation does not jump.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (110, 110, 110)
ACCENT = (214, 120, 0)  # the window's timeline marker in the curves: "the step shown"
MAX_ZOOM = 24  # as the window's filter view: larger blocks add nothing


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` pixels (a fixed bitmap font where Pillow has no FreeType)."""
    return ImageFont.load_default(max(6, int(size)))


@lru_cache(maxsize=4096)
def text_size(text: str, size: int) -> tuple[int, int]:
    """(width, height) of `text` drawn at `size` pixels."""
    left, top, right, bottom = font(size).getbbox(text or " ")
    return int(math.ceil(right - min(left, 0))), int(math.ceil(max(bottom, size)))


def fit_text(text: str, size: int, width: int, min_size: int = 8) -> tuple[str, int]:
    """`text` at the largest size <= `size` that fits `width` pixels (cut with an ellipsis below `min_size`)."""
    while size > min_size and text_size(text, size)[0] > width:
        size -= 1
    if text_size(text, size)[0] <= width:
        return text, size
    body = text
    while body and text_size(body + "...", size)[0] > width:
        body = body[:-1]
    return body.rstrip() + "...", size


def draw_text(image: Image.Image, xy: tuple[int, int], text: str, size: int, fill=INK) -> None:
    """`text` onto `image` with its top left at `xy`, in `fill` (anti-aliased over what is there)."""
    stamp, (dx, dy) = _stamp(text, size)
    if stamp is None:
        return
    x, y = int(round(xy[0])) + dx, int(round(xy[1])) + dy
    image.paste(fill, (x, y, x + stamp.width, y + stamp.height), stamp)


@lru_cache(maxsize=2048)
def _stamp(text: str, size: int) -> tuple[Image.Image | None, tuple[int, int]]:
    """The coverage mask of `text` (rendered once, then pasted: titles repeat in every frame)."""
    f = font(size)
    left, top, right, bottom = f.getbbox(text)
    if right <= left or bottom <= top:
        return None, (0, 0)
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=f, fill=255)
    return mask, (left, top)


def upscale(rgb: np.ndarray, zoom: float) -> np.ndarray:
    """`rgb` enlarged `zoom` times: whole pixel blocks for an integer zoom (crisp), area-averaged below 1."""
    if zoom >= 1:
        z = int(zoom)
        return rgb.repeat(z, axis=0).repeat(z, axis=1) if z > 1 else rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * zoom)), max(1, round(h * zoom)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))


@dataclass(frozen=True)
class Placement:
    """Where one panel goes: its title at (x, y), its picture below it at `zoom`."""

    x: int
    y: int
    zoom: float
    width: int  # of the picture, after zoom
    height: int


def _zoomed(size: tuple[int, int], scale: float) -> tuple[float, int, int]:
    h, w = size
    zoom = float(min(MAX_ZOOM, math.floor(scale))) if scale >= 1 else scale
    return zoom, max(1, round(w * zoom)), max(1, round(h * zoom))


def pack(sizes: list[tuple[int, int]], titles: list[int], area: tuple[int, int, int, int], title_height: int,
         gap: int = 10) -> list[Placement]:
    """Lay pictures of natural `sizes` ((h, w) each) out in rows, in order, in `area` (x, y, width, height).

    One scale factor f is searched for (the largest that fits); a picture of natural area A is shown at
    f * (A_max / A) ** 0.25, rounded down to a whole zoom when it is at least 1: small layers grow more than
    large ones (a 4-filter layer would otherwise be a speck next to a 64-filter one) but stay smaller, so a
    frame still shows which layers are big. `titles` are the widths of the titles drawn above each picture.
    """
    x0, y0, width, height = area
    largest = max(h * w for h, w in sizes)
    boost = [(largest / max(1, h * w)) ** 0.25 for h, w in sizes]

    def rows_for(f: float) -> list[list[tuple[int, float, int, int]]] | None:
        rows: list[list[tuple[int, float, int, int]]] = [[]]
        used, total = 0, 0
        for i, size in enumerate(sizes):
            zoom, w, h = _zoomed(size, f * boost[i])
            box = max(w, titles[i])
            if box > width:
                return None
            if rows[-1] and used + gap + box > width:
                total += max(title_height + b[3] for b in rows[-1]) + gap
                rows.append([])
                used = 0
            used += (gap if rows[-1] else 0) + box
            rows[-1].append((i, zoom, w, h))
        total += max(title_height + b[3] for b in rows[-1])
        return rows if total <= height else None

    lo, hi = 0.02, 64.0
    if rows_for(lo) is None:
        lo = 0.005
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        if rows_for(mid) is not None:
            lo = mid
        else:
            hi = mid
    rows = rows_for(lo) or []
    placements: dict[int, Placement] = {}
    heights = [max(title_height + b[3] for b in row) for row in rows]
    spare = height - sum(heights) - gap * (len(rows) - 1)
    y = y0 + max(0, spare // 2)
    for row, row_height in zip(rows, heights):
        widths = [max(w, titles[i]) for i, _, w, _ in row]
        x = x0 + max(0, (width - sum(widths) - gap * (len(row) - 1)) // 2)
        for (i, zoom, w, h), box in zip(row, widths):
            placements[i] = Placement(x, y, zoom, w, h)
            x += box + gap
        y += row_height + gap
    return [placements[i] for i in range(len(sizes))]
