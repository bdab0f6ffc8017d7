"""``digitvae.runtime.order``: lines of digits, written level or at a slant."""

from __future__ import annotations

from digitvae.runtime.order import reading_order


def test_a_line_written_at_a_slant_stays_one_line():
    # Two lines climbing 30 px a digit (about 17 degrees): no band of rows holds either
    # line whole, but each digit overlaps its neighbours.
    upper = [(100 * i, 300 - 30 * i, 50, 60) for i in range(6)]
    lower = [(100 * i, 500 - 30 * i, 50, 60) for i in range(6)]
    boxes = lower[::-1] + upper  # any order in, reading order out
    order = reading_order(boxes)
    assert [boxes[i] for i, _ in order] == upper + lower
    assert [line for _, line in order] == [0] * 6 + [1] * 6


def test_each_box_has_one_neighbour_on_each_side():
    # A tall box beside two lines joins the one it overlaps more (equal gaps), and the lines stay apart.
    boxes = [(0, 0, 40, 50), (60, 0, 40, 50), (0, 60, 40, 50), (60, 60, 40, 50), (120, 20, 40, 80)]
    order = reading_order(boxes)
    lines = [[i for i, line in order if line == k] for k in range(max(line for _, line in order) + 1)]
    assert lines == [[0, 1], [2, 3, 4]]


def test_no_boxes_no_lines():
    assert reading_order([]) == []
