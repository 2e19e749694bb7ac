"""The headless CLI: presets, train, evaluate, predict, and one-line errors with exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cnnviz.cli import main
from cnnviz.presets import PRESETS


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_presets_lists_every_preset_with_its_parameter_count(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0 and len(out.strip().splitlines()) == len(PRESETS)
    assert "1,199,882" in out and "basic-cnn" in out
    code, out, _ = run(capsys, "presets", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["dense-baseline"]["params"] == 420260 and rows["dense-baseline"]["trainable"] == 419160
    assert rows["cntk-conv"]["params"] == 11274


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--preset", "cntk-conv", "--epochs", "2", "--subset", "1000", "--out", str(out),
                 "--json", "--seed", "1"])
    assert code == 0
    return out


def test_train_writes_checkpoint_metrics_and_summary(run_dir):
    assert (run_dir / "checkpoint.safetensors").exists()
    metrics = (run_dir / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("epoch,train_loss") and len(metrics) == 3
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["preset"] == "cntk-conv" and summary["params"] == 11274 and summary["epochs"] == 2
    assert summary["test_accuracy"] > 0.5 and summary["images_per_second"] > 0
    assert len((run_dir / "steps.csv").read_text().splitlines()) == 1 + 32  # 1000 / 64 -> 16 batches an epoch


def test_train_json_prints_one_object(capsys):
    code, out, _ = run(capsys, "train", "--preset", "cntk-pool", "--max-steps", "3", "--json")
    assert code == 0
    result = json.loads(out)
    assert set(result) >= {"preset", "params", "epochs", "test_accuracy", "seconds", "images_per_second"}


def test_train_text_output_shows_progress_and_per_class(capsys):
    code, out, err = run(capsys, "train", "--preset", "cntk-conv", "--max-steps", "5")
    assert code == 0 and "test accuracy" in out and out.count("%") >= 11


def test_progress_line_polls_between_batches_and_listens_to_no_step(capsys):
    """The progress line asks for the latest metrics between batches, so the Trainer stays on its fast path
    (no step listener); it shows the metrics of a real step and its poller ends with the fit."""
    from cnnviz.cli import _Progress
    from cnnviz.data.prepare import load_data
    from cnnviz.training.callbacks import bound_hooks
    from cnnviz.training.trainer import Trainer

    progress = _Progress(enabled=True)
    progress.interval = 0.002
    assert not bound_hooks([progress], "on_step_end")
    preset = PRESETS["cntk-conv"]
    recipe = preset.recipe.replace(data__validation="none", train__epochs=3, train__evaluate_test=False)
    trainer = Trainer(preset.spec, recipe, load_data(recipe.data), callbacks=[progress])
    result = trainer.fit()
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if "img/s" in line and "ETA" in line]
    assert result.status == "finished" and lines, err
    assert all(line.startswith("epoch ") and " loss " in line and "nan" not in line for line in lines)
    assert progress._poller is None


def test_evaluate_a_run(capsys, run_dir):
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--json")
    result = json.loads(out)
    assert code == 0 and result["examples"] == 1000 and len(result["per_class_accuracy"]) == 10
    assert np.array(result["confusion"]).sum() == 1000


def test_predict_a_png(capsys, run_dir, tmp_path):
    from cnnviz.data.prepare import load_data
    from cnnviz.config import DataConfig
    from cnnviz.imagefile import write_grayscale

    data = load_data(DataConfig(validation="none"))
    digit = 1.0 - np.kron(data.test.raw[3] / 255.0, np.ones((4, 4)))  # dark ink on white, 112x112
    write_grayscale(tmp_path / "digit.png", digit)
    code, out, _ = run(capsys, "predict", str(run_dir), str(tmp_path / "digit.png"), "--json")
    result = json.loads(out)
    assert code == 0 and len(result["probabilities"]) == 10
    assert sum(result["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    write_grayscale(tmp_path / "blank.png", np.ones((50, 50)))
    code, _, err = run(capsys, "predict", str(run_dir), str(tmp_path / "blank.png"))
    assert code == 2 and "blank" in err


@pytest.mark.parametrize("argv, needle", [
    (["train", "--preset", "nope"], "unknown preset 'nope'"),
    (["train", "--epochs", "0"], "epochs must be at least 1"),
    (["train", "--data-dir", "/no/such/folder"], "/no/such/folder"),
    (["train", "--epochs", "x"], "invalid int value"),
    (["evaluate", "/no/such/run"], "not found"),
    (["train", "--lr", "100", "--max-steps", "30"], "diverged"),
    (["bogus"], "invalid choice"),
])
def test_user_errors_are_one_line_with_exit_code_2(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and needle in lines[-1]
    assert "Traceback" not in err


def test_garbage_checkpoint_via_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    proc = subprocess.run([sys.executable, "-m", "cnnviz", "evaluate", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "cnnviz", "--debug", "evaluate", str(bad)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" in proc.stderr
