import numpy as np
import pytest

from ml.qc.transforms import (
    INVERSE,
    MIRROR_PARTNER,
    ORIENTATIONS,
    REFLECTIONS,
    apply_transform,
    invert,
    preprocess,
    to_gray,
)

# 2×3 image, every pixel distinct:
#  0 1 2
#  3 4 5
X = np.arange(6, dtype=np.uint8).reshape(2, 3)

EXPECTED = {
    "identity": [[0, 1, 2], [3, 4, 5]],
    "rotate_cw_90": [[3, 0], [4, 1], [5, 2]],
    "rotate_180": [[5, 4, 3], [2, 1, 0]],
    "rotate_ccw_90": [[2, 5], [1, 4], [0, 3]],
    "flip_horizontal": [[2, 1, 0], [5, 4, 3]],
    "flip_vertical": [[3, 4, 5], [0, 1, 2]],
    "transpose": [[0, 3], [1, 4], [2, 5]],
    "antitranspose": [[5, 2], [4, 1], [3, 0]],
}


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_orientation_exact_on_hand_made_array(name):
    out = apply_transform(X, name)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    assert out.tolist() == EXPECTED[name]


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_inverse_undoes_each_orientation_on_colour_image(name):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    fixed = apply_transform(apply_transform(rgb, name), INVERSE[name])
    assert np.array_equal(fixed, rgb)


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_mirror_partner_is_orientation_after_left_right_mirror(name):
    mirrored_then_oriented = apply_transform(apply_transform(X, "flip_horizontal"), name)
    assert np.array_equal(mirrored_then_oriented, apply_transform(X, MIRROR_PARTNER[name]))


def test_reflections_are_their_own_inverse_and_rotations_are_not_reflections():
    assert all(INVERSE[name] == name for name in REFLECTIONS)
    assert INVERSE["rotate_cw_90"] == "rotate_ccw_90"


def test_invert_exact_and_keeps_alpha():
    gray = np.array([[0, 1], [128, 255]], dtype=np.uint8)
    assert invert(gray).tolist() == [[255, 254], [127, 0]]
    rgba = np.array([[[10, 20, 30, 40]]], dtype=np.uint8)
    assert invert(rgba).tolist() == [[[245, 235, 225, 40]]]
    assert np.array_equal(apply_transform(invert(gray), "invert"), gray)


def test_invert_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        invert(np.zeros((2, 2), dtype=np.float32))


def test_unknown_transform_rejected():
    with pytest.raises(ValueError, match="unknown transform"):
        apply_transform(X, "rotate_45")


def test_to_gray_bt601_weights():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 100, 100]]], dtype=np.uint8)
    np.testing.assert_allclose(to_gray(rgb), [[76.245, 149.685, 29.07, 100.0]], rtol=1e-6)
    assert to_gray(X).tolist() == X.astype(np.float32).tolist()
    assert to_gray(X[..., None]).tolist() == X.astype(np.float32).tolist()


def test_preprocess_range_shape_and_constant_image():
    out = preprocess(np.full((50, 70), 255, dtype=np.uint8), 16)
    assert out.shape == (16, 16)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_preprocess_commutes_with_orientation(name):
    # Training corrupts the small preprocessed image; intake sees corrupted full-size files.
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(90, 130), dtype=np.uint8)
    a = preprocess(apply_transform(image, name), 16)
    b = np.ascontiguousarray(apply_transform(preprocess(image, 16), name))
    np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("name", ORIENTATIONS)
def test_torch_orientation_matches_numpy(name):
    import torch

    from ml.qc.model import orient_tensor

    batch = np.arange(2 * 1 * 3 * 4, dtype=np.float32).reshape(2, 1, 3, 4)
    out = orient_tensor(torch.from_numpy(batch), name).numpy()
    expected = np.stack([apply_transform(b[0], name) for b in batch])[:, None]
    assert np.array_equal(out, expected)
