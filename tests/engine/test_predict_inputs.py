"""`cnnviz predict` and `evaluate` on hostile inputs: only PNG/JPEG/BMP/GIF by their first bytes, sane sizes,
and checkpoints whose class names or normalisation would end in NaN probabilities."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

from cnnviz.cli import main
from cnnviz.config import Recipe
from cnnviz.data.prepare import Normalization
from cnnviz.imagefile import read_grayscale, write_grayscale
from cnnviz.models import ModelSpec, build_model, conv, dense, maxpool
from cnnviz.training.checkpoint import Checkpoint, save_checkpoint

SPEC = ModelSpec((conv(2, 5, 2, "same"), maxpool(2), dense(10))).named()


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _save(path, scale: float = 1.0, **changes):
    torch.manual_seed(0)
    state = {k: v * scale if v.is_floating_point() else v for k, v in build_model(SPEC).state_dict().items()}
    fields = dict(spec=SPEC, recipe=Recipe(), normalization=Normalization(),
                  class_names=tuple(str(i) for i in range(10)), dataset="test", model_state=state)
    fields.update(changes)
    return save_checkpoint(path, Checkpoint(**fields))


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("run") / "checkpoint.safetensors")


@pytest.fixture(scope="module")
def digit():
    """A 7 drawn dark on white, 56 x 56."""
    image = np.ones((56, 56))
    image[10:14, 12:44] = 0.0
    for row in range(14, 48):
        col = 44 - (row - 14) * 20 // 34
        image[row, col - 2:col + 2] = 0.0
    return image


def _qt_save(path, pixels, fmt: str) -> None:
    from PySide6.QtGui import QImage

    data = np.ascontiguousarray((pixels * 255).astype(np.uint8))
    image = QImage(data.data, data.shape[1], data.shape[0], data.shape[1], QImage.Format.Format_Grayscale8).copy()
    assert image.save(str(path), fmt)


def _gif(pixels) -> bytes:
    """A grayscale GIF (Qt cannot write one): 9-bit LZW codes, a clear code every 250 pixels."""
    gray = (pixels * 255).astype(np.uint8)
    h, w = gray.shape
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + bytes(i for i in range(256) for _ in "rgb"))
    out += b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x08"
    codes = []
    flat = gray.reshape(-1).tolist()
    for i in range(0, len(flat), 250):
        codes += [256, *flat[i:i + 250]]
    codes.append(257)
    bits = nbits = 0
    data = bytearray()
    for code in codes:
        bits |= code << nbits
        nbits += 9
        while nbits >= 8:
            data.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        data.append(bits)
    for i in range(0, len(data), 255):
        out += bytes([len(data[i:i + 255])]) + data[i:i + 255]
    return bytes(out + b"\x00;")


def _png_header(width: int, height: int) -> bytes:
    """A PNG announcing width x height whose pixel data is 10 bytes (enough for Qt to read the size)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(10))))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "bmp", "gif"])
def test_the_raster_formats_people_use_are_read_whatever_their_name(tmp_path, capsys, run_file, digit, fmt):
    path = tmp_path / "digit.svg"  # the name does not matter: the first bytes do
    if fmt == "gif":
        path.write_bytes(_gif(digit))
    else:
        _qt_save(path, digit, fmt.upper())
    pixels = read_grayscale(path)
    assert pixels.shape == (56, 56) and abs(float(pixels[12, 20]) - 0.0) < 0.1 and float(pixels[0, 0]) > 0.9
    code, out, _ = run(capsys, "predict", run_file, path, "--json")
    assert code == 0 and sum(json.loads(out)["probabilities"]) == pytest.approx(1.0, abs=1e-4)


SVG_USE = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
           '<defs><g id="a0"><rect width="1" height="1"/></g>'
           + "".join(f'<g id="a{i}"><use xlink:href="#a{i - 1}"/><use xlink:href="#a{i - 1}"/></g>' for i in range(1, 40))
           + '</defs><use xlink:href="#a39"/></svg>')


@pytest.mark.parametrize("content, needle", [
    (SVG_USE.encode(), "(it looks like SVG, a drawing format that is not read)"),  # 2 KB, 2^39 rectangles
    (b'<?xml version="1.0"?>\n<svg><text>7</text></svg>', "(it looks like SVG"),
    (b"II*\x00" + bytes(100), "(it looks like TIFF)"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "(it looks like WebP)"),
    (b"", "(the file is empty)"),
    (b"%PDF-1.4 a digit", "not a PNG, JPEG, BMP or GIF image; cnnviz reads only these formats"),
])
def test_other_formats_are_refused_before_qt_sees_them(tmp_path, capsys, run_file, content, needle):
    path = tmp_path / "digit.png"
    path.write_bytes(content)
    code, _, err = run(capsys, "predict", run_file, path)
    assert code == 2 and err.startswith(f"error: {path}: not a PNG, JPEG, BMP or GIF image") and needle in err, err
    assert len(err.strip().splitlines()) == 1


def test_an_svg_with_text_does_not_abort_the_process(tmp_path, run_file):
    # Qt's SVG plugin aborts (SIGABRT) on <text> without a QGuiApplication: in a process of its own, in case.
    path = tmp_path / "seven.png"
    path.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><text x="2" y="20">7</text></svg>')
    proc = subprocess.run([sys.executable, "-m", "cnnviz", "predict", str(run_file), str(path)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "looks like SVG" in proc.stderr, proc.stderr


def test_pixel_dimensions_are_checked_before_decoding(tmp_path, capsys, run_file):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header(100_000, 100_000))  # 40 bytes announcing 10 gigapixels
    code, _, err = run(capsys, "predict", run_file, path)
    assert code == 2 and "the image is 100,000 x 100,000 pixels; cnnviz reads images of at most 10,000 pixels a " \
                          "side and 40,000,000 pixels in all" in err
    path.write_bytes(_png_header(9000, 9000))  # each side allowed, 81 megapixels not
    assert run(capsys, "predict", run_file, path)[0] == 2


def test_a_damaged_image_and_a_huge_file(tmp_path, capsys, run_file):
    path = tmp_path / "cut.png"
    path.write_bytes(_png_header(28, 28))  # 10 bytes of the 812 its rows need
    code, _, err = run(capsys, "predict", run_file, path)
    assert code == 2 and f"{path}: not a readable PNG image" in err
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.write(_png_header(28, 28))
        f.truncate(100 << 20)  # sparse
    code, _, err = run(capsys, "predict", run_file, big)
    assert code == 2 and "is 100.0 MiB, more than cnnviz reads from an image file (at most 64.0 MiB)" in err


def test_a_model_whose_output_overflows_is_a_clear_error(tmp_path, capsys, digit):
    # Finite weights (1e30) that overflow on a real image: NaN probabilities are not printed.
    run_file = _save(tmp_path / "huge-weights.safetensors", scale=1e30)
    write_grayscale(tmp_path / "d.png", digit)
    code, out, err = run(capsys, "predict", run_file, tmp_path / "d.png")
    assert code == 2 and out == "" and "the model's output for this image is not a number" in err


@pytest.mark.parametrize("changes, needle", [
    ({"class_names": ()}, "class names: 0 given, but the model has 10 classes"),
    ({"class_names": ("a", "b")}, "class names: 2 given, but the model has 10 classes"),
])
def test_class_names_must_fit_the_model(tmp_path, capsys, digit, changes, needle):
    run_file = _save(tmp_path / "names.safetensors", **changes)
    write_grayscale(tmp_path / "d.png", digit)
    code, _, err = run(capsys, "predict", run_file, tmp_path / "d.png")
    assert code == 2 and needle in err


def test_a_tiny_normalisation_std_cannot_reach_a_run_file():
    with pytest.raises(Exception, match="normalization std must be at least 1e-06, got 1e-320"):
        Normalization(0.1, 1e-320)


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("kind", ["fifo", "folder without a run", "device"])
def test_a_run_path_that_is_not_a_run_file(tmp_path, capsys, digit, command, kind):
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
        needle = "is a named pipe (FIFO), not a regular file"
    elif kind == "device":
        path, needle = "/dev/zero", "is a device, not a regular file"
    else:
        path, needle = tmp_path, "checkpoint.safetensors: file not found"
    write_grayscale(tmp_path / "d.png", digit)
    code, _, err = run(capsys, command, path, *([tmp_path / "d.png"] if command == "predict" else []))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
