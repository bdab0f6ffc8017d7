"""Is this a digit at all? Thresholds calibrated on MNIST's validation slice (and, at export, on
camera-model copies of it: the manifest's ``calibrated_on`` says which).

The negative ELBO alone is not enough: a blank or near-blank crop is *easy* to reconstruct
and scores lower than a real digit (about 35 nats against about 100), and simple shapes (a
ruled line, a filled blot, a printed letter) score like digits too. So the rule makes three
tests and three gates, each measured on real digits of the validation slice (never test
digits, never non-digits); the shape measures they use are in :mod:`.shape`.

1. *profile*: six numbers describe a crop (:func:`.shape.features`); a Gaussian fitted to
   the digits gives each crop a squared Mahalanobis distance, which must be within the
   ``1 - SHAPE_TAIL`` quantile of the digits', widened by ``SHAPE_MARGIN`` for the camera.
   A blot has a bold digit's ink but strokes too wide; printed shapes have a few straight
   edge orientations; plus signs look the same turned a quarter.
2. *confidence*: the top class probability must reach what all but ``CONFIDENCE_TAIL`` of
   the digits *read as the same digit* get (max-softmax, Hendrycks & Gimpel 2017, made
   sharp by outlier exposure); one bound per digit, because hard 5s are read far less
   surely than hard 4s.
3. *joint*: Fisher's method on the two (``-ln p - ln p'``, p the share of digits at least
   as odd): letters and symbols are often a little odd on both counts at once.
4. gate *symmetry*: a crop read as d may not look more like itself turned half a turn than
   all but ``SYMMETRY_TAIL`` of the digits read as d (crosses and stars read as a 4).
5. gate *star*: a crop read as a 4 with spokes and a half-turn overlap both in the 4s'
   tails is a thin star with unequal arms, which the symmetry gate misses.
6. gate *dot*: a detached dot above or below the rest ("?", "!"), a fixed rule.

``oddness`` is the largest of the three tests' values over their thresholds, raised to the
gates' where a gate fails (<= 1 means "a digit"), so a single number decides and ranks
crops for an ROC curve. How each test was chosen, and what it bought: BENCHMARKS.md and
the git log.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np

from .shape import DOT_LEVEL, DOT_MAX_COLUMNS, DOT_MAX_ROWS, DOT_SHARE, FEATURES, detached_dot, features, half_turn, spokes
from .spec import NUM_CLASSES

#: The profile test's threshold: the (1 - SHAPE_TAIL) quantile of the validation digits'
#: squared distances, times SHAPE_MARGIN (room for camera crops; see the module docstring).
SHAPE_TAIL = 0.005
SHAPE_MARGIN = 1.25
#: The confidence test's threshold: the top class probability that all but this share of
#: the validation digits read as that digit reach.
CONFIDENCE_TAIL = 0.0025
#: The joint test's threshold: the (1 - JOINT_TAIL) quantile of the validation digits'
#: Fisher statistic (see :func:`tests`).
JOINT_TAIL = 0.002
#: The half-turn gate's bound per digit read: the (1 - SYMMETRY_TAIL) quantile of the
#: half-turn overlap of the validation digits read as that digit, times SYMMETRY_MARGIN
#: (camera crops are a little blurrier than MNIST's, and blur makes any shape more like
#: itself turned).
SYMMETRY_TAIL = 0.001
SYMMETRY_MARGIN = 1.03
#: The star gate's bounds per digit read: the (1 - STAR_SPOKES_TAIL) quantile of the spokes
#: and the (1 - STAR_HALF_TURN_TAIL) quantile of the half-turn overlap of the validation
#: digits read as that digit. A crop beyond both is a star: spokes as few digits have, with
#: a half-turn overlap as a tenth of them have.
STAR_SPOKES_TAIL = 0.002
STAR_HALF_TURN_TAIL = 0.1
#: The digits the star gate bounds (the others get ``max_spokes`` 1, which no crop passes):
#: stars and crosses are read as a 4, and real 0s, 5s, 7s and 9s can have spokes.
STAR_DIGITS: Final = (4,)
#: The gates (see :func:`combine`), in the order they apply; the camera reader leaves out
#: "dot" (see ``camera.GATES``).
GATES: Final = ("symmetry", "star", "dot")
#: Where each test's value is tabulated on the validation digits for the joint test: at the
#: share of digits that reach it, from all of them down to 1 in 10,000, 8 levels a decade.
SURVIVAL_LEVELS: Final = tuple(float(v) for v in np.logspace(0, -4, 33))
#: Fewer validation digits read as one digit than this, and that digit's bound is the one
#: of all digits (a quantile of a handful is noise; only a barely trained model gets here).
MIN_PER_CLASS = 200

#: Features where only one side is odd, so that values below the validation median count as
#: the median: a classifier *more* sure than usual is no sign of a non-digit, nor is a crop
#: *less* like itself turned a quarter.
ONE_SIDED: Final = frozenset({"log_doubt", "quarter_turn"})

METHOD = (
    "from the validation slice (the last 10,000 training images, never the test set, never "
    f"non-digits): mean and covariance of the features {', '.join(FEATURES)} "
    f"(log_doubt floored at its median); max_distance = the {1 - SHAPE_TAIL:.4f} quantile of the "
    f"digits' squared Mahalanobis distances times {SHAPE_MARGIN}; min_confidence[d] = the {CONFIDENCE_TAIL} "
    "quantile of the top class probabilities of the digits read as d; joint: Fisher's statistic "
    "-ln p_shape - ln p_confidence, p = the share of validation digits whose test value (distance over "
    "max_distance, doubt over 1 - min_confidence[d]) is at least the crop's, interpolated in the "
    f"survival tables; max_joint = its {1 - JOINT_TAIL:.4f} quantile on the digits; max_half_turn[d] = the "
    f"{1 - SYMMETRY_TAIL:.4f} quantile of the overlap with themselves turned half a turn of the digits "
    f"read as d, times {SYMMETRY_MARGIN}; max_spokes[d] = the {1 - STAR_SPOKES_TAIL:.4f} quantile of the spokes "
    f"of the digits read as d for d in {STAR_DIGITS}, 1 (no bound) for the others, and star_half_turn[d] = the "
    f"{1 - STAR_HALF_TURN_TAIL:.4f} quantile of their half-turn overlap. A crop read as d is a "
    "digit when its distance is at most max_distance, its top class probability at least "
    "min_confidence[d], its Fisher statistic at most max_joint, its half-turn overlap at most "
    "max_half_turn[d], its spokes at most max_spokes[d] or its half-turn overlap at most "
    "star_half_turn[d], and it has no detached dot (a top or bottom band of rows with ink at "
    f"{DOT_LEVEL} of the crop's peak, cut off by empty rows, holding {DOT_SHARE[0]} to {DOT_SHARE[1]} of the "
    f"ink, at most {DOT_MAX_ROWS} rows by {DOT_MAX_COLUMNS} columns; a fixed rule, not calibrated)"
)


@dataclass(frozen=True)
class Thresholds:
    """The is-digit rule's numbers, all measured on validation digits: a Gaussian over
    :data:`FEATURES` and the largest squared Mahalanobis distance a digit may have, the
    confidence each digit read needs, the joint test's tables and bound, and the half-turn
    gate's bound per digit read."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    floors: tuple[float | None, ...]  # one-sided features are raised to this value first
    max_distance: float
    min_confidence: tuple[float, ...]  # per digit read: the top probability must reach this
    survival_levels: tuple[float, ...]  # shares of validation digits, decreasing from 1
    shape_survival: tuple[float, ...]  # the profile test's value that each share reaches
    doubt_survival: tuple[float, ...]  # the confidence test's value that each share reaches
    max_joint: float  # the largest Fisher statistic a digit may have
    max_half_turn: tuple[float, ...]  # per digit read: the most a digit may look like itself turned half
    max_spokes: tuple[float, ...]  # per digit read: spokes beyond this, with ...
    star_half_turn: tuple[float, ...]  # ... a half-turn overlap beyond this, make a star

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> "Thresholds":
        try:
            features = tuple(str(f) for f in entry["features"])
            mean = tuple(float(v) for v in entry["mean"])
            covariance = tuple(tuple(float(v) for v in row) for row in entry["covariance"])
            floors = tuple(None if v is None else float(v) for v in entry["floors"])
            max_distance = float(entry["max_distance"])
            min_confidence = tuple(float(v) for v in entry["min_confidence"])
            levels = tuple(float(v) for v in entry["survival_levels"])
            shape_survival = tuple(float(v) for v in entry["shape_survival"])
            doubt_survival = tuple(float(v) for v in entry["doubt_survival"])
            max_joint = float(entry["max_joint"])
            max_half_turn = tuple(float(v) for v in entry["max_half_turn"])
            max_spokes = tuple(float(v) for v in entry["max_spokes"])
            star_half_turn = tuple(float(v) for v in entry["star_half_turn"])
        except KeyError as exc:
            raise ValueError(f"manifest thresholds are incomplete: no {exc} (a manifest from an older version? "
                             "re-export the artifacts)") from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"manifest thresholds are not numbers where numbers belong: {exc}") from exc
        n = len(features)
        if features != FEATURES:
            raise ValueError(f"manifest thresholds: features {list(features)} are not the runtime's {list(FEATURES)}")
        if len(mean) != n or len(floors) != n or len(covariance) != n or any(len(r) != n for r in covariance):
            raise ValueError(f"manifest thresholds: sizes do not match its {n} features")
        values = np.array([*mean, max_distance, *(v for r in covariance for v in r), *(v for v in floors if v is not None)])
        if not np.isfinite(values).all() or max_distance <= 0:
            raise ValueError("manifest thresholds have non-finite numbers or max_distance <= 0")
        if len(min_confidence) != NUM_CLASSES or not all(0 <= v < 1 for v in min_confidence):
            raise ValueError(f"manifest thresholds: min_confidence must be {NUM_CLASSES} numbers in [0, 1), "
                             f"got {list(min_confidence)}")
        _check_survival(levels, shape_survival, doubt_survival, max_joint)
        for name, bounds in (("max_half_turn", max_half_turn), ("max_spokes", max_spokes),
                             ("star_half_turn", star_half_turn)):
            if len(bounds) != NUM_CLASSES or not all(np.isfinite(v) and v > 0 for v in bounds):
                raise ValueError(f"manifest thresholds: {name} must be {NUM_CLASSES} positive numbers, got {list(bounds)}")
        return cls(features, mean, covariance, floors, max_distance, min_confidence, levels, shape_survival,
                   doubt_survival, max_joint, max_half_turn, max_spokes, star_half_turn)

    def to_manifest(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": list(self.mean),
                "covariance": [list(r) for r in self.covariance], "floors": list(self.floors),
                "max_distance": self.max_distance, "min_confidence": list(self.min_confidence),
                "survival_levels": list(self.survival_levels), "shape_survival": list(self.shape_survival),
                "doubt_survival": list(self.doubt_survival), "max_joint": self.max_joint,
                "max_half_turn": list(self.max_half_turn), "max_spokes": list(self.max_spokes),
                "star_half_turn": list(self.star_half_turn), "method": METHOD}

    def distance(self, values: np.ndarray) -> np.ndarray:
        """(N, F) feature values -> (N,) squared Mahalanobis distance from the digits."""
        x = values.astype(np.float64)
        for j, floor in enumerate(self.floors):
            if floor is not None:
                x[:, j] = np.maximum(x[:, j], floor)
        centred = x - np.asarray(self.mean)
        solved = np.linalg.solve(np.asarray(self.covariance), centred.T).T
        return np.einsum("ij,ij->i", centred, solved)


def tests(t: Thresholds, score: np.ndarray, probabilities: np.ndarray, images: np.ndarray,
          gates: Collection[str] = GATES) -> dict[str, np.ndarray]:
    """Each test's (N,) value over its threshold (<= 1 passes):

    ``profile``     the profile's squared distance over ``max_distance``
    ``confidence``  the classifier's doubt (1 - top probability) over the doubt the digit it
                    reads allows (1 - ``min_confidence[d]``)
    ``joint``       Fisher's combination of those two (R. A. Fisher, *Statistical Methods for
                    Research Workers*, 1925): -ln p - ln p', p the share of validation digits
                    whose value is at least as large, over ``max_joint``. Each test alone lets
                    through what is a little odd on both counts, as printed letters are; few
                    digits are. Each p is read off a table of the validation digits' values.
    ``symmetry``    the crop's :func:`half_turn` over ``max_half_turn[d]``, d the digit read:
                    a "4" that looks the same turned half a turn is a plus sign, an x or a star
    ``star``        the smaller of its :func:`spokes` over ``max_spokes[d]`` and its half-turn
                    overlap over ``star_half_turn[d]``: over 1 when both are, a star (0 where
                    it cannot be: d without a spokes bound, or the half-turn ratio <= 1)
    ``dot``         1 + the rows between the body and a :func:`detached_dot` over the crop's
                    height where it has one (over 1: the crop is punctuation), else 0

    The first three are always measured; of the gates, those named in ``gates``.
    """
    _check_gates(gates)
    p = np.asarray(probabilities, np.float64)
    read = p.argmax(axis=1)
    allowed = 1.0 - np.asarray(t.min_confidence)[read]
    shape = t.distance(features(score, probabilities, images)) / t.max_distance
    unsure = (1.0 - p.max(axis=1)) / allowed
    joint = _surprise(shape, t.survival_levels, t.shape_survival) + _surprise(unsure, t.survival_levels, t.doubt_survival)
    values = {"profile": shape, "confidence": unsure, "joint": joint / t.max_joint}
    if "symmetry" in gates or "star" in gates:
        turned = half_turn(images)
        if "symmetry" in gates:
            values["symmetry"] = turned / np.asarray(t.max_half_turn)[read]
        if "star" in gates:
            values["star"] = _star(t, images, read, turned)
    if "dot" in gates:
        separation = detached_dot(images)
        values["dot"] = np.where(separation > 0, 1.0 + separation / images.shape[-2], 0.0)
    return values


def _check_gates(gates: Collection[str]) -> None:
    unknown = sorted(set(gates) - set(GATES))
    if unknown:
        raise ValueError(f"gates: expected some of {', '.join(GATES)}, got {', '.join(map(str, unknown))}")


def _star(t: Thresholds, images: np.ndarray, read: np.ndarray, turned: np.ndarray) -> np.ndarray:
    """The star test's (N,) values: the spokes are measured only where they can matter (a
    digit read that has a spokes bound, a half-turn overlap beyond its star bound), to keep
    the camera's time; 0 elsewhere."""
    half = turned / np.asarray(t.star_half_turn)[read]
    bound = np.asarray(t.max_spokes)[read]
    star = np.zeros(len(read))
    suspect = np.flatnonzero((half > 1.0) & (bound < 1.0))
    if len(suspect):
        star[suspect] = np.minimum(spokes(images[suspect]) / bound[suspect], half[suspect])
    return star


def oddness(t: Thresholds, score: np.ndarray, probabilities: np.ndarray, images: np.ndarray,
            gates: Collection[str] = GATES) -> np.ndarray:
    """(N,) float, <= 1 is a digit: the largest of the profile, confidence and joint tests'
    values, raised to the symmetry and star tests' where they fail. Those two are gates,
    not scores: below their bounds they say little (digits spread widely on them), and
    ranking crops by them there would blur the ranking that the other three give. Only the
    gates named in ``gates`` apply."""
    return combine(tests(t, score, probabilities, images, gates))


def combine(values: dict[str, np.ndarray]) -> np.ndarray:
    """:func:`tests`' values -> the (N,) oddness that :func:`oddness` returns (the gates
    among ``values`` apply)."""
    ranked = np.maximum.reduce([values["profile"], values["confidence"], values["joint"]])
    for gate in GATES:
        if gate in values:
            ranked = np.where(values[gate] > 1.0, np.maximum(ranked, values[gate]), ranked)
    return ranked


def _surprise(values: np.ndarray, levels: tuple[float, ...], table: tuple[float, ...]) -> np.ndarray:
    """-ln(share of validation digits whose value is at least ``values``), interpolated in
    the table (linear in the log share); beyond its ends, 0 and -ln of the last level."""
    return -np.interp(values, np.asarray(table), np.log(np.asarray(levels)))


def _check_survival(levels: tuple[float, ...], shape: tuple[float, ...], doubt: tuple[float, ...],
                    max_joint: float) -> None:
    lv, sv, dv = np.asarray(levels), np.asarray(shape), np.asarray(doubt)
    if len(lv) < 2 or len(sv) != len(lv) or len(dv) != len(lv):
        raise ValueError(f"manifest thresholds: survival tables must have one value per level ({len(lv)}), "
                         f"got {len(sv)} and {len(dv)}")
    if not (np.isfinite(np.concatenate([lv, sv, dv, [max_joint]])).all() and max_joint > 0):
        raise ValueError("manifest thresholds: survival tables or max_joint are not finite, or max_joint <= 0")
    if not ((lv > 0).all() and (lv <= 1).all() and (np.diff(lv) < 0).all()
            and (np.diff(sv) >= 0).all() and (np.diff(dv) >= 0).all()):
        raise ValueError("manifest thresholds: survival levels must fall from 1 towards 0 and the tables must not fall")


def calibrate(score: np.ndarray, probabilities: np.ndarray, images: np.ndarray,
              tail: float = SHAPE_TAIL, margin: float = SHAPE_MARGIN,
              confidence_tail: float = CONFIDENCE_TAIL, joint_tail: float = JOINT_TAIL,
              symmetry_tail: float = SYMMETRY_TAIL, symmetry_margin: float = SYMMETRY_MARGIN,
              star_spokes_tail: float = STAR_SPOKES_TAIL, star_half_turn_tail: float = STAR_HALF_TURN_TAIL
              ) -> Thresholds:
    """Thresholds from real digits (the validation slice): see ``METHOD``."""
    values = features(score, probabilities, images)
    x = values.copy()
    floors = tuple(float(np.median(x[:, j])) if name in ONE_SIDED else None for j, name in enumerate(FEATURES))
    for j, floor in enumerate(floors):
        if floor is not None:
            x[:, j] = np.maximum(x[:, j], floor)
    mean = x.mean(axis=0)
    covariance = np.cov(x, rowvar=False) + 1e-9 * np.eye(x.shape[1])
    flat = tuple(float(i) for i in range(len(SURVIVAL_LEVELS)))  # placeholders until measured
    partial = Thresholds(FEATURES, tuple(map(float, mean)), tuple(tuple(map(float, r)) for r in covariance), floors, 1.0,
                         (0.0,) * NUM_CLASSES, SURVIVAL_LEVELS, flat, flat, 1.0, *(((np.inf,) * NUM_CLASSES,) * 3))
    max_distance = float(np.quantile(partial.distance(values), 1 - tail)) * margin
    min_confidence = _confidence_bounds(np.asarray(probabilities, np.float64), confidence_tail)
    two = replace(partial, max_distance=max_distance, min_confidence=min_confidence)
    ratios = tests(two, score, probabilities, images, gates=())
    three = replace(two, shape_survival=_survival_table(ratios["profile"]),
                    doubt_survival=_survival_table(ratios["confidence"]))
    max_joint = float(np.quantile(tests(three, score, probabilities, images, gates=())["joint"], 1 - joint_tail))
    read, turned = np.asarray(probabilities).argmax(axis=1), half_turn(images)
    max_half_turn = _per_digit_bounds(turned, read, 1 - symmetry_tail)
    return replace(three, max_joint=max_joint, max_half_turn=tuple(v * symmetry_margin for v in max_half_turn),
                   max_spokes=tuple(bound if digit in STAR_DIGITS else 1.0 for digit, bound in
                                    enumerate(_per_digit_bounds(spokes(images), read, 1 - star_spokes_tail))),
                   star_half_turn=_per_digit_bounds(turned, read, 1 - star_half_turn_tail))


#: The profile test's fields (see :func:`widen_profile`).
PROFILE_FIELDS: Final = ("mean", "covariance", "floors", "max_distance", "shape_survival")


def widen_profile(thresholds: Thresholds, wider: Thresholds) -> Thresholds:
    """``thresholds`` with the profile test of ``wider``, calibrated on more varied digits
    (MNIST's and camera-like ones: a camera changes a crop's shape profile most); the
    confidence and joint tests and the gates keep ``thresholds``' bounds."""
    return replace(thresholds, **{name: getattr(wider, name) for name in PROFILE_FIELDS})


def _survival_table(values: np.ndarray) -> tuple[float, ...]:
    """The value that each of ``SURVIVAL_LEVELS`` of ``values`` reach (non-decreasing)."""
    table = np.quantile(values, 1.0 - np.asarray(SURVIVAL_LEVELS))
    return tuple(float(v) for v in np.maximum.accumulate(table))


def _confidence_bounds(probabilities: np.ndarray, tail: float) -> tuple[float, ...]:
    """Per digit d, the ``tail`` quantile of the top probabilities of the crops read as d."""
    return _per_digit_bounds(probabilities.max(axis=1), probabilities.argmax(axis=1), tail)


def _per_digit_bounds(values: np.ndarray, read: np.ndarray, share: float) -> tuple[float, ...]:
    """Per digit d, the ``share`` quantile of ``values`` over the crops read as d (over all
    crops where fewer than ``MIN_PER_CLASS`` are read as d)."""
    overall = float(np.quantile(values, share))
    return tuple(float(np.quantile(values[read == d], share)) if (read == d).sum() >= MIN_PER_CLASS else overall
                 for d in range(NUM_CLASSES))


def auroc(digits: np.ndarray, others: np.ndarray) -> float:
    """Area under the ROC curve for telling ``others`` (higher oddness) from ``digits``.

    The Mann-Whitney statistic: the chance that a random non-digit is odder than a random
    digit, ties counting half.
    """
    values = np.concatenate([digits, others])
    ranks = _average_ranks(values)
    n_d, n_o = len(digits), len(others)
    return float((ranks[n_d:].sum() - n_o * (n_o + 1) / 2) / (n_d * n_o))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]
