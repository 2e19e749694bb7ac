"""`cnnviz export`: the model at a step as ONNX (the predictions of `cnnviz evaluate`, the run's normalisation
inside the graph) and the learning process as TensorBoard event files (read back with TensorBoard's reader)."""
from __future__ import annotations

import errno
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from cnnviz.cli import main
from cnnviz.data.prepare import load_data
from cnnviz.exports import outputs
from cnnviz.exports.onnx_export import weights_at
from cnnviz.exports.tensorboard_export import spread
from cnnviz.timeline.reader import RunTimeline
from cnnviz.timeline.replay import exact_weights
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.trainer import evaluate


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _train(folder, *extra):
    assert main(["train", "--subset", "300", "--json", "--out", str(folder), *extra]) == 0
    return folder


@pytest.fixture(scope="module")
def scaled_run(tmp_path_factory):
    """10 steps of cntk-conv, pixels scaled to [0, 1]; every step is a float32 keyframe or an anchor."""
    return _train(tmp_path_factory.mktemp("runs") / "scaled", "--preset", "cntk-conv", "--epochs", "2")


@pytest.fixture(scope="module")
def standardised_run(tmp_path_factory):
    """cnn1 (normalization "standardize"), no keyframes (--timeline-mb 0): a step between anchors is recomputed."""
    return _train(tmp_path_factory.mktemp("runs") / "standardised", "--preset", "cnn1", "--epochs", "1",
                  "--batch-size", "50", "--timeline-mb", "0")


@pytest.fixture(scope="module")
def bare_run(tmp_path_factory):
    """A run folder without a timeline: the final checkpoint and metrics only."""
    return _train(tmp_path_factory.mktemp("runs") / "bare", "--preset", "cntk-conv", "--epochs", "1",
                  "--no-timeline")


def run_data(run):
    """The run's test images as the files hold them (pixels in [0, 1]) and the run's own evaluation split."""
    checkpoint = load_checkpoint(run)
    data = load_data(checkpoint.recipe.data, fallback=False)
    pixels = torch.as_tensor(data.test.raw).to(torch.float32).div_(255.0)[:, None].numpy()
    return checkpoint, data, pixels


def onnx_scores(path, pixels):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["scores"], {"pixels": pixels})[0]


def model_with(checkpoint, weights):
    from cnnviz.models import build_model

    model = build_model(checkpoint.spec)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
    return model.eval()


def assert_same_predictions(scores, evaluation):
    assert np.array_equal(scores.argmax(axis=1), evaluation.predicted)
    probabilities = torch.softmax(torch.from_numpy(scores).double(), dim=1).numpy()
    np.testing.assert_allclose(probabilities, evaluation.probabilities, atol=1e-4)


# -- ONNX ---------------------------------------------------------------------------------------------------

def test_onnx_gives_the_predictions_of_evaluate(scaled_run, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    code, text, err = cli(capsys, "export", scaled_run, "--onnx", out)
    assert code == 0, err
    assert f"wrote {out}: step 10 (the run's checkpoint)" in text and "(N, 1, 28, 28)" in text
    checkpoint, data, pixels = run_data(scaled_run)
    scores = onnx_scores(out, pixels)
    evaluation = evaluate(checkpoint.build_model(), data.test, "test", checkpoint.step)
    assert scores.shape == (len(data.test), 10)
    assert_same_predictions(scores, evaluation)
    with torch.no_grad():
        np.testing.assert_allclose(scores, checkpoint.build_model()(data.test.images).numpy(), atol=1e-4)
    np.testing.assert_allclose(onnx_scores(out, pixels[:3]), scores[:3], atol=1e-5)  # the batch axis is dynamic
    code, text, _ = cli(capsys, "evaluate", scaled_run, "--json")
    assert code == 0 and json.loads(text)["test_accuracy"] == float((scores.argmax(1) == evaluation.labels).mean())


def test_onnx_of_a_standardised_run_holds_its_normalisation(standardised_run, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    code, _, err = cli(capsys, "export", standardised_run, "--onnx", out)
    assert code == 0, err
    checkpoint, data, pixels = run_data(standardised_run)
    assert checkpoint.normalization.std < 0.5 and checkpoint.normalization.mean > 0.05
    scores = onnx_scores(out, pixels)
    model = checkpoint.build_model()
    assert_same_predictions(scores, evaluate(model, data.test, "test", checkpoint.step))
    with torch.no_grad():  # the same model given the pixels unnormalised answers otherwise: the graph normalises
        assert np.abs(model(torch.from_numpy(pixels)).numpy() - scores).max() > 0.1


def test_onnx_at_a_step_between_anchors_is_that_steps_exact_weights(standardised_run, tmp_path, capsys):
    out = tmp_path / "step3.onnx"
    code, text, err = cli(capsys, "export", standardised_run, "--onnx", out, "--step", 3)
    assert code == 0, err
    assert "step 3 (recomputed from the anchor at step 0)" in text and "recomputing from the nearest anchor" in err
    timeline = RunTimeline.open(standardised_run)
    assert 3 not in timeline.anchors and 3 not in timeline.keyframes
    checkpoint, data, pixels = run_data(standardised_run)
    model = model_with(checkpoint, exact_weights(timeline, 3))
    scores = onnx_scores(out, pixels)
    assert_same_predictions(scores, evaluate(model, data.test, "test", 3))
    last = tmp_path / "last.onnx"
    assert cli(capsys, "export", standardised_run, "--onnx", last)[0] == 0
    assert np.abs(onnx_scores(last, pixels) - scores).max() > 1e-3  # the step matters


def test_every_kind_of_layer_exports_and_answers_as_in_torch():
    import onnxruntime

    from cnnviz.exports.onnx_export import PixelsToScores, onnx_bytes
    from cnnviz.models import ModelSpec, act, batchnorm, build_model, conv, dense, dropout
    from cnnviz.models.spec import LayerSpec

    spec = ModelSpec((
        conv(4, 4, 2, "same"), batchnorm(), act("leaky_relu"),  # an even kernel: asymmetric "same" padding
        LayerSpec("maxpool", kernel=3, stride=2, padding="same"), conv(6, 3, 1, 1, "elu"),
        LayerSpec("avgpool", kernel=3, stride=2, padding="same"), act("tanh"), dropout(0.3),
        dense(12, "sigmoid"), batchnorm(), dense(3),
    ), input_shape=(1, 28, 28), num_classes=3)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    for module in model.modules():  # batch norm statistics that are not the identity
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    payload = onnx_bytes(model, 0.13, 0.31, (1, 28, 28), {"input": "pixels"})
    pixels = torch.rand(5, 1, 28, 28)
    session = onnxruntime.InferenceSession(payload, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = PixelsToScores(model, 0.13, 0.31)(pixels).numpy()
    np.testing.assert_allclose(session.run(None, {"pixels": pixels.numpy()})[0], expected, atol=1e-5)


def test_a_float32_keyframe_is_taken_as_it_is_stored_and_is_the_exact_step(scaled_run):
    timeline = RunTimeline.open(scaled_run)
    weights, source = weights_at(timeline, load_checkpoint(scaled_run), 3)
    assert source == "the float32 keyframe at step 3"
    recomputed = exact_weights(timeline, 3)
    assert weights.keys() == recomputed.keys()
    assert all(np.array_equal(weights[k].numpy(), recomputed[k]) for k in weights)


def test_onnx_carries_class_names_step_and_io_names_for_netron(scaled_run, tmp_path, capsys):
    import onnx

    out = tmp_path / "m.onnx"
    assert cli(capsys, "export", scaled_run, "--onnx", out, "--step", 5, "--json")[0] == 0
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["class_names"]) == [str(i) for i in range(10)] and meta["step"] == "5"
    assert meta["run"] == "scaled" and json.loads(meta["normalization"])["inside_the_graph"] is True
    assert [i.name for i in proto.graph.input] == ["pixels"] and [o.name for o in proto.graph.output] == ["scores"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert "step 5" in proto.doc_string and "pixels" in proto.graph.input[0].doc_string


# -- TensorBoard ----------------------------------------------------------------------------------------------

def read_events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reader = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    reader.Reload()
    return reader


def series(reader, tag):
    return [e.step for e in reader.Scalars(tag)], np.array([e.value for e in reader.Scalars(tag)], np.float32)


def test_tensorboard_export_reads_back_with_tensorboards_reader(scaled_run, tmp_path, capsys):
    code, text, err = cli(capsys, "export", scaled_run, "--tensorboard", tmp_path / "tb")
    assert code == 0, err
    assert f"view with: tensorboard --logdir {tmp_path / 'tb'}" in text
    reader = read_events(tmp_path / "tb" / "scaled")
    timeline = RunTimeline.open(scaled_run)
    history = timeline.history
    for tag, values in (("train/loss", history.step_loss), ("train/accuracy", history.step_accuracy),
                        ("train/learning_rate", history.step_lr)):
        steps, got = series(reader, tag)
        assert steps == list(range(1, 11)) and np.array_equal(got, values.values.astype(np.float32)), tag
    steps, got = series(reader, "epoch/train_loss")
    assert steps == [5, 10] and np.array_equal(got, np.float32([e.train_loss for e in history.epochs]))
    steps, got = series(reader, "test/accuracy")
    assert steps == [5, 10] and np.array_equal(got, np.float32([timeline.evaluations[s]["accuracy"] for s in (5, 10)]))
    assert series(reader, "update_ratio/conv1")[0] == [r["step"] for r in timeline.stats]
    for layer in ("conv1", "conv2", "dense1"):
        for prefix, key in (("weights", "weight_hist"), ("gradients", "grad_hist")):
            events = reader.Histograms(f"{prefix}/{layer}")
            assert [e.step for e in events] == [r["step"] for r in timeline.stats]
            recorded = timeline.stats[-1]["layers"][layer][key]
            last = events[-1].histogram_value
            assert list(last.bucket) == recorded["counts"] and last.num == sum(recorded["counts"])
            assert last.min == pytest.approx(recorded["low"]) and last.max == pytest.approx(recorded["high"])
    stored = timeline.keyframe_steps()
    for layer in ("conv1", "conv2"):
        images = reader.Images(f"filters/{layer}")
        assert [i.step for i in images] == stored and images[0].encoded_image_string.startswith(b"\x89PNG")
    assert "run/description/text_summary" in reader.Tags()["tensors"]


def test_exporting_a_run_again_replaces_its_event_files(scaled_run, tmp_path, capsys):
    for _ in range(2):
        assert cli(capsys, "export", scaled_run, "--tensorboard", tmp_path)[0] == 0
    assert len(list((tmp_path / "scaled").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scaled"]  # nothing left aside
    assert series(read_events(tmp_path / "scaled"), "train/loss")[0] == list(range(1, 11))


def test_filter_images_are_spread_on_a_log_scale():
    chosen = spread(range(0, 100_001, 7), 50)
    assert len(chosen) <= 50 and chosen[0] == 0 and chosen[-1] == 100_000 - 100_000 % 7
    assert sum(s < 1000 for s in chosen) > sum(s > 50_000 for s in chosen)  # denser where the network changes fast
    assert spread([5, 1, 3], 50) == [1, 3, 5]


def test_damaged_statistics_records_are_skipped(scaled_run, tmp_path, capsys):
    run = shutil.copytree(scaled_run, tmp_path / "damaged")
    damaged = {"conv1": {"weight_hist": {"counts": "x"}, "grad_hist": {"counts": [1], "low": 2, "high": 1}},
               "conv2": 5}
    with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
        for step in (10, "x", 10 ** 12, -3):  # bad figures; steps that are no step of the run (never a hang)
            fh.write(json.dumps({"t": "stats", "step": step, "layers": damaged}) + "\n")
    code, text, err = cli(capsys, "export", run, "--tensorboard", tmp_path / "tb", "--json")
    assert code == 0, err
    assert json.loads(text)["tensorboard"]["histograms"] == 6 * len(RunTimeline.open(scaled_run).stats)


# -- a run without a timeline ---------------------------------------------------------------------------------

def test_a_run_without_a_timeline_exports_its_last_step_and_its_curves(bare_run, tmp_path, capsys):
    code, _, err = cli(capsys, "export", bare_run, "--onnx", tmp_path / "m.onnx")
    assert code == 0, err
    checkpoint, data, pixels = run_data(bare_run)
    assert_same_predictions(onnx_scores(tmp_path / "m.onnx", pixels),
                            evaluate(checkpoint.build_model(), data.test, "test", checkpoint.step))
    code, _, err = cli(capsys, "export", bare_run, "--onnx", tmp_path / "m.onnx", "--step", 2)
    assert code == 2 and err.count("\n") == 1
    assert "no timeline" in err and f"only its last step, {checkpoint.step}, can be exported" in err
    code, text, err = cli(capsys, "export", bare_run, "--tensorboard", tmp_path / "tb")
    assert code == 0 and "note: this run has no timeline" in err and "histograms need one" in err
    reader = read_events(tmp_path / "tb" / "bare")
    steps, got = series(reader, "train/loss")
    assert steps == list(range(1, checkpoint.step + 1))
    assert np.array_equal(got, checkpoint.history.step_loss.values.astype(np.float32))
    assert series(reader, "test/accuracy")[1].tolist() == pytest.approx(checkpoint.history.test_accuracy)
    assert reader.Tags()["histograms"] == []
    assert [i.step for i in reader.Images("filters/conv1")] == [checkpoint.step]


def test_a_run_that_ended_before_its_checkpoint_exports_from_its_last_anchor(scaled_run, tmp_path, capsys):
    run = shutil.copytree(scaled_run, tmp_path / "crashed")
    (run / "checkpoint.safetensors").unlink()  # what a crash before the first save leaves: the timeline only
    code, text, err = cli(capsys, "export", run, "--onnx", tmp_path / "m.onnx", "--tensorboard", tmp_path / "tb")
    assert code == 0, err
    assert "step 10 (the anchor at step 10)" in text
    _, data, pixels = run_data(scaled_run)
    np.testing.assert_allclose(onnx_scores(tmp_path / "m.onnx", pixels),
                               load_checkpoint(scaled_run).build_model()(data.test.images).detach().numpy(), atol=1e-4)


def test_a_keyframe_that_does_not_fit_the_model_is_one_line(scaled_run, tmp_path, capsys):
    from cnnviz.timeline.store import encode_keyframe

    run = shutil.copytree(scaled_run, tmp_path / "damaged")
    (run / "keyframes" / "000000003.safetensors").write_bytes(
        encode_keyframe({"layers.conv1.weight": np.zeros(3, np.float32)}, "float32"))
    err = one_error_line(*cli(capsys, "export", run, "--onnx", tmp_path / "m.onnx", "--step", 3))
    assert "the stored weights of step 3 do not fit the run's model" in err and not (tmp_path / "m.onnx").exists()


def test_a_bare_checkpoint_file_exports_under_its_own_name(bare_run, tmp_path, capsys):
    file = shutil.copy(bare_run / "checkpoint.safetensors", tmp_path / "mine.safetensors")
    code, _, err = cli(capsys, "export", file, "--onnx", tmp_path / "m.onnx", "--tensorboard", tmp_path / "tb")
    assert code == 0, err
    assert (tmp_path / "m.onnx").stat().st_size > 10_000 and list((tmp_path / "tb" / "mine").iterdir())


# -- bad input: one line, nothing written ---------------------------------------------------------------------

def one_error_line(code, out, err):
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("case, expected", [
    ("onnx is a folder", "is a folder; --onnx needs a file name"),
    ("onnx under a file", "a part of this path is a file, not a folder (--onnx)"),
    ("onnx replaces a run file", "exists and is not a .onnx file; it is not replaced"),
    ("tensorboard is a file", "is a file; --tensorboard needs a folder"),
    ("tensorboard under a file", "a part of this path is a file, not a folder (--tensorboard)"),
])
def test_a_bad_output_path_is_one_line_before_any_work(scaled_run, tmp_path, capsys, case, expected):
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    target = {"onnx is a folder": ("--onnx", tmp_path), "onnx under a file": ("--onnx", a_file / "m.onnx"),
              "onnx replaces a run file": ("--onnx", a_file), "tensorboard is a file": ("--tensorboard", a_file),
              "tensorboard under a file": ("--tensorboard", a_file / "tb")}[case]
    # with a good output beside it, which must not be written either: every output is checked first
    other = ("--tensorboard", tmp_path / "tb") if target[0] == "--onnx" else ("--onnx", tmp_path / "ok.onnx")
    err = one_error_line(*cli(capsys, "export", scaled_run, *target, *other))
    assert expected in err
    assert a_file.read_text() == "keep me" and not (tmp_path / "ok.onnx").exists() and not (tmp_path / "tb").exists()


@pytest.mark.parametrize("option", ["--onnx", "--tensorboard"])
def test_an_unwritable_output_is_one_line(scaled_run, tmp_path, capsys, monkeypatch, option):
    folder = tmp_path / "ro"
    folder.mkdir()
    if outputs.os.geteuid() != 0:  # a real read-only folder (root writes anywhere, so there it is simulated)
        folder.chmod(0o500)
    else:
        def read_only(path, *args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system", str(path))

        monkeypatch.setattr(outputs, "open", read_only, raising=False)
    target = folder / "m.onnx" if option == "--onnx" else folder
    err = one_error_line(*cli(capsys, "export", scaled_run, option, target))
    folder.chmod(0o700)
    assert f"cannot write into {folder} ({option})" in err and list(folder.iterdir()) == []


def test_a_full_disk_while_writing_the_onnx_file_is_one_line(scaled_run, tmp_path, capsys, monkeypatch):
    import cnnviz.training.checkpoint as checkpoint_module

    def disk_full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", disk_full)
    err = one_error_line(*cli(capsys, "export", scaled_run, "--onnx", tmp_path / "m.onnx"))
    assert "m.onnx: the disk is full" in err and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--step", "11"], "step 11 is not in this run (it has steps 0 to 10)"),
    (["--step", "-1"], "step -1 is not in this run (it has steps 0 to 10)"),
    (["--step", "x"], "argument --step: invalid int value: 'x'"),
])
def test_a_step_out_of_range_is_one_line(scaled_run, tmp_path, capsys, argv, expected):
    err = one_error_line(*cli(capsys, "export", scaled_run, "--onnx", tmp_path / "m.onnx", *argv))
    assert expected in err and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("argv, expected", [
    ([], "nothing to export: give --onnx OUT.onnx, --tensorboard DIR, --gif OUT.gif or --mp4 OUT.mp4"),
    (["--tensorboard", "TB", "--step", "3"], "--step chooses the step of the --onnx model"),
])
def test_an_export_without_an_output_or_with_a_step_for_tensorboard_is_refused(scaled_run, tmp_path, capsys,
                                                                                argv, expected):
    argv = [str(tmp_path / "tb") if a == "TB" else a for a in argv]
    assert expected in one_error_line(*cli(capsys, "export", scaled_run, *argv))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("missing, option, expected", [
    (["onnx"], "--onnx", "the ONNX export needs onnx, which is not installed: pip install onnx"),
    (["tensorboardX"], "--tensorboard", "the TensorBoard export needs tensorboardX, which is not installed: "
                                        "pip install tensorboardX"),
    (["tensorboardX", "PIL"], "--tensorboard", "the TensorBoard export needs tensorboardX and pillow, which are not "
                                               "installed: pip install tensorboardX pillow"),
])
def test_a_missing_package_says_what_to_install(scaled_run, tmp_path, capsys, monkeypatch, missing, option, expected):
    for module in missing:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    out = tmp_path / ("m.onnx" if option == "--onnx" else "tb")
    err = one_error_line(*cli(capsys, "export", scaled_run, option, out))
    assert err == f"error: {expected}\n" and not out.exists()
