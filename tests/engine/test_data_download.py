"""Downloads against a local HTTP server on 127.0.0.1: never the network."""
from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cnnviz.data.catalog import DATASETS, STANDARD_FILES, DatasetInfo
from cnnviz.data.download import DownloadCancelled, default_cache_dir, fetch_dataset
from cnnviz.data.idx import write_idx
from cnnviz.data.sources import load_folder
from cnnviz.errors import DownloadError


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}  # file name -> "ok" | "cut" | "slow" | "redirect:<url>"
        self.requests: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/data/"

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # a client that hangs up (cancel) is expected here


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's API
        name = self.path.rsplit("/", 1)[-1]
        self.server.requests.append(name)
        if not self.path.startswith("/data/"):
            self.send_error(404)
            return
        mode = self.server.modes.get(name, "ok")
        if mode.startswith("redirect:"):
            self.send_response(302)
            self.send_header("Location", mode.removeprefix("redirect:"))
            self.end_headers()
            return
        body = self.server.files.get(name)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "cut":
            self.wfile.write(body[: len(body) // 2])  # then the connection closes
        elif mode == "slow":
            for start in range(0, len(body), 4096):
                self.wfile.write(body[start:start + 4096])
                self.wfile.flush()
                time.sleep(0.01)
        else:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _dataset_files(tmp_path: Path, n_train: int = 40) -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "test_labels": np.arange(10, dtype=np.uint8),
    }
    src = tmp_path / "src"
    src.mkdir()
    out = {}
    for role, name in STANDARD_FILES.items():
        write_idx(src / name, arrays[role])
        out[name] = (src / name).read_bytes()
    return out


def _info(files: dict[str, bytes], mirrors: tuple[str, ...]) -> DatasetInfo:
    return DatasetInfo(
        key="tiny", title="Tiny", class_names=tuple(str(i) for i in range(10)),
        files=dict(STANDARD_FILES),
        sha256={n: hashlib.sha256(b).hexdigest() for n, b in files.items()},
        sizes={n: len(b) for n, b in files.items()},
        mirrors=mirrors,
    )


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more


@pytest.fixture()
def served(server: _Server, tmp_path: Path) -> tuple[_Server, DatasetInfo, Path]:
    server.files = _dataset_files(tmp_path)
    return server, _info(server.files, (server.base,)), tmp_path / "cache"


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_download_success_with_progress(served) -> None:
    server, info, cache = served
    calls: list[tuple[int, int | None, str]] = []
    folder = fetch_dataset(info, cache_dir=cache, progress=lambda d, t, m: calls.append((d, t, m)))
    assert folder == cache / "tiny"
    assert _listing(folder) == set(STANDARD_FILES.values())  # no temporary files left behind
    for name, body in server.files.items():
        assert (folder / name).read_bytes() == body
    assert sorted(server.requests) == sorted(STANDARD_FILES.values())
    total = sum(len(b) for b in server.files.values())
    assert calls and calls[-1][0] == calls[-1][1] == total
    done = [c[0] for c in calls]
    assert done == sorted(done) and all(c[1] == total for c in calls)
    assert any("train-images-idx3-ubyte.gz" in c[2] for c in calls)
    raw = load_folder(folder, name=info.title, class_names=info.class_names)
    assert raw.train_images.shape == (40, 28, 28)


def test_cached_files_are_not_downloaded_again(served) -> None:
    server, info, cache = served
    fetch_dataset(info, cache_dir=cache)
    server.requests.clear()
    calls = []
    fetch_dataset(info, cache_dir=cache, progress=lambda d, t, m: calls.append((d, t, m)))
    assert server.requests == []
    assert calls[-1][0] == calls[-1][1]


def test_only_missing_or_outdated_files_are_fetched(served) -> None:
    server, info, cache = served
    folder = fetch_dataset(info, cache_dir=cache)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"an old, different file")
    server.requests.clear()
    fetch_dataset(info, cache_dir=cache)
    assert sorted(server.requests) == ["t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert (folder / "train-labels-idx1-ubyte.gz").read_bytes() == server.files["train-labels-idx1-ubyte.gz"]


def test_checksum_mismatch_deletes_download_and_keeps_existing_files(served) -> None:
    server, info, cache = served
    folder = fetch_dataset(info, cache_dir=cache)
    good = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    # The labels file in the cache is outdated; the server now serves corrupt bytes for it.
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"old")
    bad = b"corrupted on the way" * 10
    server.files["train-labels-idx1-ubyte.gz"] = bad
    with pytest.raises(DownloadError) as err:
        fetch_dataset(info, cache_dir=cache)
    message = str(err.value)
    assert "train-labels-idx1-ubyte.gz" in message
    assert hashlib.sha256(bad).hexdigest() in message
    assert info.sha256["train-labels-idx1-ubyte.gz"] in message
    assert (folder / "train-labels-idx1-ubyte.gz").read_bytes() == b"old"  # not replaced by the bad one
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() == good
    assert _listing(folder) == set(STANDARD_FILES.values())


def test_checksum_mismatch_on_first_download_leaves_no_file(served) -> None:
    server, info, cache = served
    server.files["t10k-images-idx3-ubyte.gz"] = b"x" * 100
    expected = "t10k-images-idx3-ubyte.gz downloaded from .* is not the expected file"
    with pytest.raises(DownloadError, match=expected):
        fetch_dataset(info, cache_dir=cache)
    assert "t10k-images-idx3-ubyte.gz" not in _listing(cache / "tiny")
    assert all(not n.startswith("tmp") for n in _listing(cache / "tiny"))


def test_mirrors_are_tried_in_order(served) -> None:
    server, info, cache = served
    gone = server.base.replace("/data/", "/gone/")  # answers 404
    folder = fetch_dataset(info, cache_dir=cache, mirrors=[_refused_url(), gone, server.base])
    assert _listing(folder) == set(STANDARD_FILES.values())
    assert len(server.requests) == 8  # four 404s from the second mirror, four files from the third
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1:\d+: the server answered HTTP 404") as err:
        fetch_dataset(info, cache_dir=cache / "b", mirrors=[gone])
    assert "offline" not in str(err.value)


def test_connection_refused(tmp_path: Path) -> None:
    info = _info({n: b"" for n in STANDARD_FILES.values()}, (_refused_url(),))
    with pytest.raises(DownloadError) as err:
        fetch_dataset(info, cache_dir=tmp_path)
    message = str(err.value)
    assert message.startswith("Could not download Tiny (train-images-idx3-ubyte.gz)")
    assert "connection was refused" in message
    assert "seems to be offline" in message
    assert "embedded MNIST sample" in message and "open a folder" in message
    assert _listing(tmp_path / "tiny") == set()


def test_cut_off_download_fails_cleanly_and_retry_works(served) -> None:
    server, info, cache = served
    server.modes["train-images-idx3-ubyte.gz"] = "cut"
    with pytest.raises(DownloadError, match="cut off after") as err:
        fetch_dataset(info, cache_dir=cache)
    assert "offline" not in str(err.value)
    assert _listing(cache / "tiny") == set()  # no partial file under any name
    server.modes.clear()
    folder = fetch_dataset(info, cache_dir=cache)
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() == server.files["train-images-idx3-ubyte.gz"]


def test_cancel_stops_a_running_download(server: _Server, tmp_path: Path) -> None:
    server.files = _dataset_files(tmp_path, n_train=400)  # ~300 kB, served in 4 kB steps
    server.modes["train-images-idx3-ubyte.gz"] = "slow"
    info = _info(server.files, (server.base,))
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int | None, message: str) -> None:
        seen.append(done)
        cancel.set()

    start = time.monotonic()
    with pytest.raises(DownloadCancelled, match="^download cancelled$") as err:
        fetch_dataset(info, cache_dir=tmp_path / "cache", progress=progress, cancel=cancel)
    assert isinstance(err.value, DownloadError)
    assert time.monotonic() - start < 2.0  # the whole file would take ~0.8 s more
    assert seen and seen[-1] < len(server.files["train-images-idx3-ubyte.gz"])
    assert _listing(tmp_path / "cache" / "tiny") == set()


def test_cancel_before_start_makes_no_request(served) -> None:
    server, info, cache = served
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        fetch_dataset(info, cache_dir=cache, cancel=cancel)
    assert server.requests == []


@pytest.mark.parametrize(
    "url", ["http://example.com/mnist/", "ftp://127.0.0.1/", "file:///tmp/", "http://10.0.0.1/"]
)
def test_only_https_except_local(tmp_path: Path, url: str) -> None:
    info = _info({n: b"" for n in STANDARD_FILES.values()}, (url,))
    with pytest.raises(DownloadError, match="only https:// addresses are allowed"):
        fetch_dataset(info, cache_dir=tmp_path)
    with pytest.raises(DownloadError, match="only https:// addresses are allowed"):
        fetch_dataset("mnist", cache_dir=tmp_path, mirrors=[url])


def test_redirect_to_http_is_refused(served) -> None:
    server, info, cache = served
    server.modes["train-images-idx3-ubyte.gz"] = "redirect:http://example.com/train-images-idx3-ubyte.gz"
    with pytest.raises(DownloadError, match="refusing to download from http://example.com/"):
        fetch_dataset(info, cache_dir=cache)
    assert _listing(cache / "tiny") == set()


def test_local_redirect_is_followed(served) -> None:
    server, info, cache = served
    server.files["moved.gz"] = server.files["train-images-idx3-ubyte.gz"]
    server.modes["train-images-idx3-ubyte.gz"] = "redirect:" + server.base + "moved.gz"
    folder = fetch_dataset(info, cache_dir=cache)
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() == server.files["moved.gz"]


def test_unknown_dataset_and_cache_dir() -> None:
    with pytest.raises(DownloadError, match="unknown dataset 'cifar'"):
        fetch_dataset("cifar")
    assert default_cache_dir().name == "datasets"
    assert "cnnviz" in default_cache_dir().parts


def test_catalog_is_https_and_fully_hashed() -> None:
    assert set(DATASETS) == {"mnist", "fashion", "kmnist", "cifar10"}
    for info in DATASETS.values():
        assert info.mirrors and all(m.startswith("https://") and m.endswith("/") for m in info.mirrors)
        assert len(info.class_names) == 10
        for name in info.files.values():
            digest = info.sha256[name]
            assert len(digest) == {"sha256": 64, "md5": 32}[info.hash_algorithm] and int(digest, 16) >= 0
            assert info.sizes[name] > 0
