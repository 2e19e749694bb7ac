"""`cnnviz train --out`: a run never replaces another unless asked, is checked before training, is locked
while it trains, and is never lost to a failed save."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnviz.cli import main
from cnnviz.training import rundir
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.rundir import RunFolder
from tests.datasets import write_dataset

QUICK = ["--preset", "cntk-conv", "--subset", "300"]


def train(capsys, out, *extra):
    code = main(["train", *([] if "--resume" in extra else QUICK), "--json", "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def good_run(tmp_path, capsys):
    out = tmp_path / "good"
    code, _, err = train(capsys, out, "--epochs", "1")
    assert code == 0, err
    return out


@pytest.fixture
def idx_folder(tmp_path):
    """A folder of small random MNIST-format IDX files (200 train / 100 test, 10 classes)."""
    write_dataset(tmp_path / "digits", n_train=200, n_test=100)
    return tmp_path / "digits"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_diverging_run_never_replaces_a_good_one(good_run, capsys):
    before = _files(good_run)
    code, _, err = train(capsys, good_run, "--epochs", "1", "--lr", "100", "--overwrite")
    assert code == 2 and "training diverged" in err and f"{good_run} is unchanged" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _files(good_run) == before


def test_a_run_is_not_replaced_without_overwrite_and_is_with_it(good_run, capsys):
    before = _files(good_run)
    code, _, err = train(capsys, good_run, "--epochs", "1")
    assert code == 2 and "already holds a run" in err and "--overwrite" in err and "--resume" in err
    assert _files(good_run) == before
    code, out, err = train(capsys, good_run, "--epochs", "1", "--seed", "7", "--overwrite")
    assert code == 0, err
    assert _files(good_run)["checkpoint.safetensors"] != before["checkpoint.safetensors"]
    assert load_checkpoint(good_run).recipe.train.seed == 7


def test_resume_continues_the_run_exactly_as_one_uninterrupted_run(tmp_path, capsys, good_run):
    code, _, err = train(capsys, good_run, "--resume", "--epochs", "2")
    assert code == 0, err
    straight = tmp_path / "straight"
    assert train(capsys, straight, "--epochs", "2")[0] == 0
    resumed, whole = load_checkpoint(good_run), load_checkpoint(straight)
    assert resumed.epoch == whole.epoch == 2 and resumed.step == whole.step
    assert resumed.history.step_loss == whole.history.step_loss
    for key, value in whole.model_state.items():
        assert torch.equal(resumed.model_state[key], value), key


def test_resume_refuses_what_would_change_the_run_and_a_finished_run(good_run, tmp_path, capsys):
    code, _, err = train(capsys, good_run, "--resume")
    assert code == 2 and "already trained 1 of its 1 epochs" in err and "--epochs" in err
    code, _, err = main(["train", "--preset", "gorner", "--resume", "--out", str(good_run)]), *capsys.readouterr()
    assert code == 2 and "--preset cannot change a run" in err
    code, _, err = train(capsys, tmp_path / "empty", "--resume", "--epochs", "2")
    assert code == 2 and "holds no run to continue" in err


def test_a_failed_first_epoch_leaves_no_checkpoint_and_no_folder_it_made(tmp_path, capsys):
    out = tmp_path / "fresh"
    code, _, err = train(capsys, out, "--epochs", "1", "--lr", "100")
    assert code == 2 and "Nothing was saved" in err
    assert not out.exists()


def test_out_is_checked_before_training(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    for out, words in ((a_file, "is a file, not a run folder"), (a_file / "run", "part of this path is a file")):
        started = time.monotonic()
        code, out_text, err = train(capsys, out, "--epochs", "50")
        assert code == 2 and words in err and "Traceback" not in err, err
        assert time.monotonic() - started < 5  # refused before 50 epochs of training
    assert a_file.read_text() == "not a folder"


def test_an_unwritable_out_folder_is_refused_before_training(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() != 0:  # a real read-only folder (root writes anywhere, so there it is simulated)
        out.chmod(0o500)
    else:
        def read_only(path, *args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system", str(path))

        monkeypatch.setattr(rundir, "open", read_only, raising=False)
    code, _, err = train(capsys, out, "--epochs", "50")
    out.chmod(0o700)
    assert code == 2 and "cannot write into the run folder" in err and "Traceback" not in err


def test_a_save_that_fails_after_training_rescues_the_run(tmp_path, capsys, monkeypatch):
    import cnnviz.training.checkpoint as checkpoint_module

    monkeypatch.setenv("CNNVIZ_RESCUE_DIR", str(tmp_path / "rescue"))
    out = tmp_path / "full"
    real = checkpoint_module.atomic_write_bytes

    def disk_full_in_out(path, payload):
        if Path(path).parent == out:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, payload)

    monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", disk_full_in_out)
    code, _, err = train(capsys, out, "--epochs", "1")
    assert code == 2 and "could not save the run to" in err and "No space left on device" in err
    rescued = [p for p in (tmp_path / "rescue").iterdir()]
    assert len(rescued) == 1 and str(rescued[0]) in err
    assert load_checkpoint(rescued[0]).epoch == 1  # the trained weights were kept, not lost


def test_a_second_trainer_into_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from cnnviz.training.rundir import RunFolder; "
         f"RunFolder({str(out)!r}).acquire(); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = train(capsys, out, "--epochs", "1")
        assert code == 2 and "is in use" in err and f"process {holder.pid}" in err
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert RunFolder(out).interrupted()  # the holder ended without releasing: what a crash leaves
    code, _, err = train(capsys, out, "--epochs", "1")
    assert code == 0, err  # a dead owner's marker does not lock the folder
    assert not (out / "RUNNING").exists()  # a clean end removes the marker


def test_first_ctrl_c_stops_saves_and_the_run_can_be_resumed(tmp_path):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "cnnviz", "train", "--preset", "cntk-conv", "--subset", "300",
                             "--epochs", "1000", "--out", str(out)], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        for line in proc.stderr:
            if line.startswith("epoch 1:"):
                break
        proc.send_signal(signal.SIGINT)
        out_text, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped:" in out_text and "Traceback" not in err
    saved = load_checkpoint(out)
    assert 1 <= saved.epoch < 1000 and json.loads((out / "run.json").read_text())["status"] == "stopped"


def test_relative_data_dir_is_stored_absolute(tmp_path, capsys, monkeypatch, idx_folder):
    monkeypatch.chdir(idx_folder.parent)
    out = tmp_path / "rel"
    code = main(["train", "--preset", "cntk-conv", "--data-dir", idx_folder.name, "--max-steps", "2",
                 "--out", str(out), "--json"])
    assert code == 0, capsys.readouterr().err
    assert load_checkpoint(out).recipe.data.data_dir == str(idx_folder)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0, capsys.readouterr().err


def test_train_a_model_file_from_the_model_editor(tmp_path, capsys):
    from cnnviz.models import conv, dense, ModelSpec
    from cnnviz.models.files import write_model_file

    path = tmp_path / "mine.json"
    write_model_file(path, ModelSpec((conv(4, 3, 2, "same"), dense(10))))
    code = main(["train", "--model", str(path), "--max-steps", "3", "--json", "--out", str(tmp_path / "m")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["preset"] == "mine" and json.loads(out)["params"] == 4 * 9 + 4 + 4 * 14 * 14 * 10 + 10
    for bad, words in ((tmp_path / "none.json", "file not found"), (tmp_path, "is a folder, not a model file")):
        assert main(["train", "--model", str(bad), "--max-steps", "1"]) == 2
        assert words in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[" * 100000)
    assert main(["train", "--model", str(tmp_path / "bad.json")]) == 2
    assert "not a model file" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly():
    proc = subprocess.run(f"{sys.executable} -m cnnviz presets | head -c 1 >/dev/null", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert proc.stderr == ""


def test_headless_training_keeps_torch_s_threads_unless_told(tmp_path):
    from cnnviz.config import DataConfig
    from cnnviz.data.prepare import load_data
    from cnnviz.presets import get_preset
    from cnnviz.training.trainer import Trainer

    preset = get_preset("cntk-conv")
    data = load_data(DataConfig(train_subset=200, validation="none"))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        Trainer(preset.spec, preset.recipe.replace(train__max_steps=1, train__evaluate_test=False), data).fit()
        assert torch.get_num_threads() == 2  # headless: every core (torch's default), not cores - 1
        Trainer(preset.spec, preset.recipe.replace(train__max_steps=1, train__evaluate_test=False,
                                                   train__threads=1), data).fit()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
