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

``oddness`` is the larger of the two tests' values over their thresholds (<= 1 means "a
digit"), so a single number decides and the same number ranks crops for an ROC curve.

The margin is there for the camera: its crops are not rendered exactly as MNIST's (ink
texture, stroke widths). On generated camera frames of *validation* digits an unwidened
threshold rejected about 2.7% of the real digits found, the widened one about 1% (while
still rejecting about 70% of the frames' non-digit marks, against about 35% for the earlier
rule). A sixth feature, the share of grey ink pixels, separated non-digits slightly better
on MNIST-normalised crops but was left out for the same reason: camera crops of real digits
sit 1.2 standard deviations off MNIST's on it.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    "quantile of the top class probabilities of the digits read as d; a crop read as d is a digit when "
    "its distance is at most max_distance and its top class probability at least min_confidence[d]"
)


@dataclass(frozen=True)
class Thresholds:
    """A Gaussian over :data:`FEATURES` fitted to validation digits, and the largest squared
    Mahalanobis distance a digit may have."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    floors: tuple[float | None, ...]  # one-sided features are raised to this value first
    max_distance: float
    min_confidence: tuple[float, ...]  # per digit read: the top probability must reach this

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> "Thresholds":
        try:
            features = tuple(str(f) for f in entry["features"])
            mean = tuple(float(v) for v in entry["mean"])
            covariance = tuple(tuple(float(v) for v in row) for row in entry["covariance"])
            floors = tuple(None if v is None else float(v) for v in entry["floors"])
            max_distance = float(entry["max_distance"])
            min_confidence = tuple(float(v) for v in entry["min_confidence"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"manifest thresholds are incomplete or not numbers: {entry!r}") from exc
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
        return cls(features, mean, covariance, floors, max_distance, min_confidence)

    def to_manifest(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": list(self.mean),
                "covariance": [list(r) for r in self.covariance], "floors": list(self.floors),
                "max_distance": self.max_distance, "min_confidence": list(self.min_confidence), "method": METHOD}

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


def oddness(t: Thresholds, score: np.ndarray, probabilities: np.ndarray, images: np.ndarray) -> np.ndarray:
    """(N,) float, <= 1 is a digit: the larger of the profile's squared distance over its
    threshold and the classifier's doubt (1 - top probability) over the threshold of the
    digit it reads."""
    p = np.asarray(probabilities, np.float64)
    doubt = 1.0 - p.max(axis=1)
    allowed = 1.0 - np.asarray(t.min_confidence)[p.argmax(axis=1)]
    shape = t.distance(features(score, probabilities, images)) / t.max_distance
    return np.maximum(shape, doubt / allowed)


def calibrate(score: np.ndarray, probabilities: np.ndarray, images: np.ndarray,
              tail: float = SHAPE_TAIL, margin: float = SHAPE_MARGIN,
              confidence_tail: float = CONFIDENCE_TAIL) -> Thresholds:
    """Thresholds from real digits (the validation slice): see ``METHOD``."""
    values = features(score, probabilities, images)
    x = values.copy()
    floors = tuple(float(np.median(x[:, j])) if name in ONE_SIDED else None for j, name in enumerate(FEATURES))
    for j, floor in enumerate(floors):
        if floor is not None:
            x[:, j] = np.maximum(x[:, j], floor)
    mean = x.mean(axis=0)
    covariance = np.cov(x, rowvar=False) + 1e-9 * np.eye(x.shape[1])
    partial = Thresholds(FEATURES, tuple(map(float, mean)), tuple(tuple(map(float, r)) for r in covariance), floors, 1.0,
                         (0.0,) * NUM_CLASSES)
    max_distance = float(np.quantile(partial.distance(values), 1 - tail)) * margin
    min_confidence = _confidence_bounds(np.asarray(probabilities, np.float64), confidence_tail)
    return Thresholds(partial.features, partial.mean, partial.covariance, floors, max_distance, min_confidence)


def _confidence_bounds(probabilities: np.ndarray, tail: float) -> tuple[float, ...]:
    """Per digit d, the ``tail`` quantile of the top probabilities of the crops read as d
    (the quantile over all crops where fewer than ``MIN_PER_CLASS`` are read as d)."""
    top, read = probabilities.max(axis=1), probabilities.argmax(axis=1)
    overall = float(np.quantile(top, tail))
    return tuple(float(np.quantile(top[read == d], tail)) if (read == d).sum() >= MIN_PER_CLASS else overall
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
