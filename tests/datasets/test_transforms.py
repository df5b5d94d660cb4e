"""minicnn.datasets.transforms: to_float_nhwc and one_hot."""

import numpy as np
import pytest

from minicnn import datasets


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_float_nhwc(dtype):
    x = np.array([[[0, 255], [51, 102]]], np.uint8)
    out = datasets.to_float_nhwc(x, dtype=dtype)
    assert out.shape == (1, 2, 2, 1) and out.dtype == dtype
    np.testing.assert_array_equal(out[..., 0], x.astype(dtype) / 255)
    rgb = np.zeros((2, 3, 3, 3), np.uint8)
    assert datasets.to_float_nhwc(rgb).shape == (2, 3, 3, 3)
    assert datasets.to_float_nhwc(rgb).dtype == np.float32


@pytest.mark.parametrize("x,dtype", [(np.zeros((1, 2, 2), np.float32), np.float32),
                                     (np.zeros((1, 2, 2), np.uint8), np.int32),
                                     (np.zeros((2, 2), np.uint8), np.float32)])
def test_to_float_nhwc_rejects_bad_input(x, dtype):
    with pytest.raises(ValueError):
        datasets.to_float_nhwc(x, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_hot(dtype):
    out = datasets.one_hot(np.array([3, 0, 9], np.uint8), dtype=dtype)
    assert out.dtype == dtype and out.shape == (3, 10)
    assert out.sum() == 3 and out[0, 3] == out[1, 0] == out[2, 9] == 1
    np.testing.assert_array_equal(datasets.one_hot([[1], [2]], num_classes=3),
                                  [[0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(datasets.one_hot(np.array([2.0, 0.0]), num_classes=3),
                                  [[0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize("y,match", [([1, 10, 2], "label 10 at index 1"),
                                     ([0, 1, -1], "label -1 at index 2"),
                                     (np.array([0.0, 1.5]), "label 1.5 at index 1 is not an integer"),
                                     (np.array(["a"]), "must be integers")])
def test_one_hot_rejects_bad_labels(y, match):
    with pytest.raises(ValueError, match=match):
        datasets.one_hot(y)
