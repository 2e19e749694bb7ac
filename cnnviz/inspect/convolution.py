"""The arithmetic of the convolution playground: classic kernels, sliding a kernel or a pooling window
over an image, and the output-size formula O = (W + 2P - F) / S + 1 written out with real numbers.

Like a CNN layer, "convolution" is cross-correlation (the kernel is not flipped), over a zero-padded image.
"""
from __future__ import annotations

import numpy as np

_G5 = np.array([1, 4, 6, 4, 1], np.float32)
KERNELS: dict[str, np.ndarray] = {
    "Edge detect (Laplacian)": np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float32),
    "Sobel x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32),
    "Sobel y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32),
    "Box blur 3×3": np.full((3, 3), 1 / 9, np.float32),
    "Box blur 5×5": np.full((5, 5), 1 / 25, np.float32),
    "Gaussian blur 3×3": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16,
    "Gaussian blur 5×5": np.outer(_G5, _G5) / 256,
    "Sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32),
    "Emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32),
    "Identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32),
}

def output_size(size: int, padding: int, window: int, stride: int) -> int:
    """``floor((W + 2P - F) / S) + 1``; zero or less when the window does not fit the padded input."""
    return (size + 2 * padding - window) // stride + 1


def size_formula(size: int, padding: int, window: int, stride: int) -> str:
    """The output-size formula written out with the actual numbers."""
    top = size + 2 * padding - window
    out = output_size(size, padding, window, stride)
    text = f"O = (W + 2P - F) / S + 1 = ({size} + 2*{padding} - {window}) / {stride} + 1 = {out}"
    if top >= 0 and top % stride:
        text += f"   ({top} / {stride} = {top / stride:g} is rounded down)"
    return text


def apply_operation(image: np.ndarray, operation: str, kernel: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Slide ``kernel`` (convolution) or a window of its shape (pooling) over the zero-padded image.

    Returns float32 (O_h, O_w); an empty (0, 0) array when the window is larger than the padded input.
    """
    padded = np.pad(np.asarray(image, np.float32), padding)
    kh, kw = kernel.shape
    if padded.shape[0] < kh or padded.shape[1] < kw:
        return np.zeros((0, 0), np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw))[::stride, ::stride]
    if operation == "Convolution":
        return np.einsum("ijkl,kl->ij", windows, kernel.astype(np.float32)).astype(np.float32)
    if operation == "Max pooling":
        return windows.max(axis=(2, 3)).astype(np.float32)
    return windows.mean(axis=(2, 3)).astype(np.float32)
