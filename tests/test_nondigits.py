"""Tests of digitvae.data.nondigits (the non-digit generator) and of the is-digit rule in
digitvae.runtime.novelty. Fast: small batches; the model checks use the artifacts that
``DigitVAE.load()`` finds (``$DIGITVAE_ARTIFACTS`` or the shipped ones) and skip without."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("cv2")

from digitvae.runtime import novelty  # noqa: E402
from digitvae.data.nondigits import KINDS, glyphs, ink_patch, mnist_normalise, nondigits  # noqa: E402


@pytest.fixture(scope="module")
def vae():
    from digitvae.runtime import ArtifactError, DigitVAE

    try:
        return DigitVAE.load()
    except ArtifactError as exc:
        pytest.skip(f"no artifacts to test the is-digit rule with ({exc})")


# --- the generator ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_gives_float32_crops_in_range(kind):
    crops = nondigits(kind, 12, seed=1)
    assert crops.dtype == np.float32 and crops.shape == (12, 28, 28)
    assert np.isfinite(crops).all() and crops.min() >= 0.0 and crops.max() <= 1.0
    if kind == "blank":
        assert not crops.any()
    else:
        assert (crops.reshape(12, -1).max(axis=1) > 0).all(), "every non-blank crop carries some ink"


@pytest.mark.parametrize("kind", KINDS)
def test_generator_is_seeded_and_reproducible(kind):
    a = nondigits(kind, 6, seed=7)
    assert np.array_equal(a, nondigits(kind, 6, seed=7))
    assert np.array_equal(a[:3], nondigits(kind, 3, seed=7)), "crop i does not depend on how many are drawn"
    if kind != "blank":
        assert not np.array_equal(a, nondigits(kind, 6, seed=8))


def test_glyphs_of_other_characters_are_reproducible_crops():
    crops = glyphs("ij;", 6, seed=2)
    assert crops.dtype == np.float32 and crops.shape == (6, 28, 28) and crops.max() == pytest.approx(1.0)
    assert np.array_equal(crops[:3], glyphs("ij;", 3, seed=2)) and not np.array_equal(crops, glyphs("ij;", 6, seed=3))
    assert glyphs("x", 0).shape == (0, 28, 28)
    for bad in ("", "a b", "é", 7):
        with pytest.raises(ValueError, match="characters: expected printable ASCII without spaces"):
            glyphs(bad, 2)
    with pytest.raises(ValueError, match="n: expected a count >= 0, got -1"):
        glyphs("ij", -1)


def test_kinds_differ_from_each_other():
    assert not np.array_equal(ink_patch("lines", 0, 0), ink_patch("blobs", 0, 0))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="kind"):
        nondigits("squiggles", 3)
    with pytest.raises(ValueError, match="n"):
        nondigits("noise", -1)
    with pytest.raises(ValueError, match="2-D"):
        mnist_normalise(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="finite"):
        mnist_normalise(np.full((5, 5), np.nan))


def test_normalisation_is_mnists():
    assert not mnist_normalise(np.zeros((40, 30))).any(), "no ink gives the all-black frame"
    patch = np.zeros((90, 50), np.float32)
    patch[10:80, 20:26] = 0.4  # a faint upright bar in a corner of a large patch
    crop = mnist_normalise(patch)
    rows, cols = np.nonzero(crop.any(axis=1))[0], np.nonzero(crop.any(axis=0))[0]
    assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 < 20, "long side fitted to the 20-pixel box"
    assert crop.max() == pytest.approx(1.0, abs=0.01), "ink scaled so that it peaks at 1"
    weights = crop / crop.sum()
    yy, xx = np.mgrid[0:28, 0:28]
    assert abs((weights * yy).sum() - 13.5) <= 1.01 and abs((weights * xx).sum() - 13.5) <= 1.01


def test_importing_the_generator_does_not_import_opencv():
    code = "import sys, digitvae.data.nondigits; assert 'cv2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- the is-digit rule ------------------------------------------------------------------


def test_thresholds_round_trip_through_the_manifest():
    rng = np.random.default_rng(0)
    images = (rng.random((400, 28, 28)) < 0.15).astype(np.float32)
    score = rng.normal(100, 10, 400).astype(np.float32)
    probabilities = rng.dirichlet(np.full(10, 0.2), 400).astype(np.float32)
    t = novelty.calibrate(score, probabilities, images)
    assert t.features == novelty.FEATURES
    again = novelty.Thresholds.from_manifest(t.to_manifest())
    assert np.allclose(novelty.oddness(again, score, probabilities, images), novelty.oddness(t, score, probabilities, images))
    rejected = (novelty.oddness(t, score, probabilities, images) > 1).mean()
    assert rejected <= novelty.SHAPE_TAIL + novelty.CONFIDENCE_TAIL + 0.01
    broken = {**t.to_manifest(), "features": ["log_score"]}
    with pytest.raises(ValueError, match="features"):
        novelty.Thresholds.from_manifest(broken)
    with pytest.raises(ValueError, match="min_confidence"):
        novelty.Thresholds.from_manifest({**t.to_manifest(), "min_confidence": [0.5] * 9 + [1.5]})
    with pytest.raises(ValueError, match="min_confidence must be 10 numbers"):
        novelty.Thresholds.from_manifest({**t.to_manifest(), "min_confidence": [0.5] * 9})
    older = {k: v for k, v in t.to_manifest().items() if k != "min_confidence"}
    with pytest.raises(ValueError, match="incomplete"):
        novelty.Thresholds.from_manifest(older)
    manifest = t.to_manifest()
    with pytest.raises(ValueError, match="incomplete"):  # a manifest from before the joint test
        novelty.Thresholds.from_manifest({k: v for k, v in manifest.items() if k != "max_joint"})
    with pytest.raises(ValueError, match="one value per level"):
        novelty.Thresholds.from_manifest({**manifest, "shape_survival": manifest["shape_survival"][:-1]})
    with pytest.raises(ValueError, match="must not fall"):
        novelty.Thresholds.from_manifest({**manifest, "doubt_survival": manifest["doubt_survival"][::-1]})
    with pytest.raises(ValueError, match="max_joint"):
        novelty.Thresholds.from_manifest({**manifest, "max_joint": float("nan")})
    for field in ("max_half_turn", "max_spokes", "star_half_turn"):
        with pytest.raises(ValueError, match=f"incomplete: no '{field}'"):  # from before that gate
            novelty.Thresholds.from_manifest({k: v for k, v in manifest.items() if k != field})
        for bad in ([0.8] * 9, [0.8] * 9 + [float("nan")], [0.8] * 9 + [0.0]):
            with pytest.raises(ValueError, match=f"{field} must be 10 positive numbers"):
                novelty.Thresholds.from_manifest({**manifest, field: bad})


def test_the_joint_test_rejects_what_is_a_little_odd_on_both_counts():
    rng = np.random.default_rng(3)
    n = 4000
    images = (rng.random((n, 28, 28)) < 0.15).astype(np.float32)
    score = rng.normal(100, 10, n).astype(np.float32)
    probabilities = rng.dirichlet(np.full(10, 0.3), n).astype(np.float32)
    t = novelty.calibrate(score, probabilities, images)
    values = novelty.tests(t, score, probabilities, images)
    assert set(values) == {"profile", "confidence", "joint", "symmetry", "star", "dot"}
    ranked = np.maximum.reduce([values["profile"], values["confidence"], values["joint"]])
    gated = ranked
    for gate in ("symmetry", "star", "dot"):
        gated = np.where(values[gate] > 1, np.maximum(gated, values[gate]), gated)
    assert np.array_equal(novelty.oddness(t, score, probabilities, images), gated)
    # Gates left out are neither measured nor applied.
    assert set(novelty.tests(t, score, probabilities, images, gates=("star",))) == {"profile", "confidence", "joint", "star"}
    assert np.array_equal(novelty.oddness(t, score, probabilities, images, gates=()), ranked)
    with pytest.raises(ValueError, match="gates: expected some of symmetry, star, dot, got spots"):
        novelty.tests(t, score, probabilities, images, gates=("dot", "spots"))
    assert (values["joint"] > 1).mean() == pytest.approx(novelty.JOINT_TAIL, abs=0.002)
    # Values each in its own test's outer 0.5% (so each test alone passes them) are, together,
    # rarer than the joint test allows; each in its outer 20% is not.
    level = list(novelty.SURVIVAL_LEVELS)
    for share, odd in ((0.005, True), (0.2, False)):
        at = int(np.argmin(np.abs(np.log(level) - np.log(share))))
        shape, doubt = t.shape_survival[at], t.doubt_survival[at]
        assert shape <= 1 and doubt <= 1
        joint = (novelty._surprise(np.array([shape]), t.survival_levels, t.shape_survival)
                 + novelty._surprise(np.array([doubt]), t.survival_levels, t.doubt_survival)) / t.max_joint
        assert (joint[0] > 1) == odd, (share, joint)


def test_a_crop_the_classifier_cannot_read_is_not_a_digit():
    # Calibrated on confidently read "digits": the same crops read with a flat output are
    # odd, whatever the rest of their profile.
    rng = np.random.default_rng(1)
    images = (rng.random((400, 28, 28)) < 0.15).astype(np.float32)
    score = rng.normal(100, 10, 400).astype(np.float32)
    sure = np.full((400, 10), 0.001, np.float32)
    sure[np.arange(400), rng.integers(0, 10, 400)] = 0.991
    sure[:40, 0] += rng.uniform(0.0, 0.3, 40)  # a few less sure, so the quantile is not flat
    sure /= sure.sum(axis=1, keepdims=True)
    t = novelty.calibrate(score, sure, images)
    assert all(0.5 < bound < 0.995 for bound in t.min_confidence)
    flat = np.full((400, 10), 0.1, np.float32)
    assert (novelty.oddness(t, score, sure, images) <= 1).mean() >= 0.98
    assert (novelty.oddness(t, score, flat, images) > 1).all()


def test_each_digit_has_its_own_confidence_bound():
    # Validation "digits": 4s always read surely, 5s often doubtfully, no 7 at all.
    rng = np.random.default_rng(2)
    n = 1000
    images = (rng.random((2 * n, 28, 28)) < 0.15).astype(np.float32)
    score = rng.normal(100, 10, 2 * n).astype(np.float32)
    top = np.concatenate([rng.uniform(0.9, 1.0, n), rng.uniform(0.2, 1.0, n)])
    read = np.repeat([4, 5], n)
    probabilities = np.tile(((1 - top) / 9)[:, None], (1, 10))
    probabilities[np.arange(2 * n), read] = top
    t = novelty.calibrate(score, probabilities, images)
    assert t.min_confidence[4] > 0.89 and t.min_confidence[5] < 0.25
    assert t.min_confidence[7] == pytest.approx(np.quantile(top, novelty.CONFIDENCE_TAIL))  # too few: all digits' bound
    # The same doubt (so the same profile) is odd on a 4 and fine on a 5.
    half = np.full((2, 10), 0.5 / 9)
    half[0, 4] = half[1, 5] = 0.5
    odd = novelty.oddness(t, score[:2], half, images[:2])
    assert odd[0] > 1 and odd[0] > odd[1]


def test_features_are_finite_for_blank_and_full_crops():
    images = np.stack([np.zeros((28, 28)), np.ones((28, 28))]).astype(np.float32)
    values = novelty.features(np.array([30.0, 500.0]), np.full((2, 10), 0.1), images)
    assert values.shape == (2, len(novelty.FEATURES)) and np.isfinite(values).all()


def test_plus_signs_look_like_themselves_turned_a_quarter_and_digits_do_not(test_images):
    plus = np.zeros((2, 28, 28), np.float32)
    plus[0, 12:16, 4:24] = plus[0, 4:24, 12:16] = 1.0  # a bold plus, centred
    plus[1] = np.eye(28, dtype=np.float32) + np.eye(28, dtype=np.float32)[::-1]  # an x
    turn = novelty.FEATURES.index("quarter_turn")
    crossed = novelty.features(np.full(2, 100.0), np.full((2, 10), 0.1), plus)[:, turn]
    assert (crossed > 0.95).all()
    images, _ = test_images
    digits = novelty.features(np.full(len(images), 100.0), np.full((len(images), 10), 0.1), images)[:, turn]
    assert np.median(digits) < 0.5 and np.quantile(digits, 0.99) < 0.9


def test_crosses_stars_and_bars_look_like_themselves_turned_half_and_most_digits_do_not(test_images):
    marks = np.zeros((4, 28, 28), np.float32)
    marks[0, 12:16, 4:24] = marks[0, 4:24, 12:16] = 1.0  # a plus
    marks[1] = np.eye(28, dtype=np.float32) + np.eye(28, dtype=np.float32)[::-1]  # an x
    i, j = np.mgrid[:28, :28] - 13.5
    for angle in np.deg2rad([0, 60, 120]):  # a star: three bars through one point
        along, across = i * np.sin(angle) + j * np.cos(angle), i * np.cos(angle) - j * np.sin(angle)
        marks[2][(np.abs(across) < 1.2) & (np.abs(along) < 9)] = 1.0
    marks[3, 6:8, 3:13] = marks[3, 2:12, 7:9] = 1.0  # a small plus far off the crop's centre
    turned = novelty.half_turn(marks)
    assert (turned > 0.9).all(), turned
    images, labels = test_images
    asymmetric = np.isin(labels, [2, 3, 4, 6, 7, 9])
    digits = novelty.half_turn(images[asymmetric])
    assert np.median(digits) < 0.5 and np.quantile(digits, 0.99) < 0.85


def test_the_half_turn_gate_rejects_a_4_that_looks_the_same_turned_and_keeps_a_1():
    # Validation "digits": 4s and 1s, as the classifier reads them; the 4s are lopsided
    # (an L), the 1s bars. A plus sign read as a 4 is odd; the same plus read as a 1 is not.
    n = 600
    ell = np.zeros((28, 28), np.float32)
    ell[6:22, 8:11] = ell[19:22, 8:20] = 1.0
    bar = np.zeros((28, 28), np.float32)
    bar[6:22, 13:15] = 1.0
    rng = np.random.default_rng(4)
    images = np.concatenate([np.repeat(ell[None], n, 0), np.repeat(bar[None], n, 0)])
    images = np.clip(images + rng.uniform(0, 0.3, images.shape).astype(np.float32) * images, 0, 1)
    read = np.repeat([4, 1], n)
    probabilities = np.full((2 * n, 10), 0.01 / 9, np.float32)
    probabilities[np.arange(2 * n), read] = 0.99
    score = rng.normal(100, 5, 2 * n).astype(np.float32)
    t = novelty.calibrate(score, probabilities, images)
    assert t.max_half_turn[4] < 0.8 and t.max_half_turn[1] > 0.95
    plus = np.zeros((2, 28, 28), np.float32)
    plus[:, 12:15, 6:22] = plus[:, 6:22, 12:15] = 1.0
    as_four, as_one = probabilities[[0]], probabilities[[n]]
    values = novelty.tests(t, score[:2], np.concatenate([as_four, as_one]), plus)
    assert values["symmetry"][0] > 1 >= values["symmetry"][1]
    odd = novelty.oddness(t, score[:2], np.concatenate([as_four, as_one]), plus)
    assert odd[0] >= values["symmetry"][0] > 1


def _star(arms: list[tuple[float, tuple[float, float]]], width: float = 1.0) -> np.ndarray:
    """A thin star: one bar per (angle in degrees, (length back, length on)) through the
    crop's centre, each ``2 * width`` pixels wide."""
    star = np.zeros((28, 28), np.float32)
    i, j = np.mgrid[:28, :28]
    i, j = i - 13.5, j - 13.5
    for angle, (back, on) in arms:
        a = np.deg2rad(angle)
        along, across = i * np.sin(a) + j * np.cos(a), i * np.cos(a) - j * np.sin(a)
        star[(np.abs(across) < width) & (along > -back) & (along < on)] = 1.0
    return star


def test_stars_strokes_run_like_spokes_and_a_rings_do_not(test_images):
    lopsided = _star([(0, (8, 10)), (60, (10, 7)), (120, (9, 9))])  # unequal arms: centre of mass off the hub
    ring = np.zeros((28, 28), np.float32)
    i, j = np.mgrid[:28, :28]
    ring[(np.hypot(i - 13.5, j - 13.5) > 6) & (np.hypot(i - 13.5, j - 13.5) < 8)] = 1.0
    star_spokes, ring_spokes, blank = novelty.spokes(np.stack([lopsided, ring, np.zeros_like(ring)]))
    assert star_spokes > 0.75 and ring_spokes < 0.15 and blank == 0.0
    assert novelty.half_turn(lopsided[None])[0] < 0.75  # not point-symmetric about its centre of mass
    images, labels = test_images
    fours = novelty.spokes(images[labels == 4])
    assert 0.35 < np.median(fours) < 0.6 and (fours < star_spokes).mean() > 0.99


def test_the_star_gate_rejects_a_4_with_spokes_and_a_half_turn_and_bounds_only_the_4s(mnist):
    # Calibrated on the validation slice's 4s and 1s, read as their labels. A lopsided star
    # read as a 4 has more spokes than all but a few 4s and looks more like itself turned
    # than most, yet less than the half-turn gate's bound: only the star gate rejects it.
    # Read as a 1 it is not judged.
    images, labels = mnist.validation_split()
    keep = np.isin(labels, [1, 4])
    images, read = images[keep].astype(np.float32) / 255.0, labels[keep].astype(np.int64)
    probabilities = np.full((len(read), 10), 0.01 / 9, np.float32)
    probabilities[np.arange(len(read)), read] = 0.99
    score = np.random.default_rng(5).normal(100, 5, len(read)).astype(np.float32)
    t = novelty.calibrate(score, probabilities, images)
    assert t.max_spokes[4] < 1.0 and all(t.max_spokes[d] == 1.0 for d in range(10) if d not in novelty.STAR_DIGITS)
    star = np.repeat(_star([(10, (9, 7)), (70, (8, 9)), (130, (9, 9))], width=0.8)[None], 2, 0)
    as_four_and_one = probabilities[[np.flatnonzero(read == 4)[0], np.flatnonzero(read == 1)[0]]]
    values = novelty.tests(t, score[:2], as_four_and_one, star)
    assert values["star"][0] > 1 >= values["symmetry"][0]
    assert values["star"][1] <= 1  # read as a 1
    assert novelty.oddness(t, score[:2], as_four_and_one, star)[0] >= values["star"][0]


def _bar_and_dot(dot_rows: slice, dot_cols: slice, bar_rows: slice = slice(4, 18)) -> np.ndarray:
    mark = np.zeros((28, 28), np.float32)
    mark[bar_rows, 13:16] = 1.0
    mark[dot_rows, dot_cols] = 1.0
    return mark


def test_a_dot_cut_off_above_or_below_is_detached_and_a_digits_own_pieces_are_not(test_images):
    marks = np.stack([
        _bar_and_dot(slice(21, 25), slice(12, 16)),  # "!": 3 empty rows, then a 4x4 dot
        _bar_and_dot(slice(4, 7), slice(12, 16), bar_rows=slice(9, 25)),  # "i": a dot above
        _bar_and_dot(slice(18, 25), slice(12, 16)),  # the "dot" touches the bar: one piece
        _bar_and_dot(slice(20, 22), slice(4, 24)),  # a long bar under it: a "5"'s stroke, too wide
        _bar_and_dot(slice(21, 22), slice(14, 15)),  # a speck: under 5% of the ink
        _bar_and_dot(slice(4, 18), slice(13, 16)),  # the bar alone
    ])
    assert novelty.detached_dot(marks).tolist() == [3.0, 2.0, 0.0, 0.0, 0.0, 0.0]
    assert novelty.detached_dot(np.zeros((1, 28, 28), np.float32)).tolist() == [0.0]
    images, _ = test_images
    assert (novelty.detached_dot(images) > 0).mean() < 0.01  # digits are one piece


def test_the_dot_gate_rejects_question_and_exclamation_marks_that_pass_the_other_tests(vae):
    # Printed "?" and "!" read as a 7 or 3 and a 1, with a confidence and a profile a digit
    # can have; their dot is what they have and digits do not.
    marks = glyphs("?!", 200, seed=7)
    without = vae.assess(marks, gates=("symmetry", "star")).is_digit.mean()
    verdict = vae.assess(marks)
    assert without > 0.6 and verdict.is_digit.mean() < 0.3, (without, verdict.is_digit.mean())
    assert (verdict.tests["dot"] > 1).mean() > 0.7


def test_an_assessment_carries_each_tests_value(vae, test_images):
    images, _ = test_images
    verdict = vae.assess(images[:64])
    assert set(verdict.tests) == {"profile", "confidence", "joint", "symmetry", "star", "dot"}
    assert np.array_equal(verdict.oddness, novelty.combine(verdict.tests))
    assert np.array_equal(verdict.oddness, novelty.oddness(vae.thresholds, verdict.score, verdict.probabilities, images[:64]))


def test_blank_and_near_blank_crops_are_rejected(vae):
    assert not vae.is_digit(nondigits("blank", 4)).any()
    # Since the profile test is calibrated on camera-model copies too, 8.6% of 500 near-blank
    # crops pass (0% before; benchmarks/bench_isdigit.py): the price of reading real digits.
    assert vae.is_digit(nondigits("near_blank", 50)).mean() <= 0.15


def test_test_digits_are_accepted(vae, test_images):
    images, _ = test_images
    assert vae.is_digit(images[:500]).mean() >= 0.98


def test_the_profile_test_widened_on_camera_digits_leaves_the_other_bounds(shipped_vae):
    from dataclasses import fields, replace

    from digitvae.runtime.novelty import PROFILE_FIELDS, widen_profile

    shipped = shipped_vae.thresholds
    wider = replace(shipped, max_distance=2 * shipped.max_distance, min_confidence=(0.0,) * 10, max_joint=1e9)
    widened = widen_profile(shipped, wider)
    for field in fields(shipped):
        expected = wider if field.name in PROFILE_FIELDS else shipped
        assert getattr(widened, field.name) == getattr(expected, field.name), field.name
    assert "camera model" in shipped_vae.artifacts.manifest["thresholds"]["calibrated_on"]
