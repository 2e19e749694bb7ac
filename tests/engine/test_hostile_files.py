"""Files that are not what they claim: FIFOs, devices, sparse giants, gzip bombs, absurd IDX headers.

Each is one clear CnnvizError line, quickly, without reading the whole thing; the tests make the files
in tmp_path (a FIFO, a 3 GiB sparse file that takes no disk, a gzip of zeros streamed in chunks).
"""
from __future__ import annotations

import gzip
import os
import signal
import zlib
from pathlib import Path

import numpy as np
import pytest

from cnnviz import limits
from cnnviz.data import idx
from cnnviz.data.idx import read_idx, write_idx
from cnnviz.data.sources import find_idx_files, load_folder
from cnnviz.errors import CheckpointError, CnnvizError, DataError
from cnnviz.files import read_regular
from cnnviz.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")


@pytest.fixture(autouse=True)
def no_hang():
    """A regression here would block forever on a FIFO: fail after 20 s instead."""
    def fail(*_):
        raise TimeoutError("blocked reading a file (a FIFO or an endless device?)")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def _special_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Paths that are not regular files, and what the message must say about each."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link-to-pipe"
    link.symlink_to(fifo)
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(3 << 30)  # 3 GiB that the disk does not hold
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {
        "fifo": (fifo, "is a named pipe (FIFO), not a regular file"),
        "symlink to a fifo": (link, "is a named pipe (FIFO), not a regular file"),
        "/dev/zero": (Path("/dev/zero"), "is a device, not a regular file"),
        "3 GiB sparse file": (sparse, "is 3.0 GiB, more than cnnviz reads from"),
        "folder": (folder, "is a folder"),
        "missing": (tmp_path / "nope", "file not found"),
    }


@pytest.mark.parametrize("case", ["fifo", "symlink to a fifo", "/dev/zero", "3 GiB sparse file", "folder", "missing"])
def test_only_regular_files_of_a_sane_size_are_read(tmp_path, case):
    path, needle = _special_files(tmp_path)[case]
    with pytest.raises(DataError, match=r"^" + str(path).replace("/", "/") + ": ") as info:
        read_idx(path)
    assert needle in str(info.value)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path if case != "folder" else path / "checkpoint.safetensors")
    assert needle in str(info.value) or (case == "folder" and "file not found" in str(info.value))


def test_a_fifo_is_refused_without_blocking_even_if_swapped_in_after_the_check(tmp_path, monkeypatch):
    # The path is a regular file when stat'ed and a FIFO when opened (a race): O_NONBLOCK keeps the open
    # from blocking and the fstat of the open descriptor refuses it.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    regular = os.stat(__file__)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: regular if Path(p) == fifo else real_stat(p, *a, **k))
    with pytest.raises(DataError, match="named pipe"):
        read_regular(fifo, 1 << 20, DataError)


def test_a_file_that_grows_past_the_limit_while_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "growing"
    path.write_bytes(b"x" * 100)
    with pytest.raises(DataError, match="more than cnnviz reads"):
        read_regular(path, 99, DataError)
    assert read_regular(path, 100, DataError) == b"x" * 100


def test_a_nul_byte_in_a_path(tmp_path):
    with pytest.raises(DataError, match="not a usable file name"):
        read_idx(str(tmp_path / "a\0b"))
    with pytest.raises(CheckpointError, match="not a usable file name"):
        load_checkpoint(str(tmp_path / "a\0b"))


def test_a_folder_path_that_is_a_fifo_or_device(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(DataError, match="is a device, pipe or socket, not a folder of IDX files"):
            find_idx_files(path)


def test_an_idx_file_in_a_folder_that_is_a_fifo_is_ignored_not_opened(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    os.mkfifo(tmp_path / "train-labels-idx1-ubyte")
    with pytest.raises(DataError, match="missing 3 of the 4 IDX files"):
        find_idx_files(tmp_path)


def _gzip_stream(path: Path, head: bytes, zeros: int, chunk: int = 1 << 20) -> None:
    """Write gzip(head + `zeros` zero bytes), compressing in chunks (fast, little memory)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(chunk)
    with open(path, "wb") as f:
        f.write(comp.compress(head))
        for _ in range(zeros // chunk):
            f.write(comp.compress(block))
        f.write(comp.compress(bytes(zeros % chunk)))
        f.write(comp.flush())


def test_a_gzip_bomb_is_refused_as_soon_as_it_passes_the_declared_size(tmp_path):
    # A header that declares 10 bytes, then 64 MiB of zeros (a 64 KB file). The file is cut short: had
    # the reader decompressed everything it would report a truncated gzip; it stops just past the
    # declared 10 bytes and reports the trailing data instead.
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    _gzip_stream(path, _header(0x08, (10,)) + bytes(10), 64 << 20)
    data = path.read_bytes()
    assert len(data) < 1 << 20
    path.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(DataError, match=r"trailing bytes: header says 10 \(10 bytes\) but the file holds more than"):
        read_idx(path)


def test_a_gzip_declaring_more_than_the_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_stream(path, _header(0x08, (60000, 28, 28)), 60000 * 28 * 28)  # full MNIST's size, all zeros
    assert read_idx(path).shape == (60000, 28, 28)
    monkeypatch.setattr(limits, "MAX_IDX_BYTES", 1 << 20)
    with pytest.raises(DataError, match=r"header says 60000x28x28 items of 1 bytes \(44\.9 MiB\), more than cnnviz "
                                        r"reads \(at most 1\.0 MiB\)"):
        read_idx(path)


def test_a_corrupt_deflate_stream_that_decodes_into_a_nonsense_header_is_called_a_corrupt_gzip(tmp_path):
    # Garbage decodes into absurd dimensions before zlib notices; a bounded look further finds the damage.
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.random.default_rng(0).integers(0, 256, (120, 28, 28), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[20:60] = b"\xff" * 40
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"^train-images-idx3-ubyte\.gz: corrupt gzip file"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_dimension_products_do_not_wrap_around(tmp_path, compress):
    # 2^31 x 2^31 x 4 int32 items wrap to 0 bytes in int64 numpy arithmetic; here it is 2^66 bytes.
    content = _header(0x0C, (2**31, 2**31, 4))
    assert int(np.prod(np.array([2**31, 2**31, 4, 4], dtype=np.int64))) == 0  # what used to be computed
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(DataError, match=r"2147483648x2147483648x4 items of 4 bytes \(64\.0 EiB\), more than cnnviz reads"):
        read_idx(path)


def test_more_than_four_dimensions_is_an_error(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(_header(0x08, (1, 1, 1, 1, 1)) + b"\x00")
    with pytest.raises(DataError, match="the data has 5 dimensions; cnnviz reads at most 4"):
        read_idx(path)
    write_idx(path, np.zeros((1, 2, 3, 4), np.uint8))  # four is fine
    assert read_idx(path).shape == (1, 2, 3, 4)


def test_a_label_implying_two_billion_classes_is_an_error(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        labels = (np.arange(n) % 3).astype(np.int32)
        if split == "t10k":
            labels[4] = 2**31 - 1
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: label 2,147,483,647 means 2,147,483,648 classes; "
                                        r"cnnviz handles at most 1,000 classes"):
        load_folder(tmp_path)


# Reads that are not of a path the user gave: the app's own files.
_OWN_FILES = {
    ("cnnviz/data/download.py", "_digest"),  # hashes the download it has just written into its cache
    ("cnnviz/training/rundir.py", "prepare"),  # writes, then deletes, its own probe file (no read)
}


def test_every_reader_of_a_user_path_goes_through_the_checked_open():
    """No module but cnnviz/files.py opens a path for reading (read_bytes/read_text, open() without a
    write mode, QImage/QImageReader of a path, np.load/np.fromfile); found in the syntax tree."""
    import ast

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for source in sorted((root / "cnnviz").rglob("*.py")):
        rel = source.relative_to(root).as_posix()
        if rel == "cnnviz/files.py":
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for function in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
            name = getattr(function, "name", "")
            body = function.body if name else [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
            for node in (n for stmt in body for n in ast.walk(stmt)):
                if isinstance(node, ast.Call) and _reads_a_path(node) and (rel, name) not in _OWN_FILES:
                    offenders.append(f"{rel}:{node.lineno} in {name or 'module'}: {ast.unparse(node)[:80]}")
    assert sorted(set(offenders)) == [], "\n".join(sorted(set(offenders)))


def _reads_a_path(call) -> bool:
    import ast

    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in ("read_bytes", "read_text", "fromfile"):
        return True
    if isinstance(func, ast.Attribute) and func.attr == "load" and isinstance(func.value, ast.Name) \
            and func.value.id in ("np", "numpy", "torch", "json"):
        return True
    if isinstance(func, ast.Name) and func.id == "open":
        modes = [a for a in call.args[1:2]] + [k.value for k in call.keywords if k.arg == "mode"]
        mode = modes[0].value if modes and isinstance(modes[0], ast.Constant) else "r"
        return not any(c in str(mode) for c in "wax+")
    if isinstance(func, ast.Name) and func.id in ("QImage", "QImageReader") and call.args:
        first = call.args[0]
        return isinstance(first, (ast.Constant, ast.JoinedStr)) or (
            isinstance(first, ast.Call) and isinstance(first.func, ast.Name) and first.func.id == "str")
    return False
