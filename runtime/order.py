"""Reading order of boxes: lines top to bottom, boxes left to right (numpy-free, no OpenCV),
shared by the camera reader and the tracker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

Box = tuple[int, int, int, int]  # x, y, w, h

#: Two boxes are neighbours in a line when their rows overlap by at least this share of
#: the shorter one's height (a line that climbs or falls still overlaps box to box).
MIN_OVERLAP: Final = 0.3


def reading_order(boxes: Sequence[Box]) -> list[tuple[int, int]]:
    """(index into ``boxes``, line number) in reading order.

    A line is a chain of neighbours: each box links to the nearest box on its right whose
    rows overlap its own, and the shortest links are taken first, one on each side of a
    box. A line written at a slant is then one line, which a single band of rows for
    the whole line would cut in two. Lines run top to bottom by their boxes' median centre,
    boxes left to right."""
    right, left = _links(boxes)
    lines = []
    for start in sorted(i for i in range(len(boxes)) if i not in left):
        chain = [start]
        while chain[-1] in right:
            chain.append(right[chain[-1]])
        lines.append(chain)
    centre = [median([boxes[i][1] * 2 + boxes[i][3] for i in chain]) for chain in lines]
    order = sorted(range(len(lines)), key=lambda k: (centre[k], boxes[lines[k][0]][0]))
    return [(i, line) for line, k in enumerate(order) for i in lines[k]]


def _links(boxes: Sequence[Box]) -> tuple[dict[int, int], dict[int, int]]:
    """(right neighbour of each box, left neighbour of each box), shortest links first."""
    by_x = sorted(range(len(boxes)), key=lambda i: (boxes[i][0], boxes[i][1]))
    candidates = []
    for n, a in enumerate(by_x):
        ax, ay, aw, ah = boxes[a]
        for b in by_x[n + 1:]:
            bx, by, _, bh = boxes[b]
            overlap = min(ay + ah, by + bh) - max(ay, by)
            if overlap >= MIN_OVERLAP * min(ah, bh):
                candidates.append((bx - (ax + aw), -overlap, a, b))
    right: dict[int, int] = {}
    left: dict[int, int] = {}
    for _, _, a, b in sorted(candidates):
        if a not in right and b not in left:
            right[a], left[b] = b, a
    return right, left


def median(values: list[int]) -> float:
    """Median of a short list (np.median costs more than the whole line clustering)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
