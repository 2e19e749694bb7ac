"""Reading an image file as grayscale pixels (for `cnnviz predict`), through Qt's image codecs.

Only the raster formats people use for a picture of a digit are read: PNG, JPEG, BMP and GIF (its
first frame). The format is decided from the file's first bytes, never from its name, and Qt is then
told to use that one decoder: Qt's other plugins (SVG above all, which can abort the process or loop
for a long time on a crafted file) never see the data. The file's size and the image's pixel
dimensions are checked before it is decoded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnviz import limits
from cnnviz.errors import DataError
from cnnviz.files import read_regular

# first bytes -> the Qt decoder for them
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", b"png"),
    (b"\xff\xd8\xff", b"jpeg"),
    (b"GIF87a", b"gif"),
    (b"GIF89a", b"gif"),
    (b"BM", b"bmp"),
)
FORMATS = "PNG, JPEG, BMP or GIF"


def image_format(data: bytes) -> bytes | None:
    """The Qt format name (``b"png"``, ``b"jpeg"``, ``b"gif"``, ``b"bmp"``) of ``data``'s first bytes."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def read_grayscale(path: str | Path) -> np.ndarray:
    """The image at `path` as a float32 (H, W) array in [0, 1]; transparent pixels count as white.

    Raises
    ------
    DataError
        Not a regular file, larger than :data:`cnnviz.limits.MAX_IMAGE_BYTES`, not PNG/JPEG/BMP/GIF,
        more than :data:`cnnviz.limits.MAX_IMAGE_SIDE` pixels a side (or
        :data:`cnnviz.limits.MAX_IMAGE_PIXELS` in all), or undecodable.
    """
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QColor, QImage, QImageReader, QPainter

    path = Path(path)
    data = read_regular(path, limits.MAX_IMAGE_BYTES, DataError, "image file")
    fmt = image_format(data)
    if fmt is None:
        raise DataError(f"{path}: not a {FORMATS} image{_looks_like(data)}; cnnviz reads only these formats")
    kind = fmt.decode().upper()
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer, fmt)
    reader.setDecideFormatFromContent(False)  # the decoder chosen above, and no other
    size = reader.size()
    if not size.isValid() or size.width() <= 0 or size.height() <= 0:
        raise DataError(f"{path}: not a readable {kind} image (its header is damaged)")
    width, height = size.width(), size.height()
    if max(width, height) > limits.MAX_IMAGE_SIDE or width * height > limits.MAX_IMAGE_PIXELS:
        raise DataError(f"{path}: the image is {width:,} x {height:,} pixels; cnnviz reads images of at most "
                        f"{limits.MAX_IMAGE_SIDE:,} pixels a side and {limits.MAX_IMAGE_PIXELS:,} pixels in all")
    image = reader.read()
    if image.isNull():
        raise DataError(f"{path}: not a readable {kind} image ({reader.errorString()})")
    flat = QImage(image.size(), QImage.Format.Format_RGB32)
    flat.fill(QColor("white"))
    painter = QPainter(flat)
    painter.drawImage(0, 0, image)
    painter.end()
    gray = flat.convertToFormat(QImage.Format.Format_Grayscale8)
    width, height, stride = gray.width(), gray.height(), gray.bytesPerLine()
    pixels = np.frombuffer(gray.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
    return pixels[:, :width].astype(np.float32) / 255.0


def _looks_like(data: bytes) -> str:
    """A hint for a format we refuse, e.g. `` (it looks like SVG)``."""
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in head:
        return " (it looks like SVG, a drawing format that is not read)"
    if head.startswith((b"ii*\x00", b"mm\x00*")):
        return " (it looks like TIFF)"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return " (it looks like WebP)"
    if not data:
        return " (the file is empty)"
    return ""


def write_grayscale(path: str | Path, pixels: np.ndarray) -> None:
    """Save a (H, W) array in [0, 1] as an 8-bit grayscale PNG."""
    from PySide6.QtGui import QImage

    data = np.ascontiguousarray(np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8))
    height, width = data.shape
    image = QImage(data.data, width, height, width, QImage.Format.Format_Grayscale8).copy()
    if not image.save(str(path)):
        raise DataError(f"{path}: could not write the image")
