"""How well a reader reads generated camera frames: the issue's accuracy table.

``evaluate_reader(reader, n_frames, seed)`` draws frames with known digits from
:class:`~digitvae.data.frames.FrameGenerator`, matches each detection to the true
digit boxes, and counts:

* digit accuracy: true digits found, accepted as digits and read as the right digit;
* spurious detections: detections that match no true digit yet are accepted as digits
  (a share of all detections);
* false digits per 100 blank frames: accepted detections on frames with no digits;
* marks accepted: the share of the frames' non-digit marks (dashes, crosses, stars) on
  which a detection was accepted as a digit: where spurious detections come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np

from digitvae.data.frames import Frame, FrameGenerator
from digitvae.runtime.segment import Box

MIN_IOU: Final = 0.3  # a detection matches a truth box it overlaps this much (or whose
# centre it contains while the truth contains its centre: a digit read with a stray stroke)
MAX_FAILURES: Final = 25  # examples kept for a human to look at


class Reader(Protocol):
    def read(self, frame: Any) -> list[Any]: ...


@dataclass
class Tally:
    """Running counts over frames (see the module docstring)."""

    true_digits: int = 0
    found: int = 0
    read_right: int = 0
    rejected_true: int = 0
    detections: int = 0
    spurious: int = 0
    frames: int = 0
    frames_in_order: int = 0
    marks: int = 0
    marks_accepted: int = 0
    spurious_on_marks: int = 0
    blank_frames: int = 0
    blank_false_digits: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "true_digits": self.true_digits,
            "digit_accuracy": self.read_right / max(self.true_digits, 1),
            "found": self.found / max(self.true_digits, 1),
            "true_digits_rejected": self.rejected_true / max(self.true_digits, 1),
            "detections": self.detections,
            "spurious_rate": self.spurious / max(self.detections, 1),
            "spurious_on_marks": self.spurious_on_marks / max(self.spurious, 1),
            "frames_read_in_order": self.frames_in_order / max(self.frames, 1),
            "marks": self.marks,
            "marks_accepted": self.marks_accepted / max(self.marks, 1),
            "blank_frames": self.blank_frames,
            "false_digits_per_100_blank": 100.0 * self.blank_false_digits / max(self.blank_frames, 1),
            "failures": self.failures,
        }


def evaluate_reader(reader: Reader, n_frames: int = 500, seed: int = 0, blank_frames: int = 200, *,
                    light_ink: bool = False, generator: FrameGenerator | None = None) -> dict[str, Any]:
    """Read ``n_frames`` generated frames and ``blank_frames`` frames with no digits;
    return the table as a dict (shares in [0, 1], see :meth:`Tally.summary`).
    ``light_ink`` draws chalk on a board instead of ink on paper; frames come from
    ``generator`` when given (its own seed), else from MNIST's test set with ``seed``."""
    gen = generator if generator is not None else FrameGenerator.from_mnist(seed)
    tally = Tally()
    for i in range(n_frames):
        frame = gen.frame(index=i, light_ink=light_ink)
        score_frame(tally, i, frame, reader.read(frame.image))
    for i in range(blank_frames):
        frame = gen.blank_frame(index=n_frames + i, light_ink=light_ink)
        accepted = [d for d in reader.read(frame.image) if d.is_digit]
        tally.blank_frames += 1
        tally.blank_false_digits += len(accepted)
        _score_marks(tally, frame, accepted)
        if accepted and len(tally.failures) < MAX_FAILURES:
            tally.failures.append({"frame": n_frames + i, "blank": True, "boxes": [d.box for d in accepted]})
    return tally.summary()


def score_frame(tally: Tally, index: int, frame: Frame, detections: list[Any]) -> None:
    """Add one frame's detections to ``tally``."""
    match = match_boxes(list(frame.boxes), [d.box for d in detections])
    tally.frames += 1
    tally.true_digits += len(frame.digits)
    tally.detections += len(detections)
    wrong = []
    for t, digit in enumerate(frame.digits):
        j = match.get(t)
        if j is None:
            wrong.append((t, "missed"))
            continue
        tally.found += 1
        d = detections[j]
        if not d.is_digit:
            tally.rejected_true += 1
            wrong.append((t, f"rejected (read {d.digit})"))
        elif d.digit == digit:
            tally.read_right += 1
        else:
            wrong.append((t, f"read {d.digit}"))
    matched = set(match.values())
    extra = [d for j, d in enumerate(detections) if j not in matched and d.is_digit]
    tally.spurious += len(extra)
    tally.spurious_on_marks += _score_marks(tally, frame, extra)
    read = [(d.digit, d.line) for d in detections if d.is_digit]
    if read == [(dig, ln) for dig, ln in zip(frame.digits, frame.lines)]:
        tally.frames_in_order += 1
    if wrong and len(tally.failures) < MAX_FAILURES:
        tally.failures.append({"frame": index, "truth": list(frame.digits),
                               "wrong": [(t, frame.digits[t], why) for t, why in wrong]})


def _score_marks(tally: Tally, frame: Frame, accepted: list[Any]) -> int:
    """Count the frame's non-digit marks and those an accepted detection sits on; return
    how many of the ``accepted`` detections sit on a mark."""
    tally.marks += len(frame.marks)
    if not frame.marks or not accepted:
        return 0
    on = _contains(np.array(frame.marks, np.float64), _centres(np.array([d.box for d in accepted], np.float64)))
    tally.marks_accepted += int(on.any(axis=1).sum())
    return int(on.any(axis=0).sum())


def match_boxes(truth: list[Box], found: list[Box]) -> dict[int, int]:
    """Greedy one-to-one matching, best overlap first: {truth index: found index}."""
    if not truth or not found:
        return {}
    t = np.array(truth, np.float64)
    f = np.array(found, np.float64)
    iou = _iou(t, f)
    centre_ok = _contains(t, _centres(f)) & _contains(f, _centres(t)).T
    quality = np.where((iou >= MIN_IOU) | centre_ok, iou + 1e-3, 0.0)
    out: dict[int, int] = {}
    while quality.max() > 0:
        i, j = np.unravel_index(int(quality.argmax()), quality.shape)
        out[int(i)] = int(j)
        quality[i, :] = 0.0
        quality[:, j] = 0.0
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-9)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return boxes[:, :2] + boxes[:, 2:] / 2


def _contains(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(len(boxes), len(points)) bool: point inside box."""
    x, y = points[None, :, 0], points[None, :, 1]
    return ((boxes[:, 0, None] <= x) & (x <= boxes[:, 0, None] + boxes[:, 2, None])
            & (boxes[:, 1, None] <= y) & (y <= boxes[:, 1, None] + boxes[:, 3, None]))
