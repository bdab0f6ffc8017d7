"""Is this a digit at all? Thresholds calibrated on MNIST's validation slice.

The negative ELBO alone is not enough: a blank or near-blank crop is *easy* to reconstruct
and scores lower than a real digit (about 35 nats against about 100), and simple shapes (a
ruled line, a filled blot, a printed letter) score like digits too. Single bounds on the
score, the classifier's confidence and the amount of ink (an earlier rule) let most of those
through. So the decision is a joint one, the crop's *profile*:

* six numbers describe a crop (:func:`features`): log score, log classifier doubt, log ink,
  log mean stroke width, the entropy of its edge orientations, and how much it looks like
  itself turned a quarter;
* a Gaussian fitted to real digits of the validation slice (never test digits, never
  non-digits) gives each crop a squared Mahalanobis distance from the digits;
* a crop is a digit when that distance is within the ``1 - SHAPE_TAIL`` quantile of the
  validation digits' distances, widened by ``SHAPE_MARGIN``.

The joint test catches what no single bound does: a blot has the ink of a bold digit but
strokes far too wide and a score too low for that ink; noise and paper grain are one pixel
wide; ruled lines and printed capitals have their edges in a few straight orientations
where handwriting curves; plus signs, crosses and stars look the same turned a quarter,
which no handwritten digit does (the roundest 0s come closest). Two features are one-sided,
their low values counting as the validation median: a classifier *more* sure than usual is
no sign of a non-digit, nor is a crop that looks unlike itself turned (a 1 does).

The quarter-turn feature was added for the camera: bold plus and x signs near a page's
digits were read as a 4 with probability 0.55 to 0.97 and passed the other five. With the
camera reader's frame-edge rule, added at the same time, generated blank frames went from
10.3 to 2.7 false digits per 100 (frame seed 1, kept for tuning:
``python benchmarks/bench_camera.py --accuracy-only --seed 1 --frames 300 --blank 300``)
and from 5.0 to 1.0 on the benchmark's frames, while the share of MNIST test digits
rejected went from 0.51% to 0.53%.

A second, simpler test sits beside it: the classifier must read the crop with at least
the confidence that all but ``CONFIDENCE_TAIL`` of the validation digits *it reads as the
same digit* get (the max-softmax baseline of Hendrycks & Gimpel, ICLR 2017, made sharp by
outlier exposure). The Gaussian alone let through crosses and stars that the classifier
reads as a "4" with probability 0.1 to 0.3: their other features look like a digit's, and
real digits' doubt is so heavy-tailed that the Gaussian's spread along it is wide. One
bound per digit, because the digits differ: the hardest validation 5s are read with
probability 0.14, the hardest 4s with 0.54, and a single bound (0.30) set by the 5s let
through crosses read as a 4 with 0.3 to 0.5 (on generated blank frames: 16.5 false digits
per 100 frames with one bound, about a third of that with one per digit).

A third test joins the two (:func:`tests`): Fisher's method for combining two tests, on
the share of validation digits at least as odd on each (``-ln p - ln p'``). Printed letters
and symbols tend to be a little odd on both counts at once, which neither bound alone
catches and few digits are. With it (``python benchmarks/bench_isdigit.py``), the AUROC
against letters went from 0.9876 to 0.9915, symbols 0.9794 to 0.9845, lines 0.9932 to
0.9955, while the MNIST test digits rejected went from 0.53% to 0.55%. On generated camera
frames (seed 1, 300 + 300 frames, and seed 2, 500 + 200) read-right fell by 0.07 points on
both and false digits per 100 blank frames fell from 2.7 to 2.3 and from 2.0 to 1.0; on the
benchmark's own frames (seed 0, ``digitvae bench``) from 98.07% to 98.03% and 1.0 to 0.5.
``JOINT_TAIL`` was chosen on seed 1 between 0.002 and 0.004 (0.004: letters 0.9919, but
read-right 0.19 points lower).

A fourth test is a gate: a crop read as d must not look more like itself turned half a
turn (about its centre of mass) than all but ``SYMMETRY_TAIL`` of the validation digits
read as d, widened by ``SYMMETRY_MARGIN`` (:func:`half_turn`). Crosses, plus signs and stars
are point-symmetric; so are 0s, 1s and 8s, whose bounds come out near 1 and never fire, but
a handwritten 4 or 7 is not. The generated frames' own marks, a cross or a star drawn with
the digits' pen, were the false digits left on blank frames: read as a 4 with probability
0.6 to 0.97, they passed the other three tests (the quarter-turn feature misses stars and
crosses whose arms are not square). With the gate, false digits on generated blank frames
(``python benchmarks/bench_camera.py --accuracy-only --seed S``, seeds 3 to 7, 1,400
frames) went from 23 to 11, seed 3 from 2.5 to 0.5 per 100; the digits read right fell by
0 to 0.12 points (seeds 0 to 3) and the MNIST test digits rejected rose from 0.55% to 0.60%
(``python benchmarks/bench_isdigit.py``; AUROCs moved by 0.0002 at most: letters and
symbols up, lines down). The gate does not rank: below its bound the half-turn overlap says
little (digits spread widely on it).

A fifth test is a gate too, for the stars and crosses the fourth misses. Drawn with thin
strokes and unequal arms, a star's centre of mass is off its hub, and turned about it the
star covers itself only in part (0.15 to 0.8). What it still is: strokes that run like
spokes from its centre (:func:`spokes`). A crop read as a 4 is a star when it has more
spokes than all but ``STAR_SPOKES_TAIL`` of the validation digits read as a 4 *and* looks
more like itself turned half a turn than all but ``STAR_HALF_TURN_TAIL`` of them. A 4 may
have long straight strokes through its centre, or look a little like itself turned, but
seldom both. Generated blank frames (seeds 0 to 51, 10,400 frames, 200 a seed) had 111
false digits, 53 of them read as a 4, most of those stars and crosses; the gate rejects 37
(seeds 0 to 35: 67 -> 38), no validation or test digit and none of the 9,631 real digits
the reader found and accepted on camera frames of seeds 0 to 5. The tails were chosen on
seeds 0 to 35, among 0.001 to 0.005 for the spokes and 0.1 to 0.3 for the half turn (one
tail of 0.01 for both caught 20 of the 67). Seeds 36 to 51 were fresh: 44 -> 36.

A sixth test, a gate too, is for punctuation. A printed "?" or "!" is read as a 7, a 3 or a
1 with a confidence and a profile that digits have: before it, 89% of "?" and 71% of "!"
passed (1,000 of each, ``--glyphs '?' --glyphs '!'``); with it, 13% and 0.4%. What they
have and handwritten digits do not is a dot, a small mark above or below the rest, cut off
from it by empty rows (:func:`detached_dot`, a fixed rule: ``DOT_*``).
Digits are one piece, or come apart in large pieces (a "5"'s bar): 7 of the 10,000
validation digits have such a dot. With the gate (``python benchmarks/bench_isdigit.py``),
the AUROC against symbols went from 0.9843 to 0.9947 (seed 1's non-digits: 0.9944), the
MNIST test digits rejected from 0.61% to 0.77% (digits whose faint stroke breaks into a
short piece), letters 0.9916 -> 0.9912 and lines 0.9955 -> 0.9953. The gate was designed
after looking at which symbols passed, so it was checked on characters the benchmark never
draws, with its renderer (``--glyphs``): "i", "j" and ";" 0.9872 -> 0.9966 (accepted 44% ->
0%); lowercase letters without dots 0.9835 -> 0.9829 and other punctuation 0.9706 -> 0.9700
(those the gate cannot see pay for the digits it rejects). The camera reader does not apply
it (see ``camera.GATES``).

``oddness`` is the largest of the first three tests' values over their thresholds, raised to
the gates' where a gate fails (<= 1 means "a digit"), so a single number decides and the
same number ranks crops for an ROC curve.

The margin is there for the camera: its crops are not rendered exactly as MNIST's (ink
texture, stroke widths). On generated camera frames of *validation* digits an unwidened
threshold rejected about 2.7% of the real digits found, the widened one about 1% (while
still rejecting about 70% of the frames' non-digit marks, against about 35% for the earlier
rule). A sixth feature, the share of grey ink pixels, separated non-digits slightly better
on MNIST-normalised crops but was left out for the same reason: camera crops of real digits
sit 1.2 standard deviations off MNIST's on it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np

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
#: stars and crosses are read as a 4. The gate bounded every digit at first: all 37 false
#: digits it caught on blank frames of seeds 0 to 51 were read as a 4, while on frames with
#: digits (seeds 0, 8, 9 and 15, 2,000 frames) it cost 7 real 0s, 5s, 7s and 9s, and no 4.
STAR_DIGITS: Final = (4,)
#: Pixels this close to the centre of mass do not count in :func:`spokes`: at the hub every
#: direction is a radius.
HUB_RADIUS: Final = 3.0
#: What :func:`detached_dot` calls a dot: the crop's top or bottom band of ink rows, cut off
#: from the rest by empty rows, holding more than DOT_SHARE[0] and less than DOT_SHARE[1] of
#: the ink (a mark, not a speck of anti-aliasing, and smaller than the body) and at most
#: DOT_MAX_ROWS x DOT_MAX_COLUMNS pixels of the 20x20 box a crop's ink fills. Ink is what
#: reaches DOT_LEVEL of the crop's brightest pixel.
DOT_LEVEL: Final = 0.5
DOT_SHARE: Final = (0.05, 0.45)
DOT_MAX_ROWS: Final = 6
DOT_MAX_COLUMNS: Final = 7
#: The gates (see :func:`combine`), in the order they apply; the camera reader leaves out
#: "dot" (see ``camera.GATES``).
GATES: Final = ("symmetry", "star", "dot")
#: Where each test's value is tabulated on the validation digits for the joint test: at the
#: share of digits that reach it, from all of them down to 1 in 10,000, 8 levels a decade.
SURVIVAL_LEVELS: Final = tuple(float(v) for v in np.logspace(0, -4, 33))
#: Fewer validation digits read as one digit than this, and that digit's bound is the one
#: of all digits (a quantile of a handful is noise; only a barely trained model gets here).
MIN_PER_CLASS = 200

#: The profile's features, in order (see :func:`features`).
FEATURES: Final = ("log_score", "log_doubt", "log_ink", "log_width", "edge_entropy", "quarter_turn")
#: Features where only one side is odd, so that values below the validation median count as
#: the median: a classifier *more* sure than usual is no sign of a non-digit, nor is a crop
#: *less* like itself turned a quarter.
ONE_SIDED: Final = frozenset({"log_doubt", "quarter_turn"})
_EPS = 1e-6
_ORIENTATION_BINS = 16

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


def features(score: np.ndarray, probabilities: np.ndarray, images: np.ndarray) -> np.ndarray:
    """The profile of each crop: (N,) score, (N, 10) probabilities and (N, 28, 28) or
    (N, 1, 28, 28) images in [0, 1] -> float64 (N, 6), columns as in :data:`FEATURES`:

    ``log_score``     log of the negative ELBO (nats)
    ``log_doubt``     log of 1 - the top class probability
    ``log_ink``       log of the mean pixel
    ``log_width``     log of the mean stroke width in pixels, 2 * ink / total variation
                      (a bar w pixels wide gives w)
    ``edge_entropy``  entropy (nats) of the edge orientations, a 16-bin histogram of the
                      gradient's orientation weighted by its magnitude: low for shapes made of
                      a few straight edges, high for curves
    ``quarter_turn``  the crop's overlap with itself turned 90 degrees about the centre (where
                      MNIST puts the centre of mass), over its overlap with itself: 1 for a
                      plus sign or an x, about 0.3 for a typical digit
    """
    # Pixel work in float32 (the camera path runs this on every crop); sums in float64.
    x = images.reshape(len(images), images.shape[-2], images.shape[-1]).astype(np.float32)
    n = len(x)
    total = x.reshape(n, -1).sum(axis=1, dtype=np.float64)
    variation = (np.abs(np.diff(x, axis=1)).sum(axis=(1, 2), dtype=np.float64)
                 + np.abs(np.diff(x, axis=2)).sum(axis=(1, 2), dtype=np.float64))
    gy, gx = np.gradient(x, axis=(1, 2))
    magnitude = np.hypot(gx, gy).reshape(n, -1)
    # Orientations only where there is an edge (most of a crop is flat black, and arctan2
    # is the costliest step); flat pixels would add weight 0 anyway.
    image, pixel = np.nonzero(magnitude)
    angle = np.arctan2(gy.reshape(n, -1)[image, pixel], gx.reshape(n, -1)[image, pixel]) % np.pi
    bins = np.minimum((angle * (_ORIENTATION_BINS / np.pi)).astype(np.int64), _ORIENTATION_BINS - 1)
    # One weighted bincount over (image, bin) pairs: the per-image histograms at once.
    histogram = np.bincount(image * _ORIENTATION_BINS + bins, weights=magnitude[image, pixel],
                            minlength=n * _ORIENTATION_BINS).reshape(n, _ORIENTATION_BINS)
    share = histogram / np.maximum(histogram.sum(axis=1, keepdims=True), 1e-12)
    entropy = -(share * np.log(np.maximum(share, 1e-12))).sum(axis=1)
    turned = np.rot90(x, 1, axes=(1, 2))
    overlap = (x * turned).sum(axis=(1, 2), dtype=np.float64)
    quarter_turn = overlap / np.maximum((x * x).sum(axis=(1, 2), dtype=np.float64), 1e-12)
    return np.stack([
        np.log(np.maximum(np.asarray(score, np.float64), _EPS)),
        np.log(np.maximum(1.0 - np.asarray(probabilities, np.float64).max(axis=1), _EPS)),
        np.log(np.maximum(total / (x.shape[1] * x.shape[2]), _EPS)),
        np.log(np.maximum(2.0 * total / np.maximum(variation, 1e-3), _EPS)),
        entropy,
        quarter_turn,
    ], axis=1)


def half_turn(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 1, 28, 28) images in [0, 1] -> (N,) float64: each crop's overlap
    with itself turned half a turn about its own centre of mass (bilinear), over its overlap
    with itself. 1 for a plus sign, an x, a star or a bar; a 0, 1 or 8 comes close, but a
    handwritten 2, 3, 4, 6, 7 or 9 seldom passes 0.8."""
    x = images.reshape(len(images), images.shape[-2], images.shape[-1]).astype(np.float32)
    n, rows, cols = x.shape
    r, c = np.arange(rows), np.arange(cols)
    centre_y, centre_x = _centre_of_mass(x)
    # The turned crop at (i, j) is the crop at (2 cy - i, 2 cx - j), read between pixels:
    # bilinear reading is separable, so it is two matrix products with tent weights
    # max(0, 1 - |source - k|) for pixel k (a source outside the crop reads paper).
    rows_from = _tent(2 * centre_y[:, None] - r, rows)  # (N, rows, rows)
    cols_from = _tent(2 * centre_x[:, None] - c, cols)  # (N, cols, cols)
    turned = rows_from @ x @ cols_from.transpose(0, 2, 1)
    return (x * turned).sum(axis=(1, 2), dtype=np.float64) / np.maximum((x * x).sum(axis=(1, 2), dtype=np.float64), 1e-12)


def spokes(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 1, 28, 28) images in [0, 1] -> (N,) float64 in [0, 1]: how much
    the strokes run like spokes from the crop's centre of mass. The share of the edges'
    squared gradient that lies *across* the line to the centre (a stroke along that line has
    its gradient across it), over the pixels beyond ``HUB_RADIUS``. About 0.8 for a star, 1
    for a bar through the centre (a 1), about 0.5 for a typical 4, 0 for a ring."""
    x = images.reshape(len(images), images.shape[-2], images.shape[-1]).astype(np.float32)
    n, rows, cols = x.shape
    centre_y, centre_x = _centre_of_mass(x)
    dy = (np.arange(rows)[None, :] - centre_y[:, None]).astype(np.float32)
    dx = (np.arange(cols)[None, :] - centre_x[:, None]).astype(np.float32)
    distance = np.hypot(dy[:, :, None], dx[:, None, :])
    gy, gx = np.gradient(x, axis=(1, 2))
    along = (gy * dy[:, :, None] + gx * dx[:, None, :]) / np.maximum(distance, 1e-6)  # the gradient along the radius
    beyond = distance > HUB_RADIUS
    energy = ((gx * gx + gy * gy) * beyond).sum(axis=(1, 2), dtype=np.float64)
    radial = ((along * along) * beyond).sum(axis=(1, 2), dtype=np.float64)
    return np.where(energy > 0, 1.0 - radial / np.maximum(energy, 1e-12), 0.0)


def detached_dot(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 1, 28, 28) images in [0, 1] -> (N,) float64: how many empty rows
    part the crop's body from a dot above or below it (the larger, where both), 0 where it
    has none. A dot is the top or bottom band of ink rows, cut off by empty rows, with more
    than ``DOT_SHARE[0]`` and less than ``DOT_SHARE[1]`` of the ink, at most
    ``DOT_MAX_ROWS`` tall and ``DOT_MAX_COLUMNS`` wide: the dot of a "?", "!", "i", "j" or
    ";". Handwritten digits are one piece, or come apart in large pieces (a "5"'s bar)."""
    x = images.reshape(len(images), images.shape[-2], images.shape[-1]).astype(np.float32)
    peak = x.reshape(len(x), -1).max(axis=1)
    ink = x > DOT_LEVEL * np.maximum(peak, _EPS)[:, None, None]
    mass = np.where(ink, x, 0.0).sum(axis=2, dtype=np.float64)  # (N, rows)
    total = np.maximum(mass.sum(axis=1), 1e-12)
    top = _band_dot(ink, mass / total[:, None])
    bottom = _band_dot(ink[:, ::-1], mass[:, ::-1] / total[:, None])  # rows flipped: the bottom band on top
    return np.maximum(top, bottom)


def _band_dot(ink: np.ndarray, share: np.ndarray) -> np.ndarray:
    """:func:`detached_dot` for the top band: ink bool (N, rows, cols), each row's share of
    the ink (N, rows) -> (N,) the empty rows under the band where it is a dot, else 0."""
    _, rows, cols = ink.shape
    r = np.arange(rows)
    inked = ink.any(axis=2)
    first = inked.argmax(axis=1)  # the band's first row
    after = ~inked & (r > first[:, None])
    end = np.where(after.any(axis=1), after.argmax(axis=1), rows)  # the first empty row under it
    below = inked & (r > end[:, None])
    resume = np.where(below.any(axis=1), below.argmax(axis=1), end)  # the next row with ink
    band = (r >= first[:, None]) & (r < end[:, None])
    columns = (ink & band[:, :, None]).any(axis=1)
    width = cols - columns[:, ::-1].argmax(axis=1) - columns.argmax(axis=1)
    part = (share * band).sum(axis=1)
    dot = ((resume > end) & (part > DOT_SHARE[0]) & (part < DOT_SHARE[1])
           & (end - first <= DOT_MAX_ROWS) & (width <= DOT_MAX_COLUMNS))
    return np.where(dot, resume - end, 0).astype(np.float64)


def _centre_of_mass(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 crops (N, rows, cols) -> each one's centre of mass, float64 (N,) row and
    column (0 for a crop without ink)."""
    mass = np.maximum(x.sum(axis=(1, 2), dtype=np.float64), 1e-12)
    return ((x.sum(axis=2) * np.arange(x.shape[1])).sum(axis=1) / mass,
            (x.sum(axis=1) * np.arange(x.shape[2])).sum(axis=1) / mass)


def _tent(source: np.ndarray, size: int) -> np.ndarray:
    """(N, M) positions to read -> (N, M, size) float32 bilinear weights of each pixel."""
    weights = np.abs(source.astype(np.float32)[:, :, None] - np.arange(size, dtype=np.float32))
    np.subtract(1.0, weights, out=weights)
    return np.maximum(weights, 0.0, out=weights)


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
