"""The synthetic camera-frame generator and the evaluation that scores a reader on it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from digitvae.bench.evaluate import evaluate_reader, match_boxes  # noqa: E402
from digitvae.data.frames import DIGIT_HEIGHT, FRAME_SIZE, FrameGenerator, sample_clip  # noqa: E402


@pytest.fixture(scope="module")
def gen(mnist) -> FrameGenerator:
    return FrameGenerator.from_mnist(seed=3)


def test_same_seed_same_frame(mnist):
    a = FrameGenerator(mnist.test_images, mnist.test_labels, seed=7)
    b = FrameGenerator(mnist.test_images, mnist.test_labels, seed=7)
    for _ in range(3):
        fa, fb = a.frame(), b.frame()
        assert np.array_equal(fa.image, fb.image)
        assert (fa.digits, fa.boxes, fa.lines, fa.sources) == (fb.digits, fb.boxes, fb.lines, fb.sources)
    assert np.array_equal(a.blank_frame().image, b.blank_frame().image)


def test_frames_do_not_depend_on_drawing_order(mnist):
    a = FrameGenerator(mnist.test_images, mnist.test_labels, seed=7)
    sequential = [a.frame() for _ in range(3)]
    b = FrameGenerator(mnist.test_images, mnist.test_labels, seed=7)
    assert np.array_equal(b.frame(index=2).image, sequential[2].image)
    other = FrameGenerator(mnist.test_images, mnist.test_labels, seed=8)
    assert not np.array_equal(other.frame(index=2).image, sequential[2].image)


def test_only_test_digits_are_drawn(mnist, gen):
    # The generator holds the test split (not the training set) ...
    assert gen.images.shape == mnist.test_images.shape and np.array_equal(gen.images, mnist.test_images)
    # ... and every digit it draws is a test image whose label is the truth it reports.
    for i in range(5):
        frame = gen.frame(index=i)
        assert all(0 <= s < len(mnist.test_images) for s in frame.sources)
        assert list(frame.digits) == [int(mnist.test_labels[s]) for s in frame.sources]


def test_frame_contents(gen):
    frame = gen.frame(n_digits=7, lines=2, index=11)
    width, height = FRAME_SIZE
    assert frame.image.shape == (height, width, 3) and frame.image.dtype == np.uint8
    assert len(frame.digits) == len(frame.boxes) == len(frame.lines) == 7
    assert sorted(set(frame.lines)) == [0, 1] and list(frame.lines) == sorted(frame.lines)
    for x, y, w, h in frame.boxes:
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height
        assert 0.7 * DIGIT_HEIGHT[0] <= h <= 1.3 * DIGIT_HEIGHT[1]
    # Reading order: left to right within each line.
    for line in (0, 1):
        xs = [b[0] for b, ln in zip(frame.boxes, frame.lines) if ln == line]
        assert xs == sorted(xs)


def test_crowded_frames_fit(gen):
    for n, lines in ((12, 1), (30, 3), (12, 6)):
        frame = gen.frame(n, lines=lines, index=n + lines)
        assert len(frame.boxes) == n
        assert all(x >= 0 and y >= 0 and x + w <= 640 and y + h <= 480 for x, y, w, h in frame.boxes)


def test_digit_heights_cover_the_range(gen):
    heights = [h for i in range(40) for (_, _, _, h) in gen.frame(index=100 + i).boxes]
    assert min(heights) < 35 and max(heights) > 100


def test_blank_and_chalk_frames(gen):
    blank = gen.blank_frame(index=5)
    assert blank.digits == () and blank.boxes == ()
    chalk = gen.frame(n_digits=3, light_ink=True, index=5)
    paper = gen.frame(n_digits=3, index=5)
    assert chalk.light_ink and not paper.light_ink
    assert np.median(chalk.image) < 110 < np.median(paper.image)


@pytest.mark.parametrize("kwargs", [{"n_digits": 0}, {"n_digits": 3, "lines": 4}, {"n_digits": 31, "lines": 6},
                                    {"n_digits": 13, "lines": 1}, {"n_digits": 14, "lines": 7}])
def test_bad_layouts_are_refused(gen, kwargs):
    with pytest.raises(ValueError, match="n_digits"):
        gen.frame(**kwargs)


def test_bad_digit_arrays_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        FrameGenerator(np.zeros((4, 28, 28), np.float32), np.zeros(4), seed=0)
    with pytest.raises(ValueError, match="labels"):
        FrameGenerator(np.zeros((4, 28, 28), np.uint8), np.zeros(3), seed=0)


def test_sample_clip(gen):
    frames = list(sample_clip(5, seed=1, hold=2, generator=gen))
    assert len(frames) == 5 and all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[1])  # fresh noise and shake every frame


def test_match_boxes():
    truth = [(0, 0, 10, 20), (30, 0, 10, 20)]
    found = [(31, 1, 10, 18), (100, 100, 5, 5), (1, 0, 9, 21)]
    assert match_boxes(truth, found) == {0: 2, 1: 0}
    assert match_boxes(truth, []) == {}


class _Oracle:
    """A reader that knows the truth: the evaluation must give it a perfect score."""

    def __init__(self, gen: FrameGenerator, n: int) -> None:
        self.truth = {gen.frame(index=i).image.tobytes(): gen.frame(index=i) for i in range(n)}

    def read(self, image):
        from types import SimpleNamespace

        frame = self.truth.get(image.tobytes())
        if frame is None:
            return []
        return [SimpleNamespace(box=b, digit=d, is_digit=True, line=ln)
                for b, d, ln in zip(frame.boxes, frame.digits, frame.lines)]


def test_evaluate_reader_scores_a_perfect_reader(gen):
    result = evaluate_reader(_Oracle(gen, 4), n_frames=4, blank_frames=2, generator=gen)
    assert result["digit_accuracy"] == 1.0 and result["spurious_rate"] == 0.0
    assert result["false_digits_per_100_blank"] == 0.0 and result["frames_read_in_order"] == 1.0
    assert result["failures"] == []
