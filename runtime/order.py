"""Reading order of boxes: lines top to bottom, boxes left to right (numpy-free, no OpenCV),
shared by the camera reader and the tracker."""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[int, int, int, int]  # x, y, w, h


def reading_order(boxes: Sequence[Box]) -> list[tuple[int, int]]:
    """(index into ``boxes``, line number) in reading order: lines top to bottom by
    vertical overlap, boxes left to right within a line."""
    lines: list[list[int]] = []
    spans: list[tuple[float, float]] = []
    for i in sorted(range(len(boxes)), key=lambda i: boxes[i][1] + boxes[i][3] / 2):
        _, y, _, h = boxes[i]
        best, best_overlap = -1, 0.0
        for k, (top, bottom) in enumerate(spans):
            overlap = min(bottom, y + h) - max(top, y)
            if overlap >= 0.5 * min(h, bottom - top) and overlap > best_overlap:
                best, best_overlap = k, overlap
        if best < 0:
            lines.append([i])
            spans.append((float(y), float(y + h)))
        else:
            lines[best].append(i)
            members = [boxes[j] for j in lines[best]]
            # The line's span follows its members' median top and bottom, so that
            # one tall or low digit does not drag it into the next line.
            spans[best] = (median([b[1] for b in members]), median([b[1] + b[3] for b in members]))
    order = sorted(range(len(lines)), key=lambda k: (spans[k][0] + spans[k][1]) / 2)
    return [(i, line) for line, k in enumerate(order)
            for i in sorted(lines[k], key=lambda i: boxes[i][0])]


def median(values: list[int]) -> float:
    """Median of a short list (np.median costs more than the whole line clustering)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
