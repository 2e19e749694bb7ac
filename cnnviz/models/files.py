"""Model files: a :class:`ModelSpec` as JSON, what the model editor saves and `cnnviz train --model` reads."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from cnnviz.errors import SpecError
from cnnviz.models.spec import ModelSpec

MAX_MODEL_FILE_BYTES = 1 << 20  # a model of 1,000 layers is ~200 KB of JSON


def read_model_file(path: str | os.PathLike) -> ModelSpec:
    """The model spec in a JSON file (a run's ``run.json`` with a ``spec`` inside is accepted too).

    Raises SpecError naming the file for anything but a readable, valid model file: a missing file, a
    folder, a FIFO or device, a file over MAX_MODEL_FILE_BYTES, text that is not JSON, an impossible spec.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(f"{path}: not a regular file; a model file is a .json file")
    if info.st_size > MAX_MODEL_FILE_BYTES:
        raise SpecError(f"{path}: {info.st_size:,} bytes is too large for a model file "
                        f"(at most {MAX_MODEL_FILE_BYTES:,})")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_MODEL_FILE_BYTES + 1)
        data = json.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path} is not a model file: it is not text (UTF-8 JSON)") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path} is not a model file: it is not valid JSON (line {exc.lineno})") from None
    except RecursionError:
        raise SpecError(f"{path} is not a model file: its JSON is nested too deeply") from None
    if isinstance(data, dict) and "layers" not in data and isinstance(data.get("spec"), dict):
        data = data["spec"]  # a run's metadata file with the spec inside
    try:
        return ModelSpec.from_dict(data)
    except SpecError as exc:
        raise SpecError(f"{path} is not a usable model file: {exc}") from None


def write_model_file(path: str | os.PathLike, spec: ModelSpec) -> None:
    """Write `spec` as indented JSON; OSError is left to the caller (it knows how to report it)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(spec.to_dict(), fh, indent=2)
        fh.write("\n")
