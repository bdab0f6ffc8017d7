"""A steady reading of a stream: digits followed from frame to frame (numpy only).

    from digitvae.runtime.camera import DigitReader
    from digitvae.runtime.tracker import DigitTracker
    tracker = DigitTracker(DigitReader(vae))
    for frame in frames:
        for d in tracker.update(frame):      # shown digits, in reading order
            print(d.track_id, d.digit, f"{d.probability:.2f}", d.is_digit, d.box)

Each frame's detections are matched to the tracks of the frames before (greedy, nearest
first, on the distance between centres in units of the track's size, for pairs of like
size and look); each track keeps its last ``votes`` readings, and shows their vote. A
track is shown from its ``appear``-th sighting and ends after ``vanish`` frames unseen.
When most shown tracks vanish at once while new digits appear (another sheet), every
track ends at once. Matching is in frame pixels; where the page's own motion is
known (a later page step), pass it as ``motion`` and it is taken out first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np

from .order import Box, reading_order

#: Sightings before a track is shown: a detection seen once (a speck, a glint, the edge of
#: a hand) never shows, for one frame's delay on a new digit. Where nothing is shown (the
#: stream's start, a scene cut, an empty view) there is no steady reading to guard: what
#: the reader finds is shown at once, and held through misses from its APPEAR-th sighting.
APPEAR: Final = 2
#: Frames unseen before a track ends: the reading holds through a frame or two the reader
#: misses, and a digit that left is gone three frames later.
VANISH: Final = 3
VOTES: Final = 8  # readings per track in its vote
#: A detection may continue a track when its centre moved at most MAX_SHIFT of the track's
#: size (its box's longer side), its box's area is within a factor MAX_GROWTH of the
#: track's, and its crop looks like the track's last (correlation at least MIN_LIKENESS).
MAX_SHIFT: Final = 0.6
MAX_GROWTH: Final = 2.0
MIN_LIKENESS: Final = 0.5
#: A track shown as a digit stays one while at least KEEP_ACCEPTED of its readings in the
#: vote were accepted as digits; one shown as "not a digit" turns into one from
#: TAKE_ACCEPTED: the gap keeps a digit the model doubts in some frames from blinking,
#: and a mark (or the edge of a hand) it accepts now and then from turning into a digit.
#: A track whose every reading in the vote was the same digit at probability SURE or more
#: (the classifier is sure, only the is-digit test wavers) needs no gap: it is a digit from
#: KEEP_ACCEPTED, and a doubted digit whose first readings were rejections shows sooner.
KEEP_ACCEPTED: Final = 0.25
TAKE_ACCEPTED: Final = 0.75
SURE: Final = 0.99
#: A scene cut: at most CUT_KEPT of the shown tracks (and at least 2 were shown) found a
#: detection, while new ones came. Every track ends, and the new ones are shown at once
#: (see APPEAR): a cut taken wrongly costs new ids, not a gap in the reading.
CUT_KEPT: Final = 1 / 3


class Reading(Protocol):
    """What the tracker uses of a detection (``camera.Detection`` has it)."""

    box: Box
    crop: np.ndarray
    digit: int
    probability: float
    is_digit: bool


class Reader(Protocol):
    def read(self, frame: Any) -> Sequence[Reading]: ...


@dataclass(frozen=True)
class TrackedDetection:
    """A shown digit: the fields of ``camera.Detection`` (``digit``, ``probability`` and
    ``is_digit`` from the track's vote, ``box`` and ``crop`` from its latest sighting),
    plus ``track_id`` (the same while the track lives), ``seen`` (frames it was found in)
    and ``missed`` (frames since it was last found; 0: found in this frame)."""

    box: Box
    crop: np.ndarray
    digit: int
    probability: float
    is_digit: bool
    line: int
    track_id: int
    seen: int
    missed: int


class _Track:
    """One digit followed across frames, and its recent readings (digit, probability, accepted)."""

    def __init__(self, track_id: int, det: Reading, look: np.ndarray, votes: int, fresh: bool) -> None:
        self.id, self.seen, self.missed, self.fresh = track_id, 0, 0, fresh
        self.readings: deque[tuple[int, float, bool]] = deque(maxlen=votes)
        self.digit, self.is_digit, self.probability = int(det.digit), bool(det.is_digit), 0.0
        self.add(det, look)

    def add(self, det: Reading, look: np.ndarray) -> None:
        self.box = tuple(map(float, det.box))
        self.crop, self.look = det.crop, look
        self.seen, self.missed = self.seen + 1, 0
        self.readings.append((int(det.digit), float(det.probability), bool(det.is_digit)))
        self._vote()

    def _vote(self) -> None:
        """Probability-weighted vote; the digit shown changes only when another one gets
        more weight, and whether it is a digit at all with a gap (see KEEP_ACCEPTED)."""
        weight: dict[int, float] = {}
        for digit, p, _ in self.readings:
            weight[digit] = weight.get(digit, 0.0) + p
        best = max(weight, key=weight.__getitem__)
        if weight[best] > weight.get(self.digit, 0.0):
            self.digit = best
        accepted = sum(ok for _, _, ok in self.readings) / len(self.readings)
        sure = all(digit == self.digit and p >= SURE for digit, p, _ in self.readings)
        self.is_digit = accepted >= (KEEP_ACCEPTED if self.is_digit or sure else TAKE_ACCEPTED)
        self.probability = weight.get(self.digit, 0.0) / len(self.readings)


class DigitTracker:
    """Feeds a stream's frames to a reader and keeps the digits it finds as tracks."""

    def __init__(self, reader: Reader | None = None, *, appear: int = APPEAR, vanish: int = VANISH,
                 votes: int = VOTES) -> None:
        """``reader``: a ``DigitReader`` (needed by :meth:`update`, not by :meth:`track`);
        ``appear``, ``vanish``, ``votes``: see the module's constants."""
        for name, value in (("appear", appear), ("vanish", vanish), ("votes", votes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if reader is not None and not callable(getattr(reader, "read", None)):
            raise TypeError(f"reader: expected a DigitReader (an object with read(frame)), got {type(reader).__name__}")
        self.reader, self.appear, self.vanish, self.votes = reader, appear, vanish, votes
        self._tracks: list[_Track] = []
        self._next_id, self._shape = 0, None
        self.cuts = 0  # scene cuts seen

    def update(self, frame: Any, motion: Any = None) -> list[TrackedDetection]:
        """Read one frame and return the shown digits, in reading order. A frame that is
        None or empty (a camera that delivered nothing) counts as a frame without digits;
        ``motion``: see :meth:`track`."""
        if self.reader is None:
            raise TypeError("update: this tracker has no reader; give DigitTracker(reader) or call track(detections)")
        if frame is None or (isinstance(frame, np.ndarray) and frame.size == 0):
            return self.track([], motion=motion)
        return self.track(self.reader.read(frame), shape=getattr(frame, "shape", (0, 0))[:2], motion=motion)

    def track(self, detections: Sequence[Reading], *, shape: tuple[int, ...] | None = None,
              motion: Any = None) -> list[TrackedDetection]:
        """One frame's detections (from ``DigitReader.read``) -> the shown digits.
        ``shape``: the frame's (height, width); a new size ends every track (boxes of
        another size cannot be compared). ``motion``: where known, the map from the last
        frame's pixels to this one's, a 2x3 affine or 3x3 homography (the page's motion)."""
        _check(detections, shape)
        if shape is not None and self._shape is not None and tuple(shape) != self._shape:
            self.reset()
        self._shape = tuple(shape) if shape is not None else self._shape
        if motion is not None:
            self._move(_motion_matrix(motion))
        looks = _looks([d.crop for d in detections])
        pairs = self._match(detections, looks)
        if self._cut(pairs, len(detections)):
            self._tracks, pairs, self.cuts = [], [], self.cuts + 1
        found = {i for i, _ in pairs}
        for k, t in enumerate(self._tracks):
            t.missed += k not in found
        for i, j in pairs:
            self._tracks[i].add(detections[j], looks[j])
        self._tracks = [t for t in self._tracks if t.missed < self.vanish]
        matched = {j for _, j in pairs}
        fresh = not any(t.seen >= self.appear for t in self._tracks)
        for j, det in enumerate(detections):
            if j not in matched:
                self._tracks.append(_Track(self._next_id, det, looks[j], self.votes, fresh))
                self._next_id += 1
        self._drop_replaced()
        return self._shown()

    def reset(self) -> None:
        """End every track (a new stream); ids keep counting up."""
        self._tracks, self._shape = [], None

    def _drop_replaced(self) -> None:
        """End the unseen tracks whose place a shown track seen in this frame has taken
        (the reader found the digit again, but too changed to match): one digit, one box."""
        here = [t.box for t in self._tracks if not t.missed and self._is_shown(t)]
        self._tracks = [t for t in self._tracks if not t.missed or not any(_inside(t.box, box) for box in here)]

    def _is_shown(self, t: _Track) -> bool:
        return t.seen >= self.appear or (t.fresh and not t.missed)

    def _cut(self, pairs: list[tuple[int, int]], found: int) -> bool:
        """Another scene: most shown tracks lost at once while new digits came (CUT_KEPT)."""
        shown = {k for k, t in enumerate(self._tracks) if t.seen >= self.appear}
        kept = sum(1 for i, _ in pairs if i in shown)
        return len(shown) >= 2 and kept <= CUT_KEPT * len(shown) and found > len(pairs)

    def _match(self, detections: Sequence[Reading], looks: np.ndarray) -> list[tuple[int, int]]:
        """Greedy one-to-one (track index, detection index) pairs, nearest first."""
        if not self._tracks or not len(detections):
            return []
        t = np.array([tr.box for tr in self._tracks], np.float64)
        d = np.array([det.box for det in detections], np.float64)
        size = np.maximum(t[:, 2], t[:, 3])[:, None]
        shift = np.hypot(*((d[None, :, :2] + d[None, :, 2:] / 2) - (t[:, None, :2] + t[:, None, 2:] / 2)).transpose(2, 0, 1))
        growth = (d[:, 2] * d[:, 3])[None] / np.maximum(t[:, 2] * t[:, 3], 1.0)[:, None]
        alike = np.stack([tr.look for tr in self._tracks]) @ looks.T
        cost = np.where((shift <= MAX_SHIFT * size) & (growth <= MAX_GROWTH) & (growth >= 1 / MAX_GROWTH)
                        & (alike >= MIN_LIKENESS), shift / size, np.inf)
        pairs, used_t, used_d = [], set(), set()
        for flat in np.argsort(cost, axis=None)[: int(np.isfinite(cost).sum())]:
            i, j = divmod(int(flat), cost.shape[1])
            if i not in used_t and j not in used_d:
                pairs.append((i, j))
                used_t.add(i)
                used_d.add(j)
        return pairs

    def _move(self, m: np.ndarray) -> None:
        """Carry every track's box along the page's motion (its corners through ``m``)."""
        for t in self._tracks:
            x, y, w, h = t.box
            corners = np.array([[x, y, 1], [x + w, y, 1], [x + w, y + h, 1], [x, y + h, 1]]) @ m.T
            corners = corners[:, :2] / corners[:, 2:]
            (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
            t.box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))

    def _shown(self) -> list[TrackedDetection]:
        tracks = [t for t in self._tracks if self._is_shown(t)]
        boxes = [tuple(int(round(v)) for v in t.box) for t in tracks]
        return [TrackedDetection(boxes[i], t.crop, t.digit, t.probability, t.is_digit, line, t.id, t.seen, t.missed)
                for i, line in reading_order(boxes) for t in (tracks[i],)]


def _check(detections: Any, shape: Any) -> None:
    """Refuse what is not one frame's detections, or not a frame's (height, width)."""
    fields = ("box", "crop", "digit", "probability", "is_digit")
    if isinstance(detections, (str, bytes, np.ndarray)) or not isinstance(detections, Sequence):
        raise TypeError(f"detections: expected a list of detections (DigitReader.read's), got {type(detections).__name__}")
    for d in detections:
        if not all(hasattr(d, f) for f in fields) or len(d.box) != 4:
            raise TypeError(f"detections: expected objects with {', '.join(fields)} (box: x, y, w, h), got {d!r:.80}")
    if shape is not None and (len(shape) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in shape)):
        raise ValueError(f"shape: expected a frame's (height, width), got {shape!r}")


def _looks(crops: Sequence[np.ndarray]) -> np.ndarray:
    """Crops -> (N, 784) rows of zero mean and unit length: their dot products are the
    crops' correlations."""
    if not len(crops):
        return np.zeros((0, 1), np.float32)
    x = np.asarray(np.stack(crops), np.float32).reshape(len(crops), -1)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


def _inside(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Is box ``a``'s centre inside box ``b``?"""
    cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
    return b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]


def _motion_matrix(motion: Any) -> np.ndarray:
    m = np.asarray(motion, np.float64)
    if m.shape == (2, 3):
        m = np.vstack([m, [0.0, 0.0, 1.0]])
    if m.shape != (3, 3) or not np.isfinite(m).all():
        raise ValueError(f"motion: expected a finite 2x3 affine or 3x3 homography, got shape {m.shape}")
    return m
