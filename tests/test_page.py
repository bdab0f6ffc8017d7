"""The page stage: a sheet on a dark desk, a turned note, and frames with no page."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from digitvae.runtime import page  # noqa: E402
from digitvae.runtime.camera import DigitReader  # noqa: E402

DIGITS = [2, 7, 1, 8, 3]


def sheet(mnist, labels: list[int], size: tuple[int, int] = (300, 420)) -> np.ndarray:
    """A white gray sheet (h, w) with ``labels`` written in one line as dark ink."""
    h, w = size
    out = np.full((h, w), 235, np.uint8)
    for k, digit in enumerate(labels):
        image = mnist.test_images[int(np.nonzero(mnist.test_labels == digit)[0][0])]
        ink = cv2.resize(image, (60, 60), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
        x, y = 30 + 75 * k, (h - 60) // 2
        region = out[y:y + 60, x:x + 60].astype(np.float32)
        out[y:y + 60, x:x + 60] = np.clip(region * (1 - 0.85 * np.clip(ink, 0, 1)), 0, 255).astype(np.uint8)
    return out


def on_desk(paper: np.ndarray, corners: np.ndarray, frame: tuple[int, int] = (480, 640)) -> np.ndarray:
    """The sheet warped onto a dark, slightly textured desk at ``corners`` (TL, TR, BR, BL)."""
    h, w = paper.shape
    matrix = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), corners.astype(np.float32))
    desk = np.random.default_rng(0).normal(60, 8, frame).clip(0, 255).astype(np.uint8)
    warped = cv2.warpPerspective(paper, matrix, frame[::-1])
    mask = cv2.warpPerspective(np.full_like(paper, 255), matrix, frame[::-1])
    return np.where(mask > 128, warped, desk)


class Reads:
    """Reads every crop as a digit (the image work is under test, not the model)."""

    def classify(self, images):
        p = np.full((len(images), 10), 0.01, np.float32)
        p[:, 1] = 0.91
        return p

    def is_digit(self, images):
        return np.ones(len(images), bool)


def test_a_sheet_on_a_dark_desk_is_found_and_read_inside(mnist):
    corners = np.float32([[120, 90], [540, 110], [520, 400], [100, 380]])
    frame = on_desk(sheet(mnist, DIGITS), corners)
    found = page.find_page(frame)
    assert found is not None
    assert np.abs(found - corners).max() < 12, found  # within a few pixels of the true corners
    boxes = [d.box for d in DigitReader(Reads()).read(frame)]
    assert len(boxes) == len(DIGITS)
    xs = [x for x, _, _, _ in boxes]
    assert xs == sorted(xs)  # in reading order, mapped back to the frame
    assert all(100 <= x <= 540 and 90 <= y <= 400 for x, y, _, _ in boxes)


@pytest.mark.parametrize("turn", [30, -40])
def test_a_turned_note_is_read_along_its_own_lines(mnist, shipped_vae, turn):
    paper = sheet(mnist, DIGITS, (200, 420))
    centre, (h, w) = np.float32([320, 240]), paper.shape
    angle = np.radians(turn)
    rotation = np.float32([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = (np.float32([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]) @ rotation.T) + centre
    frame = on_desk(paper, corners)
    read = [d.digit for d in DigitReader(shipped_vae).read(frame) if d.is_digit]
    assert read == DIGITS
    # Without the page stage the same frame is read as turned digits, not in their order.
    monkey = page.find_page
    try:
        page.find_page = lambda gray: None
        unflattened = [d.digit for d in DigitReader(shipped_vae).read(frame) if d.is_digit]
    finally:
        page.find_page = monkey
    assert unflattened != DIGITS


def test_no_page_where_paper_fills_the_frame_or_a_shadow_crosses_it(mnist):
    paper = cv2.resize(sheet(mnist, DIGITS), (640, 480))
    assert page.find_page(paper) is None
    shadowed = paper.copy()
    shadowed[:, :300] = (shadowed[:, :300] * 0.45).astype(np.uint8)  # a shadow over the left half
    assert page.find_page(shadowed) is None
    assert page.find_page(np.zeros((480, 640), np.uint8)) is None


def test_a_box_on_the_flat_page_maps_back_inside_the_frame():
    corners = np.float32([[100, 50], [500, 80], [480, 400], [90, 380]])
    frame = np.zeros((480, 640), np.uint8)
    flat, sheet_ = page.flatten(frame, corners)
    w, h = sheet_.size
    assert flat.shape == (h, w)
    x, y, bw, bh = sheet_.to_frame((0, 0, w, h))
    assert abs(x - 90) <= 1 and abs(y - 50) <= 1 and abs(x + bw - 500) <= 1 and abs(y + bh - 400) <= 1
