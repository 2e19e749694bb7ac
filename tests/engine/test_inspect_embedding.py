"""embed / nearest: the classifier's input, batch-independent, and neighbours that include the image itself."""
import numpy as np
import pytest
import torch

from cnnviz.errors import SpecError
from cnnviz.inspect.activations import predict_proba
from cnnviz.inspect.embedding import embed, embedding_layer, nearest, predict_and_embed
from cnnviz.models import build_model
from cnnviz.presets import get_preset


def _model():
    torch.manual_seed(0)
    return build_model(get_preset("basic-cnn").spec)


def test_embedding_is_the_classifier_input():
    model = _model()
    name, classifier = embedding_layer(model)
    x = torch.rand(5, 1, 28, 28)
    e = embed(model, x, batch=2)  # several chunks give the same rows as one pass
    assert e.shape == (5, classifier.in_features) and e.dtype == np.float32
    with torch.no_grad():
        logits = classifier(torch.from_numpy(e))
        assert torch.allclose(logits, model.eval()(x), atol=1e-5)
    assert np.allclose(embed(model, x[2]), e[2:3], atol=1e-6)


def test_one_pass_gives_the_probabilities_and_the_embedding_of_two():
    model = _model()
    x = torch.rand(1, 28, 28)
    probs, e = predict_and_embed(model, x)
    assert probs.shape == (10,) and np.allclose(probs, predict_proba(model, x), atol=1e-6)
    assert np.allclose(e, embed(model, x)[0], atol=1e-6)
    assert model.training  # the model's mode is restored (it keeps training in the window)


def test_one_pass_on_a_model_without_a_dense_layer_has_no_embedding():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 28), torch.nn.Flatten())
    probs, e = predict_and_embed(model, torch.rand(1, 28, 28))
    assert e is None and probs.shape == (3,) and probs.sum() == pytest.approx(1, abs=1e-5)


def test_a_model_without_a_dense_layer_is_told():
    with pytest.raises(SpecError, match="no dense"):
        embedding_layer(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)))


def test_nearest_is_sorted_includes_itself_and_breaks_ties_by_index():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(50, 6)).astype(np.float32)
    bank[30] = bank[7]  # an exact duplicate: the tie goes to the lower index
    found = nearest(bank, bank[7], k=4)
    assert list(found.indices[:2]) == [7, 30] and found.distances[0] == pytest.approx(0, abs=1e-3)
    assert np.all(np.diff(found.distances) >= 0)
    brute = np.argsort(np.linalg.norm(bank - bank[7], axis=1), kind="stable")[:4]
    assert list(found.indices) == list(brute)
    assert len(nearest(bank, bank[0], k=500).indices) == 50
    with pytest.raises(SpecError):
        nearest(bank, np.zeros(3), k=2)
