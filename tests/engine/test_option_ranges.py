"""Every numeric option has one documented range, checked before anything runs (CLI and recipe alike)."""
from __future__ import annotations

import dataclasses
import math
import time

import pytest

from cnnviz.cli import main
from cnnviz.config import RANGES, DataConfig, OptimizerConfig, Recipe, TrainConfig
from cnnviz.errors import ConfigError

_KINDS = {"data": DataConfig, "optimizer": OptimizerConfig, "train": TrainConfig}


def _with(key: str, value) -> Recipe:
    section, name = key.split(".")
    return Recipe().replace(**{f"{section}__{name}": value})


def _is_int_field(key: str) -> bool:
    section, name = key.split(".")
    field = next(f for f in dataclasses.fields(_KINDS[section]) if f.name == name)
    return field.type.startswith("int")


@pytest.mark.parametrize("key", list(RANGES))
def test_each_range_holds_its_ends_and_refuses_beyond(key):
    r = RANGES[key]
    integer = _is_int_field(key)
    step = 1 if integer else max(abs(r.high), 1) * 1e-9
    inside_low = r.low + (step if r.low_open else 0)
    inside_high = r.high - (step if r.high_open else 0)
    for value in (inside_low, inside_high):
        value = int(value) if integer else float(value)
        _with(key, value).validate()
    below = r.low if r.low_open else r.low - (1 if integer else max(abs(r.low), 1e-12) * 1e-3 + 1e-12)
    above = r.high if r.high_open else r.high + (1 if integer else max(abs(r.high), 1) * 1e-3)
    for value in (below, above):
        with pytest.raises(ConfigError, match="must be"):
            _with(key, int(value) if integer else float(value)).validate()
    if not integer:
        for value in (math.nan, math.inf):
            with pytest.raises(ConfigError, match="finite number"):
                _with(key, value).validate()


def test_every_numeric_field_has_a_range():
    for section, kind in _KINDS.items():
        for field in dataclasses.fields(kind):
            if field.type.split(" |")[0] in ("int", "float"):
                assert f"{section}.{field.name}" in RANGES, f"{section}.{field.name} has no documented range"


def test_types_are_checked_by_validate_too():
    with pytest.raises(ConfigError, match="train: epochs must be an integer, got '5'"):
        _with("train.epochs", "5").validate()
    with pytest.raises(ConfigError, match="train: seed must be an integer, got True"):
        _with("train.seed", True).validate()


def test_every_preset_recipe_is_inside_the_ranges():
    from cnnviz.presets import PRESETS

    for preset in PRESETS.values():
        preset.recipe.validate()


@pytest.mark.parametrize("argv, needle", [
    (["--seed", "-5"], "seed must be at least 0, got -5"),
    (["--seed", str(2**64)], "seed must be at most 2,147,483,647, got 18,446,744,073,709,551,616"),
    (["--lr", "1e39"], "learning rate must be at most 100, got 1e+39"),
    (["--lr", "nan"], "lr must be a finite number, got nan"),
    (["--lr=-inf"], "lr must be a finite number, got -inf"),
    (["--lr", "0"], "learning rate must be at least 1e-06, got 0"),
    (["--epochs", "10001"], "epochs must be at most 10,000, got 10,001"),
    (["--batch-size", "0"], "batch size must be at least 1, got 0"),
    (["--batch-size", "65537"], "batch size must be at most 65,536, got 65,537"),
    (["--threads", "0"], "threads must be at least 1, got 0"),
    (["--threads", "100000"], "threads must be at most 1,024, got 100,000"),
    (["--subset", "0"], "train subset must be at least 1, got 0"),
    (["--max-steps", "0"], "max steps must be at least 1, got 0"),
])
def test_out_of_range_options_are_one_line_before_anything_runs(capsys, argv, needle):
    started = time.perf_counter()
    code = main(["train", "--dataset", "mnist", *argv])  # mnist would download: the check comes first
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert time.perf_counter() - started < 5  # nothing was loaded or trained


def test_the_readme_table_lists_every_range():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines() if line.startswith("| `")}
    for key, r in RANGES.items():
        assert key in rows, f"README's option table has no row for {key}"
        assert f"| {r.text()}" in rows[key], f"README says {rows[key]!r} but {key} is {r.text()}"
