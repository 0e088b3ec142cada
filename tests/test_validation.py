import numpy as np
import pytest
import torch

from pyrogen.validation import (
    as_data_tensor,
    as_examples,
    check_bool,
    check_choice,
    check_positive_int,
)


@pytest.mark.parametrize(
    "value, message",
    [
        (np.array([[1.0, np.nan]]), "x: contains NaN"),
        (np.array([[1.0, np.inf]]), "x: contains infinite"),
        (np.zeros((0, 2)), "x: is empty"),
        (np.zeros((2, 2, 2)), "x: expected an array with 2 dimension"),
    ],
)
def test_bad_arrays_are_refused_by_name(value, message):
    with pytest.raises(ValueError, match=message):
        as_data_tensor(value, "x", ndim=2)


@pytest.mark.parametrize("value", [np.array([["a", "b"]]), [[1, 2], [3]], np.array([1 + 2j])])
def test_non_numeric_values_are_refused(value):
    with pytest.raises(TypeError, match="x:"):
        as_data_tensor(value, "x")


def test_integers_become_the_default_float_and_floats_keep_their_dtype():
    assert as_data_tensor(np.array([1, 2]), "x").dtype == torch.get_default_dtype()
    assert as_data_tensor(np.array([1.0], dtype=np.float32), "x").dtype == torch.float32


def test_bool_tensors_are_refused():
    with pytest.raises(TypeError, match="x: expected a real-valued tensor"):
        as_data_tensor(torch.tensor([True]), "x")


def test_scalar_checks():
    assert check_positive_int(3, "k") == 3
    with pytest.raises(ValueError, match="k: must be at least 1"):
        check_positive_int(0, "k")
    with pytest.raises(TypeError, match="k: expected an integer"):
        check_positive_int(2.5, "k")
    with pytest.raises(TypeError, match="k: expected an integer"):
        check_positive_int(True, "k")
    with pytest.raises(ValueError, match="mode: must be one of 'a', 'b'"):
        check_choice("c", "mode", ("a", "b"))
    assert check_bool(False, "flag") is False
    for bad in (0, 1, "yes", None):
        with pytest.raises(TypeError, match="flag: expected True or False"):
            check_bool(bad, "flag")


def test_auroc_is_the_mann_whitney_probability():
    from pyrogen.metrics import auroc

    assert auroc([0.0, 1.0], [2.0, 3.0]) == 1.0
    assert auroc([2.0, 3.0], [0.0, 1.0]) == 0.0
    assert auroc([1.0, 2.0], [1.0, 2.0]) == 0.5  # ties count half
    assert auroc([0.0, 2.0], [1.0]) == 0.5
    with pytest.raises(ValueError, match="outlier_scores: is empty"):
        auroc([1.0], [])
    with pytest.raises(ValueError, match="inlier_scores: contains NaN"):
        auroc([np.nan], [1.0])


_SIZE = 3 * 2**21  # one and a half chunks of the check


@pytest.mark.parametrize("where", [0, 2**22 + 5, _SIZE - 1])
@pytest.mark.parametrize("bad", [0.5, -1.0, 2.0, float("nan"), float("inf")])
def test_one_bad_value_anywhere_in_a_large_binary_set_is_found(where, bad):
    # more elements than one chunk of the check: the first, one in the second chunk
    # and the last one
    x = torch.zeros(_SIZE // 784 + 1, 784)
    x.view(-1)[:_SIZE:7] = 1.0
    like = torch.zeros(1)
    assert as_examples(x, (784,), like, binary=True) is not None
    x.view(-1)[where] = bad
    message = "NaN|infinite" if not np.isfinite(bad) else "binary"
    with pytest.raises(ValueError, match=message):
        as_examples(x, (784,), like, binary=True)
    classes = torch.zeros(_SIZE // 784 + 1, 784)
    assert as_examples(classes, (784,), like, num_classes=3) is not None
    classes.view(-1)[where] = bad if bad != 2.0 else 3.0
    with pytest.raises(ValueError, match="NaN|infinite" if not np.isfinite(bad) else "classes"):
        as_examples(classes, (784,), like, num_classes=3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_binary_check_refuses_every_float_next_to_0_and_1(dtype):
    # the check is arithmetic (x - x * x == 0), not a comparison: the floats nearest to
    # 0 and 1, the smallest subnormal and huge values must all still be refused
    info = torch.finfo(dtype)
    like = torch.zeros(1, dtype=dtype)
    zero, one = torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype)
    near = [
        torch.nextafter(zero, one),
        torch.nextafter(zero, -one),
        torch.nextafter(one, zero),
        torch.nextafter(one, 2 * one),
        torch.tensor(info.tiny, dtype=dtype),
        torch.tensor(info.max, dtype=dtype),
        torch.tensor(-info.max, dtype=dtype),
        torch.tensor(float("-inf"), dtype=dtype),
    ]
    base = torch.tensor([[0.0, 1.0, -0.0, 1.0]], dtype=dtype)
    assert as_examples(base, (4,), like, binary=True).tolist() == [[0.0, 1.0, 0.0, 1.0]]
    for value in near:
        x = base.clone()
        x[0, 2] = value
        with pytest.raises(ValueError, match="binary|infinite"):
            as_examples(x, (4,), like, binary=True)
    classes = torch.tensor([[0.0, 2.0, 1.0, 2.0]], dtype=dtype)
    assert as_examples(classes, (4,), like, num_classes=3) is not None
    for value in [torch.nextafter(2 * one, 3 * one), torch.nextafter(2 * one, one), 0.5 * one]:
        x = classes.clone()
        x[0, 0] = value
        with pytest.raises(ValueError, match="classes"):
            as_examples(x, (4,), like, num_classes=3)


@pytest.mark.parametrize("bad, kind", [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_the_finite_check_finds_a_bad_value_in_any_chunk(bad, kind):
    from pyrogen.validation import check_finite_values

    x = torch.zeros(5, 3)
    x[3, 1] = bad  # element 10: the third chunk of four
    with pytest.raises(ValueError, match=rf"x: contains {kind} values \(first at index \(3, 1\)\)"):
        check_finite_values(x, "x", chunk=4)
    check_finite_values(torch.zeros(5, 3), "x", chunk=4)
