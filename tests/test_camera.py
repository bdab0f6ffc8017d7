"""DigitReader: digits read from camera frames, in reading order, and every bad frame."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from digitvae.runtime import camera, crops, ink, novelty, segment, strokes  # noqa: E402
from digitvae.runtime.camera import Detection, DigitReader  # noqa: E402
from digitvae.bench.evaluate import evaluate_reader  # noqa: E402
from digitvae.data.frames import FrameGenerator  # noqa: E402
from camera_pages import FakeVAE, clear_digits, gen, paper, reader  # noqa: E402,F401 (fixtures)

# Floors on a small seeded set (40 frames, ~240 digits): the reader's own part (finding
# the digits) is held near the 98%; reading them right also depends on the model's
# is-digit verdict. The full 500-frame table comes from benchmarks/bench_camera.py.
MIN_FOUND = 0.98
MIN_ACCURACY = 0.95
# Issue 5's targets for what is *not* a digit. The 200-blank-frame benchmark measures 1.5
# false digits per 100 frames with the shipped model (5.8 on seed 1's 600, see the README);
# the 25 blank frames here hold the small-sample bound (test_few_false_digits_on_blank_frames).
MAX_SPURIOUS = 0.01
MAX_FALSE_PER_100_BLANK = 1.0


# --- accuracy on generated frames --------------------------------------------------------


@pytest.fixture(scope="module")
def paper_result(reader, gen) -> dict:
    return evaluate_reader(reader, n_frames=40, blank_frames=25, generator=gen)


def test_reads_generated_frames(paper_result):
    result = dict(paper_result)
    detail = result.pop("failures")
    assert result["found"] >= MIN_FOUND, (result, detail)
    assert result["digit_accuracy"] >= MIN_ACCURACY, (result, detail)
    assert result["frames_read_in_order"] >= 0.3, result  # a spurious mark spoils a frame's order


def test_few_spurious_detections(paper_result):
    result = dict(paper_result)
    detail = result.pop("failures")
    # ~290 detections on 40 frames, where one spurious detection is 0.35%: twice the target
    # is the small-sample bound (the 500-frame benchmark measures 0.18%; the model before
    # the confidence test, 6.9%).
    assert result["spurious_rate"] <= 2 * MAX_SPURIOUS, (result, detail)


def test_few_false_digits_on_blank_frames(paper_result):
    result = dict(paper_result)
    detail = result.pop("failures")
    # 25 blank frames: at most one false digit among them (4 per 100) is the small-sample
    # bound. The 200-frame benchmark measures 1.0 per 100 (5.0 before the quarter-turn
    # feature and the frame-edge rule).
    assert result["false_digits_per_100_blank"] <= 4 * MAX_FALSE_PER_100_BLANK, (result, detail)


def test_reads_chalk_on_a_board(reader, gen):
    result = evaluate_reader(reader, n_frames=20, blank_frames=0, light_ink=True, generator=gen)
    assert result["found"] >= MIN_FOUND - 0.02 and result["digit_accuracy"] >= MIN_ACCURACY - 0.02, result


# --- reading order and stroke grouping -----------------------------------------------


def test_reading_order_two_lines(mnist):
    digits = clear_digits(mnist, [1, 2, 3, 4, 5, 6, 7])
    # Line 0 wanders up and down (the third digit sits higher than the first); line 1
    # starts further left than line 0.
    places = [(120, 60), (220, 80), (320, 40), (420, 70), (60, 260), (180, 250), (300, 270)]
    found = DigitReader(FakeVAE()).locate(paper(digits, places, 90))
    assert found.lines == [0, 0, 0, 0, 1, 1, 1]
    xs = [b[0] for b in found.boxes]
    assert xs[:4] == sorted(xs[:4]) and xs[4:] == sorted(xs[4:])
    centres = [(x + w / 2, y + h / 2) for x, y, w, h in found.boxes]
    expected = [(x + 45, y + 45) for x, y in places]
    assert all(abs(a[0] - b[0]) < 25 and abs(a[1] - b[1]) < 25 for a, b in zip(centres, expected))


def test_strokes_of_one_digit_stay_together(mnist):
    five = clear_digits(mnist, [5])[0].copy()
    ys, _ = np.nonzero(five > 100)
    cut = ys.min() + 4  # break the "5" below its bar: two separate pieces
    five[cut:cut + 2] = 0
    found = DigitReader(FakeVAE()).locate(paper([five], [(200, 150)], 120))
    assert len(found.boxes) == 1


def test_a_digit_cut_by_the_frame_edge_is_not_read_until_it_is_in_view(mnist):
    digits = clear_digits(mnist, [8, 3])
    # The "8" hangs off the top edge (its lower two thirds are in view), the "3" is whole.
    page = paper(digits, [(100, 0), (300, 200)], 100)
    page[:100, 100:200] = paper([digits[0]], [(100, 0)], 100, size=(200, 640))[20:120, 100:200]
    found = DigitReader(FakeVAE()).locate(page)
    assert len(found.boxes) == 1 and found.boxes[0][0] > 250
    whole = DigitReader(FakeVAE()).locate(paper(digits, [(100, 40), (300, 200)], 100))
    assert len(whole.boxes) == 2
    # A photo of one digit that fills most of the frame is read, though its ink touches the top.
    close_up = paper(digits[:1], [(10, 10)], 100, size=(120, 120))
    close_up = close_up[np.nonzero((close_up < 150).any(axis=1))[0][0]:]
    assert len(DigitReader(FakeVAE()).locate(close_up).boxes) == 1


@pytest.mark.parametrize("seed, index", [(3, 557), (4, 728)])
def test_a_cross_or_star_read_as_a_4_is_not_a_digit(shipped_vae, mnist, monkeypatch, seed, index):
    # Generated blank frames (the benchmark's draws) where a cross or a star, drawn with
    # the digits' pen, is read as a 4 (probability 0.53 and 0.65) and passes the
    # profile, confidence and joint tests: the half-turn gate tells it from a 4 (without the
    # star gate too, which may catch it as well).
    frame = FrameGenerator.from_mnist(seed=seed).blank_frame(index=index).image
    assert not [d for d in DigitReader(shipped_vae).read(frame) if d.is_digit]
    no_star = replace(shipped_vae.thresholds, max_spokes=(1.0,) * 10)
    monkeypatch.setattr(shipped_vae, "thresholds", no_star)
    assert not [d for d in DigitReader(shipped_vae).read(frame) if d.is_digit]
    monkeypatch.setattr(shipped_vae, "thresholds", replace(no_star, max_half_turn=(np.inf,) * 10))
    assert 4 in [d.digit for d in DigitReader(shipped_vae).read(frame) if d.is_digit]  # the gates' catch


@pytest.mark.parametrize("seed, index", [(2, 563), (17, 689)])
def test_a_lopsided_star_is_not_a_digit(shipped_vae, mnist, seed, index):
    # Generated blank frames (the benchmark's draws) that hold a star or cross which the
    # shipped model once read as a 4: nothing on them is accepted as a digit.
    frame = FrameGenerator.from_mnist(seed=seed).blank_frame(index=index).image
    assert not [d for d in DigitReader(shipped_vae).read(frame) if d.is_digit]


def test_a_digit_the_model_doubts_is_read_again_with_a_bolder_pen(shipped_vae, gen, mnist, monkeypatch):
    # Frame 24 of the benchmark's draw holds a "4" that one reading takes for a doubtful 4
    # and rejects; the mean of that reading and one of the 4 drawn bolder is a 4 it accepts.
    frame = gen.frame(index=24)
    assert frame.digits[1] == 4
    four = frame.boxes[1]

    def read_four() -> Detection:
        found = DigitReader(shipped_vae).read(frame.image)
        return min(found, key=lambda d: abs(d.box[0] - four[0]) + abs(d.box[1] - four[1]))

    seen = read_four()
    assert seen.is_digit and seen.digit == 4
    with monkeypatch.context() as patch:
        patch.setattr(camera, "SECOND_LOOK", False)
        once = read_four()
    assert not once.is_digit and once.digit == 4 and once.probability < seen.probability
    # A second reading of another digit confirms nothing: the crop stays rejected.
    one = mnist.test_images[mnist.test_labels == 1][:1].astype(np.float32) / 255
    monkeypatch.setattr(camera.crops, "bolder", lambda crops: np.repeat(one, len(crops), axis=0))
    assert not read_four().is_digit


def test_a_digit_that_runs_into_a_long_line_is_read_alone(mnist, monkeypatch):
    page = paper(clear_digits(mnist, [2, 3, 7, 1]), [(100, 200), (170, 200), (240, 200), (310, 200)], 60)
    ink = page[:, 310:370] < 100
    bottom = np.nonzero(ink.any(axis=1))[0][-1]
    x = 310 + int(np.nonzero(ink[bottom])[0].mean())
    page[bottom - 2:420, x - 1:x + 2] = np.minimum(page[bottom - 2:420, x - 1:x + 2], 110)  # a line on from the "1"
    boxes = DigitReader(FakeVAE()).locate(page).boxes
    assert len(boxes) == 4 and max(box[3] for box in boxes) < 50  # the "1" without the line
    monkeypatch.setattr("digitvae.runtime.strokes._split_overtall", lambda contrast, binary, pieces, *args: pieces)
    assert DigitReader(FakeVAE()).locate(page).boxes[-1][3] > 200  # without the rule: "1" and line as one


def test_a_digit_on_a_line_as_dark_as_its_ink_is_read_without_it(mnist, monkeypatch):
    # In a shadow, a grid line can come out as dark as the ink: re-thresholding cannot part
    # it from the digit that touches it, so the stretch of bare line is cut off instead.
    page = paper(clear_digits(mnist, [2, 3, 9, 5]), [(100, 200), (170, 200), (240, 200), (310, 200)], 60)
    ink = page[:, 240:300] < 100
    bottom = np.nonzero(ink.any(axis=1))[0][-1]
    x = 240 + int(np.nonzero(ink[bottom])[0].mean())
    page[bottom - 2:420, x - 1:x + 2] = page[200:260, 240:300].min()  # a line on from the "9", as dark
    boxes = DigitReader(FakeVAE()).locate(page).boxes
    assert len(boxes) == 4 and max(box[3] for box in boxes) < 60, boxes  # the "9" without the line
    monkeypatch.setattr("digitvae.runtime.strokes._trim_line", lambda binary, piece, *args: [piece])
    assert max(box[3] for box in DigitReader(FakeVAE()).locate(page).boxes) > 150  # without: "9" and line


def test_bits_between_stacked_digits_do_not_chain_them_into_one_group():
    from digitvae.runtime.segment import _merge

    # Two digits 40 px tall, one above the other, and a grid's bit between them that sits
    # close enough to join either one alone.
    upper, bit, lower = (0, 0, 20, 40), (6, 42, 8, 10), (0, 54, 20, 40)
    roots = _merge(np.array([upper, bit, lower]))
    assert roots[0] != roots[2]
    assert roots[1] in (roots[0], roots[2])


def test_a_dot_beside_a_digit_is_not_part_of_it():
    from digitvae.runtime.segment import _merge

    # A digit 60 px tall and a 10 px dot just below it; and a "5"'s loose bar above its body.
    digit, dot = (0, 0, 30, 60), (10, 65, 10, 10)
    body, bar = (0, 10, 30, 50), (10, 0, 25, 6)
    roots = _merge(np.array([digit, dot, body, bar]))
    assert roots[0] != roots[1]
    assert roots[2] == roots[3]
    # A dash a little over a quarter of the digit's height above it (a mark, as generated
    # frames have) stays out; at 0.3 of it, the limit before, it joined and shrank the digit.
    digit, dash = (0, 20, 40, 60), (5, 0, 25, 4)
    assert len(set(_merge(np.array([digit, dash])))) == 2
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("digitvae.runtime.segment.MAX_GAP", 0.3)
        assert len(set(_merge(np.array([digit, dash])))) == 1


def test_pinholes_in_a_pencil_8_do_not_make_it_a_mesh():
    import cv2

    def pieces(binary):
        return strokes._components(binary, (0, 0), 1)

    eight = np.zeros((70, 50), np.uint8)
    cv2.circle(eight, (25, 18), 13, 255, 4)
    cv2.circle(eight, (25, 48), 16, 255, 4)
    speckled = eight.copy()
    for y, x in ((5, 25), (18, 12), (48, 9), (64, 25)):  # paper showing through the grain: 1 px each
        speckled[y, x] = 0
    assert all(not strokes._netlike(p, 14) for p in pieces(speckled))
    # A grid's mesh (nine large cells) is one still.
    mesh = np.zeros((70, 70), np.uint8)
    for k in range(0, 70, 22):
        mesh[k:k + 2, :], mesh[:, k:k + 2] = 255, 255
    assert any(strokes._netlike(p, 14) for p in pieces(mesh))
    with pytest.MonkeyPatch.context() as patch:  # counting the pinholes, the 8 was a mesh
        patch.setattr("digitvae.runtime.strokes.MIN_AREA", 1)
        assert any(strokes._netlike(p, 14) for p in pieces(speckled))


def test_crop_is_normalised_like_mnist(mnist):
    image = clear_digits(mnist, [7])[0]
    found = DigitReader(FakeVAE()).locate(paper([image], [(250, 150)], 150))
    crop = found.crops[0]
    assert crop.shape == (28, 28) and crop.dtype == np.float32
    assert 0.0 <= crop.min() and crop.max() <= 1.0 and crop.max() > 0.95  # white ink, cores at 1
    ys, xs = np.nonzero(crop > 0.1)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 in (19, 20, 21)  # the 20x20 box
    m = cv2.moments(crop)
    # MNIST's centre of mass is at pixel (14, 14) within half a pixel.
    assert abs(m["m10"] / m["m00"] - 14) <= 0.5 and abs(m["m01"] / m["m00"] - 14) <= 0.5
    reference = image.astype(np.float32) / 255
    # The same picture, up to MNIST's own half-pixel rounding of the centre.
    shifted = [np.roll(crop, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    assert max(np.corrcoef(c.ravel(), reference.ravel())[0, 1] for c in shifted) > 0.95


def test_crop_fits_the_ink_that_is_left_not_the_mask(mnist):
    from digitvae.runtime import crops

    digit = cv2.resize(clear_digits(mnist, [3])[0], (100, 100)).astype(np.float32) / 255
    alone = crops.mnist_crop(digit)
    # The same digit in a box that a faint piece (zeroed by the ink levels) stretched to 3x.
    stretched = np.zeros((300, 300), np.float32)
    stretched[100:200, 180:280] = digit
    assert np.abs(crops.mnist_crop(stretched) - alone).max() < 1e-6
    assert crops.mnist_crop(np.zeros((40, 30), np.float32)).max() == 0.0  # nothing left: an empty crop


def test_digits_inside_a_box_drawn_round_them_are_read(mnist, reader, monkeypatch):
    # A box's lines, as dark as the ink and three times the digits' height, reach round the
    # first two: joined to them as one digit's pieces, they swallowed both.
    labels = [2, 3, 4, 5, 6]
    page = paper(clear_digits(mnist, labels), [(120 + 70 * i, 200) for i in range(5)], 40)
    page[185:285, 100:104] = 40
    page[281:285, 100:260] = 40
    page[185:189, 100:200] = 40
    assert [d.digit for d in reader.read(page) if d.is_digit] == labels
    monkeypatch.setattr(segment, "OVERTALL", np.inf)  # the box may join the digits
    assert [d.digit for d in reader.read(page) if d.is_digit] == labels[2:]


def test_a_sheets_edges_far_taller_than_the_digits_are_not_1s(reader, monkeypatch):
    # A real puzzle photo (tests/data/page_edges: train split, MIT): the desk on either side of
    # the sheet leaves two dark strokes as tall as most of the photo, each read as a 1, surely.
    # Beside the page's digits, twenty times smaller, they are no digits.
    from conftest import REPO
    photo = cv2.imread(str(REPO / "tests/data/page_edges/03_08_honor_view_10_0.jpg"))

    def out_of_size(detections):
        typical = np.median([d.box[3] for d in detections if d.is_digit])
        return [(d.digit, d.is_digit) for d in detections if d.box[3] > 5 * typical]

    found = reader.read(photo)
    assert sum(d.is_digit for d in found) >= 40 and not any(accepted for _, accepted in out_of_size(found))
    heights = [40, 40, 240, 40]
    # Three accepted digits are a page to compare with; two among marks are not.
    assert camera.in_proportion(heights, np.array([True, True, False, True])).tolist() == [True, True, False, True]
    assert camera.in_proportion(heights, np.array([True, False, False, True])).all()
    monkeypatch.setattr(camera, "MAX_SIZE_RATIO", np.inf)  # without the rule
    assert out_of_size(reader.read(photo)).count((1, True)) == 2


def test_a_mark_far_smaller_than_the_pages_digits_is_not_a_digit(mnist, reader, monkeypatch):
    # A fragment of a stroke or a speck of the surface, a third as tall as the digits around
    # it, read as a 1 on its own: beside them it is no digit. Alone, it still is one.
    labels = [2, 3, 4, 7]
    digits = paper(clear_digits(mnist, labels), [(40 + 100 * i, 150) for i in range(4)], 80)
    speck = paper(clear_digits(mnist, [1]), [(560, 180)], 24)
    page = np.minimum(digits, speck)
    assert [d.digit for d in reader.read(page) if d.is_digit] == labels
    assert [d.digit for d in reader.read(speck) if d.is_digit] == [1]
    assert camera.in_proportion([40, 40, 10, 40], np.ones(4, bool)).tolist() == [True, True, False, True]
    monkeypatch.setattr(camera, "MIN_SIZE_RATIO", 0.0)  # without the rule
    assert [d.digit for d in reader.read(page) if d.is_digit] == [*labels, 1]


def test_a_page_read_on_its_side_keeps_its_narrow_digits(mnist, reader):
    # Read a quarter turn round, a 1's height in the frame is its width: its size beside the
    # page's other digits is measured as it is read, upright.
    labels = [2, 3, 7, 4]
    page = paper(clear_digits(mnist, labels), [(40 + 100 * i, 150) for i in range(4)], 80)
    cv2.line(page, (466, 166), (462, 220), 40, 5, cv2.LINE_AA)  # a 1, 11 pixels wide
    assert [d.digit for d in reader.read(page) if d.is_digit] == [*labels, 1]
    assert [d.digit for d in reader.read(np.rot90(page).copy()) if d.is_digit] == [*labels, 1]


def test_a_wide_pen_with_a_pale_middle_is_read_as_one_solid_stroke(monkeypatch):
    # A wide pen photographed sharpened leaves a paler line along its stroke's middle: the
    # crop must show one stroke, not two thin ones side by side (a 1 read as an 8).
    page = np.full((80, 60), 220, np.uint8)
    page[10:70, 26:33] = 60  # a 1, 7 pixels wide ...
    page[10:70, 28:31] = 150  # ... its middle 3 pixels pale
    (crop,) = DigitReader(FakeVAE()).locate(page).crops
    profile = crop[14]  # across the stroke at mid-height
    inked = np.flatnonzero(profile > 0.5)
    assert len(inked) >= 2 and (profile[inked[0]:inked[-1] + 1] > 0.9).all()  # no dip in the middle

    contrast = np.zeros((8, 8), np.uint8)
    contrast[:, 3:5] = 200  # a stroke 2 pixels wide: all edge, no middle ...
    contrast[2, 3] = 120  # ... so a pale pixel stays pale
    strokes_ = contrast > 0
    assert 0.0 < crops.ink_levels(contrast, strokes_, 200.0, solid_cores=True)[2, 3] < 1.0

    wide = np.zeros((12, 12), np.uint8)
    wide[:, 2:9] = 200  # a stroke 7 pixels wide ...
    wide[:, 4:7] = 120  # ... its middle pale
    assert crops.ink_levels(wide, wide > 0, 200.0, solid_cores=True)[6, 5] == 1.0
    assert crops.ink_levels(wide, wide > 0, 200.0, solid_cores=False)[6, 5] < 1.0  # chalk's grain is kept
    board = np.full((80, 60), 40, np.uint8)  # the reader asks for it on a board
    board[10:70, 26:33] = 200
    seen = []
    monkeypatch.setattr(crops, "ink_levels",
                        lambda contrast, *_, solid_cores: seen.append(solid_cores) or np.ones(contrast.shape, np.float32))
    DigitReader(FakeVAE()).locate(board)
    DigitReader(FakeVAE()).locate(page)
    assert seen == [False, True]


def test_the_second_look_draws_the_bolder_pen_that_training_drew(mnist, monkeypatch):
    torch = pytest.importorskip("torch")
    from digitvae.runtime import crops
    from digitvae.train import augment

    digits = mnist.test_images[:16].astype(np.float32) / 255
    monkeypatch.setattr(augment, "STROKE_CHANGE_P", 2.0)  # every image is drawn thicker
    trained = augment.random_stroke_width(torch.from_numpy(digits[:, None]), torch.Generator().manual_seed(0))
    assert np.abs(crops.bolder(digits) - trained[:, 0].numpy()).max() < 1e-6
    assert (crops.bolder(digits) >= digits).all() and crops.bolder(digits).sum() > 1.2 * digits.sum()


def test_a_28x28_frame_is_taken_as_an_mnist_crop(mnist):
    image = mnist.test_images[0]
    fake = DigitReader(FakeVAE())
    for frame in (image, 255 - image, cv2.cvtColor(255 - image, cv2.COLOR_GRAY2BGR)):
        found = fake.locate(frame)
        assert found.boxes == [(0, 0, 28, 28)] and found.lines == [0]
        assert np.allclose(found.crops[0], image.astype(np.float32) / 255, atol=1 / 255)
    assert fake.locate(np.zeros((28, 28), np.uint8)).boxes == []


def test_all_crops_of_a_frame_go_to_the_model_in_one_batch(gen):
    fake = FakeVAE()
    frame = gen.frame(10, lines=2, index=3)
    detections = DigitReader(fake).read(frame.image)
    assert len(detections) >= 10
    assert fake.calls == [("classify", len(detections)), ("is_digit", len(detections))]


def test_uses_assess_when_the_model_has_it(shipped_vae, gen):
    calls = []

    class Spy:
        def assess(self, images, **options):
            calls.append((len(images), options))
            return shipped_vae.assess(images, **options)

    detections = DigitReader(Spy()).read(gen.frame(6, index=4).image)
    assert calls == [(len(detections), {"gates": camera.GATES})]
    assert "dot" not in camera.GATES and set(camera.GATES) < set(novelty.GATES)


def test_detections(reader, gen):
    frame = gen.frame(5, index=2)
    detections = reader.read(frame.image)
    assert detections and all(isinstance(d, Detection) for d in detections)
    for d in detections:
        assert all(isinstance(v, int) for v in d.box)
        x, y, w, h = d.box
        assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480
        assert d.crop.shape == (28, 28) and d.crop.dtype == np.float32
        assert isinstance(d.digit, int) and 0 <= d.digit <= 9
        assert isinstance(d.probability, float) and 0.0 <= d.probability <= 1.0
        assert isinstance(d.is_digit, bool) and isinstance(d.line, int)
    with pytest.raises(AttributeError):
        detections[0].digit = 3  # frozen


# --- bad frames ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(mnist) -> np.ndarray:
    return paper(clear_digits(mnist, [2, 0, 8]), [(100, 150), (250, 150), (400, 150)], 100)


def boxes(reader_: DigitReader, frame) -> list:
    return [d.box for d in reader_.read(frame)]


@pytest.mark.parametrize("frame", [np.zeros((1, 1), np.uint8), np.zeros((480, 640), np.uint8),
                                   np.full((480, 640, 3), 255, np.uint8), np.zeros((10, 4000, 3), np.uint8)])
def test_empty_looking_frames_give_nothing(frame):
    assert DigitReader(FakeVAE()).read(frame) == []


@pytest.mark.parametrize("frame, error, words", [
    (np.zeros((0, 0), np.uint8), ValueError, "non-empty"),
    (np.zeros((0, 640, 3), np.uint8), ValueError, "non-empty"),
    (None, TypeError, "got None"),
    ([[0, 1], [2, 3]], TypeError, "numpy array"),
    (np.zeros((3, 480, 640), np.uint8), ValueError, "transpose"),
    (np.zeros((480, 640, 2), np.uint8), ValueError, "shape"),
    (np.zeros((4, 480, 640, 3), np.uint8), ValueError, "shape"),
    (np.zeros((480, 640), np.complex64), TypeError, "dtype"),
    (np.full((480, 640), np.nan, np.float32), ValueError, "NaN"),
    (np.full((480, 640), -1.0, np.float32), ValueError, ">= 0"),
    (np.full((480, 640), -5, np.int16), ValueError, ">= 0"),
])
def test_frames_that_are_not_pictures_are_refused(frame, error, words):
    with pytest.raises(error, match=words):
        DigitReader(FakeVAE()).read(frame)


def test_other_depths_and_layouts_read_the_same(page):
    fake = DigitReader(FakeVAE())
    expected = boxes(fake, page)
    assert len(expected) == 3
    bgr = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    variants = {
        "bgr": bgr,
        "gray (H, W, 1)": page[:, :, None],
        "16-bit": page.astype(np.uint16) * 257,
        "12-bit": (page.astype(np.uint16) * 16),
        "float32 in [0, 1]": page.astype(np.float32) / 255,
        "float64 0-255": page.astype(np.float64),
        "float16 in [0, 1]": (page / 255).astype(np.float16),
        "uint32 16-bit": page.astype(np.uint32) * 257,
        "bgra": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
        "rgb view (negative stride)": bgr[:, :, ::-1],
        "fortran order": np.asfortranarray(page),
        "strided view": np.pad(bgr, ((0, 0), (0, 0), (0, 1)))[:, :, :3],
    }
    for name, frame in variants.items():
        assert boxes(fake, frame) == expected, name
    every_other = boxes(fake, page[::2, ::2])  # a non-contiguous half-size view
    assert len(every_other) == 3


def test_transparent_ink_is_composited_over_white(page):
    # A PNG of ink on a transparent background: colour black, the ink in alpha only.
    bgra = np.zeros(page.shape + (4,), np.uint8)
    bgra[:, :, 3] = 255 - page
    fake = DigitReader(FakeVAE())
    assert boxes(fake, bgra) == boxes(fake, page)


def test_huge_frame_is_read_in_bounded_time(page):
    big = cv2.resize(page, (8000, 6000), interpolation=cv2.INTER_LINEAR)
    huge = np.full((8000, 8000), 230, np.uint8)
    huge[1000:7000] = big
    fake = DigitReader(FakeVAE())
    t0 = time.perf_counter()
    found = boxes(fake, huge)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0  # seconds: generous for a slow CI machine; it is ~0.2 s on a laptop
    assert len(found) == 3
    scale = 8000 / 640  # boxes come back in the huge frame's own pixels
    for (x, y, w, h), (ex, ey, ew, eh) in zip(found, boxes(fake, page)):
        assert abs(x - ex * scale) < 3 * scale and abs(y - (ey * scale + 1000)) < 3 * scale
        assert abs(h - eh * scale) < 4 * scale


def test_bool_frame_is_read(page):
    assert len(boxes(DigitReader(FakeVAE()), page > 128)) == 3


@pytest.mark.parametrize("option", ["max_side", "min_height", "max_digits"])
def test_reader_options_are_checked(option):
    with pytest.raises(ValueError, match=option):
        DigitReader(FakeVAE(), **{option: 0})


@pytest.mark.parametrize("quarter", [2, -2, True, 0.5, "1"])
def test_a_quarter_turn_that_is_not_one_is_refused(page, quarter):
    with pytest.raises(ValueError, match="quarter: expected -1, 0 or 1"):
        DigitReader(FakeVAE()).locate(page, quarter)


# --- imports -------------------------------------------------------------------------------


def test_runtime_import_does_not_load_opencv():
    code = ("import sys, digitvae.runtime, digitvae.runtime.demo, digitvae.runtime.commands; "
            "assert 'cv2' not in sys.modules, 'cv2 imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_opencv_gives_an_install_hint():
    code = ("import sys; sys.modules['cv2'] = None\n"
            "try:\n    import digitvae.runtime.camera\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'digitvae[camera]'" in out


