"""Activation maximisation in the filters view's detail pane: the selected filter's preferred input."""
import numpy as np
import torch

from cnnviz.gui.widgets.filters_view import FiltersView
from cnnviz.inspect._model import find_layer


def _fires(model, layer, k, pixels, norm):
    x = (torch.from_numpy(np.asarray(pixels, np.float32))[None, None] - norm.mean) / norm.std
    out = []
    handle = find_layer(model, layer).register_forward_hook(lambda m, a, o: out.append(o))
    with torch.no_grad():
        model(x)
    handle.remove()
    return float(torch.relu(out[0][0, k]).mean())


def test_selected_filter_shows_its_preferred_input_for_the_weights_on_show(qtbot, session, trained_snapshot):
    session.apply_snapshot(trained_snapshot)
    view = FiltersView(session)
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitUntil(lambda: len(view.layer_names()) > 0)
    assert view.actmax.image() is None
    view.select_filter("conv1", 2)
    qtbot.waitUntil(lambda: view.actmax.image() is not None, timeout=20000)
    image = view.actmax.image()
    norm = session.data.normalization
    assert image.shape == session.input_size and 0 <= image.min() and image.max() <= 1
    faint = np.full(session.input_size, 0.05, np.float32)
    assert _fires(session.model, "conv1", 2, image, norm) > _fires(session.model, "conv1", 2, faint, norm)
    assert f"step {trained_snapshot.step}" in view.actmax.caption.text()
    # another filter: the old picture goes, the new one comes
    view.select_filter("conv2", 0)
    assert view.actmax.image() is None
    qtbot.waitUntil(lambda: view.actmax.image() is not None, timeout=20000)
    assert "conv2 filter 0" in view.actmax.caption.text()
    view.actmax.shutdown()
