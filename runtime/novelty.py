"""Is this a digit at all? Thresholds calibrated on MNIST's validation slice.

The negative ELBO alone is not enough: a blank or near-blank crop is *easy* to reconstruct
and scores lower than a real digit (about 35 nats against about 100). So a crop counts as a
digit only when all of these hold, each against a quantile of real validation digits:

* its score (negative ELBO) is not higher than nearly all digits' scores;
* the classifier is about as confident as it is on nearly all digits;
* it carries an amount of ink (mean pixel) within the range real digits have.

``oddness`` folds the four tests into one number (<= 1 means "a digit"), so a single
threshold decides and the same number ranks crops for an ROC curve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Share of validation digits each test may reject. Four tests at 0.25% reject at most 1%
#: of real digits together, and fewer in practice, since hard digits fail several at once.
TAIL = 0.0025
INK_MARGIN = 0.5  # ink bounds are widened by half, beyond the extreme validation digits
METHOD = (
    "quantiles of the validation slice (the last 10,000 training images, never the test set): "
    f"max_score = {1 - TAIL:.4f} quantile of the negative ELBO (seed 0), min_confidence = {TAIL:.4f} "
    f"quantile of the top class probability, ink bounds = the {TAIL:.4f} and {1 - TAIL:.4f} quantiles "
    f"of the mean pixel, widened by {INK_MARGIN:.0%}"
)


@dataclass(frozen=True)
class Thresholds:
    max_score: float  # nats
    min_confidence: float  # top class probability
    min_ink: float  # mean pixel value of the 28x28 crop
    max_ink: float

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> "Thresholds":
        try:
            return cls(**{k: float(entry[k]) for k in ("max_score", "min_confidence", "min_ink", "max_ink")})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"manifest thresholds are incomplete or not numbers: {entry!r}") from exc

    def to_manifest(self) -> dict[str, Any]:
        return {**asdict(self), "method": METHOD}


def ink(images: np.ndarray) -> np.ndarray:
    """Mean pixel of each image (N, ...) -> (N,)."""
    return images.reshape(len(images), -1).mean(axis=1)


def oddness(t: Thresholds, score: np.ndarray, probabilities: np.ndarray, images: np.ndarray) -> np.ndarray:
    """(N,) float: the largest of the four tests' ratios to their threshold; <= 1 is a digit."""
    confidence = probabilities.max(axis=1)
    amount = ink(images)
    ratios = np.stack([
        score / t.max_score,
        (1.0 - confidence) / max(1.0 - t.min_confidence, 1e-6),
        t.min_ink / np.maximum(amount, 1e-6),
        amount / t.max_ink,
    ])
    return ratios.max(axis=0)


def calibrate(score: np.ndarray, probabilities: np.ndarray, images: np.ndarray) -> Thresholds:
    """Thresholds from real digits (the validation slice): see ``METHOD``."""
    amount = ink(images)
    low_ink, high_ink = np.quantile(amount, [TAIL, 1 - TAIL])
    return Thresholds(
        max_score=float(np.quantile(score, 1 - TAIL)),
        min_confidence=float(np.quantile(probabilities.max(axis=1), TAIL)),
        min_ink=float(low_ink * (1 - INK_MARGIN)),
        max_ink=float(high_ink * (1 + INK_MARGIN)),
    )


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
