"""Images that are not 28x28: the model's input shape comes from the data, in the engine and the CLI.

Data folders are generated IDX files of random pixels (the sizes matter here, not what is drawn).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cnnviz.cli import main
from cnnviz.config import DataConfig
from cnnviz.data.prepare import load_data
from cnnviz.errors import SpecError
from cnnviz.inspect.canvas import digit_box, render_strokes, to_mnist
from cnnviz.models import build_model, fit_to_images, input_mismatch, spec_for_data, summarize
from cnnviz.presets import PRESETS
from tests.datasets import write_dataset
from cnnviz.training.trainer import Trainer


def write_sized_folder(folder, height: int, width: int | None = None, n_train: int = 100, n_test: int = 20,
                       classes: int = 10):
    """The four IDX files of random ``height x width`` images with labels 0..classes-1; returns the folder."""
    width = height if width is None else width
    write_dataset(folder, n_train, n_test, seed=height * 100 + width, height=height, width=width, classes=classes)
    return folder


def _data(folder, **changes):
    return load_data(DataConfig(data_dir=str(folder), validation="none", **changes), fallback=False)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- fitting a spec to the data ----------------------------------------------------------------------------
@pytest.mark.parametrize("side, dense_in", [(32, 16 * 8 * 8), (20, 16 * 5 * 5), (28, 16 * 7 * 7)])
def test_a_preset_takes_the_data_size_and_its_dense_layer_follows(side, dense_in):
    fitted = fit_to_images(PRESETS["cntk-conv"].spec, (1, side, side))
    assert fitted.input_shape == (1, side, side)
    model = build_model(fitted)
    assert model.layers.dense1.in_features == dense_in
    assert model(torch.zeros(2, 1, side, side)).shape == (2, 10)


def test_spec_for_data_sets_the_image_shape_and_classes_and_keeps_a_spec_that_fits(tmp_path):
    data = _data(write_sized_folder(tmp_path / "d", 32, classes=3))
    spec = spec_for_data(PRESETS["gorner"].spec, data, "preset 'gorner'")
    assert spec.input_shape == (1, 32, 32) and spec.num_classes == 3 and spec.layers[-1].size == 3
    assert spec_for_data(spec, data) is spec  # nothing to change: the same spec, so callers see no change
    assert summarize(spec).total != summarize(PRESETS["gorner"].spec).total  # the dense layer was resized


def test_non_square_images():
    fitted = fit_to_images(PRESETS["gorner"].spec, (1, 20, 32))
    assert build_model(fitted)(torch.zeros(1, 1, 20, 32)).shape == (1, 10)


@pytest.mark.parametrize("preset, layer", [("basic-cnn", "layer 1 'conv1': kernel 3 is larger than its 1x1 input"),
                                           ("cntk-pool", "layer 2 'pool1': kernel 2 is larger than its 1x1 input"),
                                           ("keras-deep", "layer 2 'conv2': kernel 3 is larger than its 1x1 input")])
def test_images_too_small_for_a_preset_name_the_data_the_preset_and_the_layer(preset, layer):
    with pytest.raises(SpecError) as err:
        fit_to_images(PRESETS[preset].spec, (1, 1, 1), 10, f"preset '{preset}'")
    assert str(err.value).startswith(f"preset '{preset}' cannot take the data's 1x1 images: {layer}")


def test_same_padding_presets_take_even_1x1_images():
    """TF 'same' padding keeps a 1x1 input 1x1 through any kernel and stride, so these presets build and run
    (the issue expected gorner to fail on 1x1; it does not, and that is right: torch runs it)."""
    for name in ("gorner", "gorner-dropout", "cntk-conv", "cnn1", "dense-baseline"):
        model = build_model(fit_to_images(PRESETS[name].spec, (1, 1, 1)))
        assert model(torch.zeros(2, 1, 1, 1)).shape == (2, 10), name


def test_with_input_shape_checks_the_shape_only():
    spec = PRESETS["gorner"].spec
    assert spec.with_input_shape((1, 32, 32)).input_shape == (1, 32, 32)
    assert spec.with_input_shape([1, 5, 7]).input_shape == (1, 5, 7)
    for bad in ((1, 0, 28), (28, 28), (1, 28.0, 28), (1, -1, 28)):
        with pytest.raises(SpecError, match="input_shape must be 3 positive integers"):
            spec.with_input_shape(bad)


def test_input_mismatch_says_both_shapes(tmp_path):
    data = _data(write_sized_folder(tmp_path / "d", 32))
    assert input_mismatch(PRESETS["gorner"].spec, data, "the run's model") == \
        "the run's model takes 1x28x28 images but this data has 1x32x32 images"
    assert input_mismatch(spec_for_data(PRESETS["gorner"].spec, data), data) is None


def test_the_trainer_refuses_a_spec_for_another_image_size_before_training(tmp_path):
    data = _data(write_sized_folder(tmp_path / "d", 32))
    preset = PRESETS["cntk-conv"]
    with pytest.raises(SpecError, match="the model takes 1x28x28 images but this data has 1x32x32 images"):
        Trainer(preset.spec, preset.recipe.replace(train__max_steps=1), data)
    trainer = Trainer(spec_for_data(preset.spec, data), preset.recipe.replace(train__max_steps=2), data)
    result = trainer.fit()
    assert result.status == "finished" and result.steps == 2 and result.error is None


# -- the drawing at the model's input size -----------------------------------------------------------------
SEVEN = [[(80, 60), (200, 60), (190, 100), (160, 160), (130, 230)]]


def test_to_mnist_at_28_is_unchanged_and_other_sizes_keep_mnist_proportions():
    raster = render_strokes(SEVEN)
    mnist = to_mnist(raster)
    assert np.array_equal(to_mnist(raster, shape=(28, 28)), mnist) and digit_box((28, 28)) == 20
    for shape in ((32, 32), (20, 20), (20, 32), (64, 48)):
        image = to_mnist(raster, shape=shape)
        assert image.shape == shape and image.dtype == np.float32
        rows, cols = np.nonzero(image > 0.05)
        long_side = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
        assert abs(long_side - digit_box(shape)) <= 1, shape  # 20/28 of the shorter side
        mass = image.sum()
        cy = (image.sum(axis=1) * np.arange(shape[0])).sum() / mass
        cx = (image.sum(axis=0) * np.arange(shape[1])).sum() / mass
        assert abs(cy - shape[0] / 2) <= 1 and abs(cx - shape[1] / 2) <= 1, (shape, cy, cx)
    tiny = to_mnist(raster, shape=(1, 1))
    assert tiny.shape == (1, 1) and 0 < tiny[0, 0] <= 1
    assert digit_box((32, 32)) == 23 and digit_box((1, 1)) == 1
    with pytest.raises(ValueError, match="at least 1 x 1"):
        to_mnist(raster, shape=(0, 5))


# -- the CLI -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sizes")
    return {side: write_sized_folder(root / f"d{side}", side) for side in (32, 20, 1)}


@pytest.mark.parametrize("preset", ["cntk-conv", "gorner"])
@pytest.mark.parametrize("side", [32, 20])
def test_cli_trains_and_evaluates_on_other_image_sizes(capsys, tmp_path, folders, preset, side):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "--preset", preset, "--data-dir", folders[side], "--max-steps", 2,
                            "--batch-size", 10, "--json", "--out", out)
    assert code == 0, err
    summary = json.loads(stdout)
    expected = fit_to_images(PRESETS[preset].spec, (1, side, side))
    assert summary["input_shape"] == [1, side, side] and summary["steps"] == 2 and summary["status"] == "finished"
    assert summary["params"] == summarize(expected).total
    assert json.loads((out / "run.json").read_text())["input_shape"] == [1, side, side]
    code, stdout, err = run(capsys, "evaluate", out, "--json")
    assert code == 0, err
    assert json.loads(stdout)["examples"] == 20


def test_cli_evaluate_of_a_run_on_data_of_another_size_is_a_clear_error(capsys, tmp_path, folders):
    out28 = tmp_path / "run28"
    code, _, err = run(capsys, "train", "--preset", "cntk-conv", "--max-steps", 1, "--subset", 200, "--json",
                       "--out", out28)
    assert code == 0, err
    code, _, err = run(capsys, "evaluate", out28, "--data-dir", folders[32])
    assert code == 2 and "Traceback" not in err
    assert err.strip() == "error: the run's model takes 1x28x28 images but this data has 1x32x32 images"


def test_cli_images_too_small_for_the_preset_fail_before_training(capsys, tmp_path, folders):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "--preset", "basic-cnn", "--data-dir", folders[1], "--max-steps", 2,
                            "--out", out)
    assert code == 2 and stdout == "" and "Traceback" not in err
    assert err.strip().splitlines() == [
        "error: preset 'basic-cnn' cannot take the data's 1x1 images: layer 1 'conv1': kernel 3 is larger than "
        "its 1x1 input padded by 0"]
    assert not out.exists()  # nothing trained, nothing written


def test_cli_predict_prepares_the_digit_at_the_model_input_size(capsys, tmp_path, folders):
    from cnnviz.imagefile import write_grayscale

    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--preset", "gorner", "--data-dir", folders[32], "--max-steps", 1,
                       "--batch-size", 10, "--json", "--out", out)
    assert code == 0, err
    page = np.ones((120, 90))
    page[20:100, 40:52] = 0.0  # a dark "1" on white
    write_grayscale(tmp_path / "one.png", page)
    code, stdout, err = run(capsys, "predict", out, tmp_path / "one.png", "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert len(result["probabilities"]) == 10 and sum(result["probabilities"]) == pytest.approx(1.0, abs=1e-4)
