"""Writing frames as a GIF (Pillow) or an MP4 (imageio with imageio-ffmpeg's bundled ffmpeg).

Both write to a temporary file beside the output and rename it into place at the end, so an export that
fails or is cancelled (Ctrl+C) leaves no half-written file, and an older file of that name stays whole until
the new one is complete. MP4 needs the optional ``video`` extra; without it the error says how to get it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from cnnviz.errors import CnnvizError

HOLD_SECONDS = 2.0  # the last frame stays this long before the animation loops: the trained network, readable
MP4_MISSING = "MP4 export needs imageio and imageio-ffmpeg: pip install imageio imageio-ffmpeg"
GIF_MEMORY_BYTES = 2 << 30  # Pillow holds every frame of a GIF until it writes it: one byte a pixel a frame
_MAGIC = {"gif": (b"GIF87a", b"GIF89a"), "mp4": ()}


def check_output(path: str | os.PathLike, kind: str) -> Path:
    """The output path, checked before any work: not a folder, in a folder that exists, not some other file.

    A file of the same kind is replaced (at the end, whole); any other existing file is refused, so that a
    slip of the keyboard cannot overwrite a run's checkpoint with a GIF.
    """
    out = Path(path).expanduser()
    if out.is_dir():
        raise CnnvizError(f"{out} is a folder; give the file to write, e.g. {out / ('animation.' + kind)}")
    parent = out.parent if str(out.parent) else Path(".")
    for above in (parent, *parent.parents):
        if above.exists() and not above.is_dir():
            raise CnnvizError(f"cannot write {out}: {above} is a file, not a folder")
    if not parent.is_dir():
        raise CnnvizError(f"cannot write {out}: the folder {parent} does not exist")
    if out.exists() or out.is_symlink():
        if not out.is_file():
            raise CnnvizError(f"cannot write {out}: it exists and is not a regular file")
        if not _looks_like(out, kind):
            raise CnnvizError(f"{out} exists and is not an {kind.upper()} file; cnnviz does not overwrite it. "
                              "Remove it or choose another name")
    return out


def _looks_like(path: Path, kind: str) -> bool:
    """Whether the existing file at `path` starts as a file of `kind` does (or is empty)."""
    from cnnviz.files import open_regular

    try:
        f, _ = open_regular(path, 1 << 62, CnnvizError, f"{kind.upper()} file")  # no FIFO, device, ...
        with f:
            head = f.read(12)
    except (CnnvizError, OSError):
        return False
    if kind == "mp4":
        return (len(head) >= 8 and head[4:8] == b"ftyp") or len(head) == 0
    return head.startswith(_MAGIC[kind]) or len(head) == 0


class _Staged:
    """A temporary file beside `out` (same suffix, hidden), renamed over `out` by :meth:`commit`."""

    def __init__(self, out: Path) -> None:
        self.out = out
        try:
            fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=f".part{out.suffix}", dir=out.parent)
        except OSError as exc:
            raise CnnvizError(f"cannot write {out}: {exc.strerror or exc}") from None
        os.close(fd)
        self.path = Path(name)

    def commit(self) -> None:
        try:
            os.replace(self.path, self.out)
        except OSError as exc:
            self.discard()
            raise CnnvizError(f"cannot write {self.out}: {exc.strerror or exc}") from None

    def discard(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


class GifWriter:
    """Frames into a looping GIF with one palette for all of them (255 colours from sample frames).

    One palette keeps colours steady from frame to frame and lets Pillow store only what changed; frames are
    mapped to it without dithering, which would make still areas shimmer.
    """

    def __init__(self, out: Path, fps: int, size: tuple[int, int], count: int, samples: list[np.ndarray]) -> None:
        from PIL import Image

        check_gif_memory(count, size)
        self._image = Image
        self.fps = fps
        stacked = Image.fromarray(np.concatenate(samples, axis=0))
        # 255 colours: Pillow's optimizer needs one free index for the "unchanged" transparency
        self.palette = stacked.quantize(255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        self.frames = []
        self.staged = _Staged(out)

    def add(self, frame: np.ndarray) -> None:
        image = self._image.fromarray(frame)
        self.frames.append(image.quantize(palette=self.palette, dither=self._image.Dither.NONE))

    def finish(self) -> None:
        if not self.frames:
            raise CnnvizError("no frames to write")
        step_ms = 1000.0 / self.fps
        durations = [round(step_ms)] * len(self.frames)
        durations[-1] = max(durations[-1], round(HOLD_SECONDS * 1000))
        try:
            self.frames[0].save(self.staged.path, format="GIF", save_all=True, append_images=self.frames[1:],
                                duration=durations, loop=0, optimize=True)
        except OSError as exc:
            self.abort()
            raise CnnvizError(f"cannot write {self.staged.out}: {exc.strerror or exc}") from None
        self.frames = []
        self.staged.commit()

    def abort(self) -> None:
        self.frames = []
        self.staged.discard()


def check_gif_memory(count: int, size: tuple[int, int]) -> None:
    """Refuse a GIF whose frames would not fit in :data:`GIF_MEMORY_BYTES` while Pillow writes them."""
    from cnnviz.files import human_size

    width, height = size
    need = count * width * height
    if need > GIF_MEMORY_BYTES:
        raise CnnvizError(f"a GIF of {count:,} frames of {width}x{height} needs {human_size(need)} of memory to "
                          f"write (at most {human_size(GIF_MEMORY_BYTES)}): use fewer frames (--frames, --every), "
                          "a smaller --size, or --mp4")


def imageio_ffmpeg_module():
    """imageio's FFMPEG plugin and imageio-ffmpeg, or the one-line error that says how to install them."""
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()  # the bundled binary (a wheel for another platform has none)
    except (ImportError, RuntimeError):
        raise CnnvizError(MP4_MISSING) from None
    return imageio


class Mp4Writer:
    """Frames into an H.264 MP4 (yuv420p, which every player reads; so both sides must be even)."""

    def __init__(self, out: Path, fps: int, size: tuple[int, int]) -> None:
        imageio = imageio_ffmpeg_module()
        width, height = size
        if width % 2 or height % 2:
            raise CnnvizError(f"an MP4 frame needs even sides; got {width}x{height}")
        self.fps = fps
        self.staged = _Staged(out)
        try:
            self.writer = imageio.get_writer(
                self.staged.path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                macro_block_size=1, quality=None, ffmpeg_log_level="error",
                ffmpeg_params=["-crf", "18", "-preset", "medium", "-movflags", "+faststart"])
        except (OSError, RuntimeError) as exc:
            self.staged.discard()
            raise CnnvizError(f"cannot write {out}: {exc}") from None
        self._last: np.ndarray | None = None

    def add(self, frame: np.ndarray) -> None:
        self.writer.append_data(frame)
        self._last = frame

    def finish(self) -> None:
        try:
            if self._last is not None:  # hold the last frame, as the GIF does
                for _ in range(hold_frames(self.fps)):
                    self.writer.append_data(self._last)
            self.writer.close()
        except (OSError, RuntimeError) as exc:
            self.abort()
            raise CnnvizError(f"cannot write {self.staged.out}: ffmpeg failed ({exc})") from None
        self.staged.commit()

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 (ffmpeg may already be gone, e.g. after Ctrl+C): the file goes anyway
            pass
        self.staged.discard()


def hold_frames(fps: int) -> int:
    """Extra copies of the last frame an MP4 gets so that it shows for :data:`HOLD_SECONDS`."""
    return max(0, round(HOLD_SECONDS * fps) - 1)
