"""The playground's arithmetic: kernels, sliding windows and the output-size formula."""
import numpy as np

from cnnviz.inspect.convolution import KERNELS, apply_operation, output_size, size_formula


def test_output_size_matches_the_formula_and_torch():
    import torch
    import torch.nn.functional as F

    image = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    for stride, padding, name in [(1, 0, "Sobel x"), (2, 1, "Sobel y"), (3, 2, "Gaussian blur 5×5")]:
        kernel = KERNELS[name]
        ours = apply_operation(image, "Convolution", kernel, stride, padding)
        ref = F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None], stride=stride,
                       padding=padding)[0, 0].numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-5)
        assert ours.shape[0] == output_size(28, padding, kernel.shape[0], stride)


def test_pooling_and_impossible_windows():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(apply_operation(image, "Max pooling", np.zeros((2, 2)), 2, 0), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(apply_operation(image, "Average pooling", np.zeros((2, 2)), 2, 0),
                                  [[2.5, 4.5], [10.5, 12.5]])
    assert apply_operation(image, "Convolution", np.ones((5, 5)), 1, 0).shape == (0, 0)
    assert output_size(4, 0, 5, 1) <= 0


def test_formula_is_written_out_with_the_numbers():
    assert size_formula(28, 1, 3, 2) == ("O = (W + 2P - F) / S + 1 = (28 + 2*1 - 3) / 2 + 1 = 14   "
                                         "(27 / 2 = 13.5 is rounded down)")
    assert size_formula(28, 0, 5, 1).endswith("= 24")
