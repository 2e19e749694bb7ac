"""Reading an image file as grayscale pixels (for `cnnviz predict`), through Qt's image codecs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnviz.errors import DataError


def read_grayscale(path: str | Path) -> np.ndarray:
    """The image at `path` as a float32 (H, W) array in [0, 1]; transparent pixels count as white."""
    from PySide6.QtGui import QColor, QImage, QPainter

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    image = QImage(str(path))
    if image.isNull():
        raise DataError(f"{path}: not a readable image (PNG, JPEG, BMP, ...)")
    flat = QImage(image.size(), QImage.Format.Format_RGB32)
    flat.fill(QColor("white"))
    painter = QPainter(flat)
    painter.drawImage(0, 0, image)
    painter.end()
    gray = flat.convertToFormat(QImage.Format.Format_Grayscale8)
    width, height, stride = gray.width(), gray.height(), gray.bytesPerLine()
    buffer = np.frombuffer(gray.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
    return buffer[:, :width].astype(np.float32) / 255.0


def write_grayscale(path: str | Path, pixels: np.ndarray) -> None:
    """Save a (H, W) array in [0, 1] as an 8-bit grayscale PNG."""
    from PySide6.QtGui import QImage

    data = np.ascontiguousarray(np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8))
    height, width = data.shape
    image = QImage(data.data, width, height, width, QImage.Format.Format_Grayscale8).copy()
    if not image.save(str(path)):
        raise DataError(f"{path}: could not write the image")
