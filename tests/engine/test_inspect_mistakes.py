"""confusion_matrix / per_class_accuracy / most_confident_mistakes / cell_examples / most_confused_pairs."""
import numpy as np
import pytest
import torch

from cnnviz.errors import DataError
from cnnviz.inspect import (
    cell_examples,
    confusion_matrix,
    most_confident_mistakes,
    most_confused_pairs,
    per_class_accuracy,
)

# Hand-made: 4 classes, class 3 never occurs.
#   index:     0  1  2  3  4  5  6  7  8  9
LABELS = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
PREDICTED = [0, 0, 2, 1, 2, 2, 0, 2, 1, 2]
EXPECTED = np.array(
    [
        [2, 0, 1, 0],  # true 0: two right, one called 2
        [1, 1, 2, 0],  # true 1: one right, two called 2, one called 0
        [0, 1, 2, 0],  # true 2: two right, one called 1
        [0, 0, 0, 0],
    ]
)


def test_confusion_matrix_rows_are_true_columns_predicted():
    c = confusion_matrix(np.array(PREDICTED), np.array(LABELS), 4)
    assert c.dtype == np.int64 and c.shape == (4, 4)
    np.testing.assert_array_equal(c, EXPECTED)
    np.testing.assert_array_equal(confusion_matrix(torch.tensor(PREDICTED), torch.tensor(LABELS), 4), EXPECTED)
    np.testing.assert_array_equal(confusion_matrix(np.array([], int), np.array([], int), 3), np.zeros((3, 3)))


def test_confusion_matrix_rejects_mismatched_or_out_of_range_input():
    with pytest.raises(DataError, match="3 predictions but 2 labels"):
        confusion_matrix(np.array([0, 1, 1]), np.array([0, 1]), 2)
    with pytest.raises(DataError, match="label 7 .* 4 classes"):
        confusion_matrix(np.array([0, 1]), np.array([0, 7]), 4)
    with pytest.raises(DataError, match="prediction -1"):
        confusion_matrix(np.array([0, -1]), np.array([0, 1]), 4)
    with pytest.raises(DataError):
        confusion_matrix(np.array([0.5, 1.0]), np.array([0, 1]), 4)


def test_per_class_accuracy_has_no_nan():
    acc = per_class_accuracy(EXPECTED)
    np.testing.assert_allclose(acc, [2 / 3, 1 / 4, 2 / 3, 0.0])


def test_most_confused_pairs_off_diagonal_by_count():
    assert most_confused_pairs(EXPECTED, k=2) == [(1, 2, 2), (0, 2, 1)]
    # Ties keep (true, predicted) order; zero cells never appear; the diagonal never appears.
    assert most_confused_pairs(EXPECTED, k=10) == [(1, 2, 2), (0, 2, 1), (1, 0, 1), (2, 1, 1)]
    assert most_confused_pairs(np.diag([5, 5])) == []


def test_most_confident_mistakes_sorted_by_predicted_probability():
    probs = np.array(
        [
            [0.9, 0.1, 0.0],  # right (label 0), very confident: never a mistake
            [0.2, 0.7, 0.1],  # wrong (label 0), 0.7
            [0.1, 0.3, 0.6],  # wrong (label 1), 0.6
            [0.05, 0.05, 0.9],  # wrong (label 0), 0.9
            [0.3, 0.4, 0.3],  # right (label 1)
            [0.1, 0.8, 0.1],  # wrong (label 2), 0.8
        ]
    )
    labels = np.array([0, 0, 1, 0, 1, 2])
    np.testing.assert_array_equal(most_confident_mistakes(probs, labels), [3, 5, 1, 2])
    np.testing.assert_array_equal(most_confident_mistakes(probs, labels, k=2), [3, 5])
    assert most_confident_mistakes(probs, probs.argmax(axis=1)).size == 0
    with pytest.raises(DataError):
        most_confident_mistakes(probs, labels[:3])


def test_cell_examples_is_the_gallery_of_one_cell():
    np.testing.assert_array_equal(cell_examples(PREDICTED, LABELS, 1, 2), [4, 5])
    np.testing.assert_array_equal(cell_examples(PREDICTED, LABELS, 0, 0), [0, 1])
    assert cell_examples(PREDICTED, LABELS, 3, 3).size == 0
    probs = np.full((10, 4), 0.1)
    probs[4, 2], probs[5, 2] = 0.5, 0.7
    np.testing.assert_array_equal(cell_examples(PREDICTED, LABELS, 1, 2, probs=probs), [5, 4])
