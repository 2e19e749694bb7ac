"""`cnnviz explain`, `top-patches` and `ablate` on a small run trained here on the embedded sample."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cnnviz.cli import main
from cnnviz.config import DataConfig
from cnnviz.data.prepare import load_data
from cnnviz.training.checkpoint import load_checkpoint


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """cntk-conv, 126 steps on the embedded sample (~90 % test accuracy), with its timeline."""
    out = tmp_path_factory.mktemp("explain") / "run"
    assert main(["train", "--preset", "cntk-conv", "--epochs", "2", "--out", str(out), "--json"]) == 0
    return out


@pytest.fixture(scope="module")
def digit(tmp_path_factory):
    """Test image 3 of the sample (a 9), dark ink on white at 112 x 112, as a user would give it."""
    from cnnviz.imagefile import write_grayscale

    data = load_data(DataConfig(validation="none"))
    path = tmp_path_factory.mktemp("digit") / "digit.png"
    write_grayscale(path, 1.0 - np.kron(data.test.raw[3] / 255.0, np.ones((4, 4))))
    return path


def test_explain_flips_the_answer_to_every_class_and_the_written_images_read_back_as_those_classes(
        trained, digit, tmp_path, capsys):
    code, out, err = run(capsys, "explain", trained, digit, "--json", "--out", tmp_path / "cf")
    assert code == 0, err
    result = json.loads(out)
    probs = result["probabilities"]
    assert result["class"] == int(np.argmax(probs)) and sum(probs) == pytest.approx(1.0, abs=1e-4)
    near = result["nearest"]
    assert len(near) == 8 and [n["distance"] for n in near] == sorted(n["distance"] for n in near)
    assert {"index", "label", "distance"} <= set(near[0])
    changes = result["counterfactuals"]
    assert set(changes) == {str(c) for c in range(10) if c != result["class"]}
    flipped = {c: e for c, e in changes.items() if e["success"]}
    assert len(flipped) >= 7
    for c, entry in flipped.items():
        assert 0 < entry["l2"] < 15 and entry["probability"] > 0.3
        png = tmp_path / "cf" / f"counterfactual-{c}.png"
        assert entry["path"] == str(png)
        code, out, _ = run(capsys, "predict", trained, png, "--json")
        assert code == 0 and json.loads(out)["class"] == int(c), c


def test_top_patches_are_each_filters_strongest_responses_sorted(trained, capsys):
    code, out, err = run(capsys, "top-patches", trained, "--layer", "conv1", "--k", "3", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert list(result) == [str(f) for f in range(8)]  # cntk-conv's conv1 has 8 filters
    ckpt = load_checkpoint(trained)
    model = ckpt.build_model()
    data = load_data(ckpt.recipe.data)
    images = ckpt.normalization.apply(data.test.raw)
    with torch.no_grad():
        conv1 = model.layers.conv1(images)  # (N, 8, 14, 14)
    for f, entries in result.items():
        acts = [e["activation"] for e in entries]
        assert len(entries) == 3 and acts == sorted(acts, reverse=True)
        best = entries[0]
        assert best["activation"] == pytest.approx(float(conv1[:, int(f)].max()), rel=1e-5)
        assert float(conv1[best["index"], int(f), best["row"], best["col"]]) == pytest.approx(best["activation"],
                                                                                             rel=1e-5)


def test_ablate_keeps_the_baseline_of_evaluate_and_its_step_option_recomputes_that_step(trained, capsys):
    code, out, err = run(capsys, "ablate", trained, "--layer", "conv2", "--json")
    assert code == 0, err
    result = json.loads(out)
    _, evaluated, _ = run(capsys, "evaluate", trained, "--json")
    assert result["baseline_accuracy"] == pytest.approx(json.loads(evaluated)["test_accuracy"])
    without = result["accuracy_without_filter"]
    assert list(without) == [str(f) for f in range(16)] and all(0 <= a <= 1 for a in without.values())
    assert min(without.values()) < result["baseline_accuracy"]  # some filter is needed
    code, out, err = run(capsys, "ablate", trained, "--layer", "conv1", "--step", "30", "--json")
    assert code == 0, err
    _, evaluated, _ = run(capsys, "evaluate", trained, "--step", "30", "--json")
    assert json.loads(out)["step"] == 30
    assert json.loads(out)["baseline_accuracy"] == pytest.approx(json.loads(evaluated)["test_accuracy"])


@pytest.mark.parametrize("argv, needle", [
    (["top-patches", "{run}", "--layer", "dense1"], "'dense1' is not a conv layer of this run's model; its conv "
                                                     "layers are: conv1, conv2"),
    (["top-patches", "{run}", "--layer", "conv1", "--k", "0"], "--k must be from 1 to 100"),
    (["ablate", "{run}", "--layer", "conv9"], "its conv layers are: conv1, conv2"),
    (["ablate", "{run}", "--layer", "conv1", "--step", "99999"], "step 99999 is not in this run"),
    (["explain", "{run}", "/no/such.png"], "/no/such.png"),
])
def test_explain_top_patches_and_ablate_user_errors_are_one_line(trained, capsys, argv, needle):
    code, _, err = run(capsys, *[a.format(run=trained) for a in argv])
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_explain_on_a_colour_model_says_what_works_instead(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        for c, name in enumerate(("red", "green")):
            for i in range(n):
                a = (rng.random((12, 12, 3)) * 60).astype(np.uint8)
                a[3:9, 3:9, c] = 255
                path = tmp_path / "colour" / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(a).save(path)
    run = tmp_path / "run"
    assert main(["train", "--preset", "cntk-conv", "--data-dir", str(tmp_path / "colour"), "--epochs", "1", "--batch-size", "8",
                 "--out", str(run), "--json"]) == 0
    capsys.readouterr()
    assert main(["explain", str(run), str(tmp_path / "colour" / "test" / "red" / "0.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "colour images" in err and "top-patches" in err
