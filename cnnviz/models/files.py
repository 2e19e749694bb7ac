"""Model files: a :class:`ModelSpec` as JSON, what the model editor saves and `cnnviz train --model` reads."""
from __future__ import annotations

import json
import os

from cnnviz import limits
from cnnviz.errors import SpecError
from cnnviz.files import read_regular
from cnnviz.models.spec import ModelSpec
from cnnviz.validation import parse_json

def read_model_file(path: str | os.PathLike) -> ModelSpec:
    """The model spec in a JSON file (a run's ``run.json`` with a ``spec`` inside is accepted too).

    Raises SpecError naming the file for anything but a readable, valid model file: a missing file, a
    folder, a FIFO or device, a file over the size limit, text that is not JSON or nested too deeply, an
    impossible spec. Read through the one checked open (`cnnviz.files`)."""
    try:
        raw = read_regular(path, limits.MAX_MODEL_FILE_BYTES, SpecError, "model file")
    except SpecError as exc:
        raise SpecError(f"could not read {exc}") from None
    data = parse_json(raw, f"{path} is not a model file: it", SpecError, max_bytes=limits.MAX_MODEL_FILE_BYTES)
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
