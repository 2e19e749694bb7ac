"""Download a dataset's files (four IDX files, or one archive) into the user cache, verified by their hash.

pooch does the bookkeeping that must be right: a cached file with the right hash is not fetched
again, a download goes to a temporary file in the same folder and is moved under its final name only
after its hash matched, and a bad or cut-off download is deleted. The transfer itself is our own small
urllib downloader plugged into pooch, because pooch's HTTP downloader can neither report progress to
an arbitrary callback nor be cancelled, and we also want the hash of a rejected file for the message.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import platformdirs
import pooch

from cnnviz import __version__
from cnnviz.data.catalog import DATASETS, DatasetInfo
from cnnviz.errors import DownloadError

Progress = Callable[[int, "int | None", str], None]

_CHUNK = 64 * 1024
_TIMEOUT_S = 20.0  # connect and per-read timeout: a stalled mirror fails instead of hanging
_PROGRESS_EVERY_S = 0.05  # at most ~20 progress calls a second, so a GUI thread keeps up
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_NETWORK_ERRORS = (
    urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, socket.gaierror,
    ssl.SSLError,
)


class DownloadCancelled(DownloadError):
    """The user cancelled the download (``cancel`` was set)."""

    def __init__(self) -> None:
        super().__init__("download cancelled")


def default_cache_dir() -> Path:
    """The folder that holds downloaded datasets: the user cache dir of "cnnviz", ``datasets``."""
    return Path(platformdirs.user_cache_dir("cnnviz", appauthor=False)) / "datasets"


def fetch_dataset(
    name: str | DatasetInfo,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    mirrors: Sequence[str] | None = None,
) -> Path:
    """Make sure the dataset's four files are in the cache, downloading what is missing.

    Parameters
    ----------
    name
        A key of :data:`~cnnviz.data.catalog.DATASETS` ("mnist", "fashion", "kmnist"), or a
        :class:`DatasetInfo`.
    cache_dir
        Where datasets are kept (one subfolder each); default :func:`default_cache_dir`.
    progress
        Called as ``progress(done_bytes, total_bytes_or_None, message)`` over all four files.
    cancel
        When set, the download stops at the next chunk and :class:`DownloadCancelled` is raised.
    mirrors
        Base URLs tried in order instead of the dataset's own. Only ``https://`` is allowed, and
        ``http://`` for 127.0.0.1 / localhost (tests).

    Returns
    -------
    pathlib.Path
        The folder holding the four verified files.

    Raises
    ------
    DownloadError
        Offline, every mirror failed, a checksum mismatch, a non-HTTPS URL, or cancelled
        (:class:`DownloadCancelled`).
    """
    info = name if isinstance(name, DatasetInfo) else _info(name)
    bases = [m if m.endswith("/") else m + "/" for m in (mirrors if mirrors is not None else info.mirrors)]
    if not bases:
        raise DownloadError(f"no download address is known for {info.title}")
    for base in bases:
        _check_url(base)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = folder / info.key
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the download folder {folder}: {exc.strerror or exc}") from None

    meter = _Meter(progress, info.total_bytes)
    for role_file in info.files.values():
        _check_cancel(cancel)
        target = folder / role_file
        expected = info.sha256[role_file].lower()
        size = info.sizes.get(role_file)
        if target.is_file() and _digest(target, info.hash_algorithm) == expected:
            meter.finish_file(target.stat().st_size, f"{info.title}: {role_file} already downloaded")
            continue
        _fetch_file(info, role_file, expected, folder, bases, meter, cancel, size)
    meter.report(f"{info.title}: all files downloaded and verified", force=True)
    return folder


def _fetch_file(
    info: DatasetInfo,
    filename: str,
    expected: str,
    folder: Path,
    bases: list[str],
    meter: "_Meter",
    cancel: threading.Event | None,
    size: int | None,
) -> None:
    """Try each mirror in turn until one delivers the file with the expected hash."""
    problems: list[str] = []
    mismatch: str | None = None
    offline = True
    for base in bases:
        url = base + filename
        downloader = _Downloader(meter, cancel, f"Downloading {info.title}: {filename}", info.hash_algorithm)
        try:
            # pooch streams into a temporary file beside the target, checks the hash, then moves it.
            pooch.retrieve(
                url, known_hash=f"{info.hash_algorithm}:{expected}", fname=filename, path=folder,
                downloader=downloader, progressbar=False,
            )
        except DownloadError:
            meter.abort_file()
            raise  # cancelled, or a redirect to a non-HTTPS address
        except ValueError:  # pooch: the hash did not match; the temporary file is already gone
            meter.abort_file()
            offline = False
            mismatch = (
                f"{filename} downloaded from {url} is not the expected file: its {info.hash_algorithm} is "
                f"{downloader.digest}, expected {expected}. The download was deleted"
                + ("; the cached copy was kept." if (folder / filename).exists() else ".")
            )
            problems.append(f"{_host(url)}: checksum mismatch")
        except _CutOff as exc:
            meter.abort_file()
            offline = False
            problems.append(f"{_host(url)}: the connection was cut off after {exc}")
        except urllib.error.HTTPError as exc:
            meter.abort_file()
            offline = False
            problems.append(f"{_host(url)}: the server answered HTTP {exc.code} {exc.reason}")
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            meter.abort_file()
            if not isinstance(exc, _NETWORK_ERRORS):  # e.g. a full disk: another mirror won't help
                raise DownloadError(
                    f"cannot save {filename} in {folder}: {getattr(exc, 'strerror', None) or exc}"
                ) from None
            offline = offline and not isinstance(exc, http.client.HTTPException)
            problems.append(f"{_host(url)}: {_reason(exc)}")
        else:
            meter.finish_file(downloader.done, f"Downloaded {info.title}: {filename}")
            return
    if mismatch is not None:
        raise DownloadError(mismatch)
    hint = " This computer seems to be offline." if offline else ""
    raise DownloadError(
        f"Could not download {info.title} ({filename}): {'; '.join(problems)}.{hint} "
        "The embedded MNIST sample can be used instead, or open a folder that holds the four IDX files."
    )


class _CutOff(Exception):
    """The server closed the connection before sending the announced number of bytes."""


class _Meter:
    """Turns per-chunk byte counts into throttled ``progress`` calls over all files."""

    def __init__(self, progress: Progress | None, total: int | None) -> None:
        self.progress = progress
        self.total = total
        self.base = 0  # bytes of the files already finished
        self.current = 0  # bytes of the file in flight
        self.message = ""
        self._last = 0.0

    def update(self, current: int, message: str) -> None:
        self.current = current
        self.message = message
        self.report(message)

    def report(self, message: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress is None or (not force and now - self._last < _PROGRESS_EVERY_S):
            return
        self._last = now
        done = self.base + self.current
        total = self.total if self.total is None else max(self.total, done)
        self.progress(done, total, message)

    def finish_file(self, nbytes: int, message: str) -> None:
        self.base += nbytes
        self.current = 0
        self.report(message, force=True)

    def abort_file(self) -> None:
        self.current = 0


class _Downloader:
    """A pooch downloader over urllib: streams in chunks, reports progress, honours ``cancel``."""

    def __init__(self, meter: _Meter, cancel: threading.Event | None, message: str,
                 algorithm: str = "sha256") -> None:
        self.meter = meter
        self.cancel = cancel
        self.message = message
        self.algorithm = algorithm
        self.done = 0
        self.digest = ""  # the hex digest of the last file received, for the mismatch message

    def __call__(self, url: str, output_file: str, _pooch: object) -> None:
        _check_url(url)
        _check_cancel(self.cancel)
        digest = hashlib.new(self.algorithm)
        self.done = 0
        request = urllib.request.Request(url, headers={"User-Agent": f"cnnviz/{__version__}"})
        with _OPENER.open(request, timeout=_TIMEOUT_S) as response, open(output_file, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while True:
                _check_cancel(self.cancel)
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                self.done += len(chunk)
                self.meter.update(self.done, self.message)
        self.digest = digest.hexdigest()
        # http.client returns a short body without complaint when the server hangs up early.
        if total is not None and self.done < total:
            raise _CutOff(f"{self.done:,} of {total:,} bytes")


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects (GitHub's raw links redirect) but never to a non-HTTPS address."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's API
        _check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpsOnlyRedirects)


def _check_url(url: str) -> None:
    """Refuse anything but https, except plain http to this machine (used by the tests)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS:
        return
    raise DownloadError(f"refusing to download from {url}: only https:// addresses are allowed")


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled()


def _info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DownloadError(
            f"unknown dataset {name!r}; downloadable datasets: {', '.join(DATASETS)}"
        ) from None


def _digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.netloc or url


def _reason(exc: BaseException) -> str:
    """A short, user-readable cause of a connection failure."""
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, socket.gaierror):
        return "the server name could not be resolved"
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "the connection timed out"
    if isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected)):
        return "the server closed the connection"
    if isinstance(exc, http.client.HTTPException):
        return f"broken HTTP response ({type(exc).__name__})"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"connection failed ({text})"


# pooch logs every download at INFO level to stderr; our progress callback says the same thing.
pooch.get_logger().setLevel("WARNING")
