import numpy as np
import pytest
from scipy.special import expit

from ml.qc.scores import DetectorConfig, build_scores, decision_scores
from ml.qc.transforms import ORIENTATIONS

ALL_ON = {"rotation": True, "flip": True, "inversion": True, "ood": True}
THRESHOLDS = {"rotation": 0.0, "flip": 0.0, "inversion": 0.0, "ood": 1.0}


def one_hot(name, high=10.0):
    logits = np.zeros(len(ORIENTATIONS))
    logits[ORIENTATIONS.index(name)] = high
    return logits


def test_clean_image_has_no_flags():
    [s] = build_scores(
        one_hot("identity")[None],
        np.array([-5.0]),
        np.array([0.5]),
        DetectorConfig(ALL_ON, THRESHOLDS),
    )
    assert s.flags == ()
    assert not s.flagged
    assert s.p_rotated == pytest.approx(
        expit(np.log(3) - 10.0 - np.log1p(4 * np.exp(-10.0))), rel=1e-6
    )
    assert s.p_inverted == pytest.approx(expit(-5.0))


def test_rotated_inverted_out_of_place_image_flags_with_fixes():
    [s] = build_scores(
        one_hot("rotate_cw_90")[None],
        np.array([4.0]),
        np.array([2.5]),
        DetectorConfig(ALL_ON, THRESHOLDS),
    )
    assert [f.detector for f in s.flags] == ["rotation", "inversion", "ood"]
    rotation, inversion, ood = s.flags
    assert rotation.fix == "rotate_ccw_90"
    assert rotation.fix_text == "rotate 90° counterclockwise back"
    assert s.rotation_deg_cw == 90
    assert s.fix_angle_cw == 270
    assert inversion.fix == "invert"
    assert inversion.fix_text == "invert intensities back"
    assert ood.fix is None
    assert (ood.score, ood.threshold) == (2.5, 1.0)


def test_vertical_flip_flags_flip_with_axis():
    [s] = build_scores(
        one_hot("flip_vertical")[None],
        np.array([-4.0]),
        np.array([0.0]),
        DetectorConfig(ALL_ON, THRESHOLDS),
    )
    assert [f.detector for f in s.flags] == ["flip"]
    assert s.flip_axis == "vertical"
    assert s.flags[0].fix == "flip_vertical"


def test_disabled_flip_merges_mirrored_orientations_into_rotation():
    enabled = {**ALL_ON, "flip": False}
    logits = np.zeros((2, len(ORIENTATIONS)))
    # "upside down": mass split between rotate_180 and its mirror partner flip_vertical.
    logits[0, ORIENTATIONS.index("rotate_180")] = 5.0
    logits[0, ORIENTATIONS.index("flip_vertical")] = 5.0
    # upright: identity and its mirror partner flip_horizontal.
    logits[1, ORIENTATIONS.index("identity")] = 5.0
    logits[1, ORIENTATIONS.index("flip_horizontal")] = 5.0
    upside_down, upright = build_scores(
        logits, np.array([-3.0, -3.0]), np.array([0.0, 0.0]), DetectorConfig(enabled, THRESHOLDS)
    )
    assert [f.detector for f in upside_down.flags] == ["rotation"]
    assert upside_down.flags[0].fix == "rotate_180"
    assert upside_down.p_flipped is None
    assert upside_down.flip_axis is None
    assert upright.flags == ()
    [off] = build_scores(
        logits[:1],
        np.array([-3.0]),
        np.array([0.0]),
        DetectorConfig({**enabled, "rotation": False}, THRESHOLDS),
    )
    assert (off.p_rotated, off.rotation_deg_cw, off.flags) == (None, 0, ())
    dec = decision_scores(logits, np.zeros(2), flip_enabled=False)
    # Six "rotated" classes (three rotations and their mirrors) against two upright ones.
    assert dec["rotation"][0] == pytest.approx(np.log(2 * np.exp(5.0) + 4) - np.log(2))
    assert dec["rotation"][1] == pytest.approx(np.log(6) - np.log(2 * np.exp(5.0)))


def test_to_dict_is_json_ready():
    import json

    [s] = build_scores(
        one_hot("rotate_180")[None],
        np.array([0.5]),
        np.array([3.0]),
        DetectorConfig(ALL_ON, THRESHOLDS),
    )
    data = json.loads(json.dumps(s.to_dict()))
    assert data["rotation_deg_cw"] == 180
    assert [f["detector"] for f in data["flags"]] == ["rotation", "inversion", "ood"]
