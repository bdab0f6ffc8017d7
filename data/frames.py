"""Synthetic camera frames of handwritten MNIST **test** digits, seeded and reproducible.

For tests, benchmarks and the demo's sample clip (issue 5): each frame is 640x480 BGR
uint8, one or several lines of digits written as ink on paper (or chalk on a board), with
the nuisances a webcam adds: perspective, scale (digit height 24 to 160 px), each digit
tilted up to 15 degrees, blur, noise, uneven light and shadow, JPEG, paper texture, and
distractors (ruled lines, grids, specks, small non-digit marks). The truth comes along:
digits, boxes and line numbers in reading order.

Only MNIST's test set is ever drawn, so that a model trained on the training set is
measured on digits it never saw: :meth:`FrameGenerator.from_mnist` takes the test split
and nothing else, and every :class:`Frame` names the test-set indices it used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from . import paper
from .paper import Box, Surface
from digitvae.runtime.spec import IMAGE_SIZE

cv2 = paper.cv2

FRAME_SIZE: Final = (640, 480)  # width, height: a webcam's VGA frame
DIGIT_HEIGHT: Final = (24, 160)  # pixels, the range of written digit heights
MAX_ROTATION_DEG: Final = 15.0  # each digit's own tilt
MAX_PERSPECTIVE: Final = 0.05  # corner jitter, share of the frame size (page tilt)
MARGIN: Final = 0.08  # digits stay this share of the frame away from its edges,
# more than the perspective jitter, so that no digit leaves the frame.
MAX_DIGITS: Final = 30  # per frame
MAX_LINES: Final = 6  # lines that fit the frame's height at the smallest digit height
MAX_PER_LINE: Final = 12  # digits that fit one line's width at the smallest digit height
MAX_MARKS: Final = 3  # non-digit marks per frame (dashes, crosses, stars)
MARK_SIZE: Final = (6, 36)  # pixels


@dataclass(frozen=True)
class Frame:
    """One synthetic camera frame and its truth, in reading order.

    ``image`` is uint8 BGR (480, 640, 3); ``boxes`` are (x, y, w, h) around each digit's
    ink in frame pixels; ``lines`` numbers the text lines from 0 at the top; ``sources``
    are the MNIST test-set indices drawn; ``light_ink`` is True for chalk on a board;
    ``marks`` are boxes around the non-digit marks (dashes, crosses, stars), which a
    reader may find but should not accept as digits.
    """

    image: np.ndarray
    digits: tuple[int, ...]
    boxes: tuple[Box, ...]
    lines: tuple[int, ...]
    sources: tuple[int, ...]
    light_ink: bool
    marks: tuple[Box, ...] = ()


@dataclass(frozen=True)
class _Glyph:
    """A rendered digit before placement: its alpha (ink coverage) patch in [0, 1]."""

    alpha: np.ndarray  # float32 (h, w)
    label: int
    source: int


class FrameGenerator:
    """Renders frames from MNIST test digits; frame ``k`` of seed ``s`` is always the same.

    Each call to :meth:`frame` or :meth:`blank_frame` draws the next frame of the
    sequence; pass ``index`` to draw a given frame out of order.
    """

    def __init__(self, test_images: np.ndarray, test_labels: np.ndarray, seed: int = 0,
                 size: tuple[int, int] = FRAME_SIZE) -> None:
        """``test_images`` uint8 (N, 28, 28) and ``test_labels`` (N,) in 0-9: MNIST's test
        set (never training digits); ``size`` is (width, height) of the frames."""
        _check_digits(test_images, test_labels)
        self.images, self.labels = test_images, np.asarray(test_labels).astype(np.int64)
        self.seed, self.size, self._count = int(seed), (int(size[0]), int(size[1])), 0

    @classmethod
    def from_mnist(cls, seed: int = 0, size: tuple[int, int] = FRAME_SIZE) -> FrameGenerator:
        """A generator over the real MNIST test set (loaded or fetched by
        :func:`digitvae.data.mnist.load_mnist`)."""
        from .mnist import load_mnist

        data = load_mnist(quiet=True)
        return cls(data.test_images, data.test_labels, seed, size)

    def frame(self, n_digits: int | None = None, lines: int | None = None, *,
              light_ink: bool = False, index: int | None = None) -> Frame:
        """A frame with ``n_digits`` digits (default 1-10) on ``lines`` lines (default 1-3);
        ``light_ink`` draws chalk on a board instead of ink on paper."""
        rng = self._rng(index)
        n = int(rng.integers(1, 11)) if n_digits is None else int(n_digits)
        n_lines = int(rng.integers(1, min(3, max(n, 1)) + 1)) if lines is None else int(lines)
        if not 1 <= n <= MAX_DIGITS or not 1 <= n_lines <= min(n, MAX_LINES) or -(-n // n_lines) > MAX_PER_LINE:
            raise ValueError(f"expected 1 <= lines <= n_digits <= {MAX_DIGITS}, at most {MAX_LINES} lines "
                             f"of at most {MAX_PER_LINE} digits (what fits the frame at the smallest digit "
                             f"height); got n_digits={n}, lines={n_lines}")
        return self._render(rng, n, n_lines, light_ink)

    def blank_frame(self, *, light_ink: bool = False, index: int | None = None) -> Frame:
        """A frame with no digit at all, only surface, rules, specks and marks: for
        measuring false detections."""
        return self._render(self._rng(index), 0, 0, light_ink)

    def _rng(self, index: int | None) -> np.random.Generator:
        if index is None:
            index, self._count = self._count, self._count + 1
        # One stream per (seed, frame): frames do not depend on the order they are drawn.
        return np.random.default_rng([self.seed, int(index)])

    def _render(self, rng: np.random.Generator, n: int, n_lines: int, light_ink: bool) -> Frame:
        w, h = self.size
        surface = paper.board_surface(rng) if light_ink else paper.paper_surface(rng)
        page = paper.blank_page(rng, (h, w), surface)
        if not light_ink and rng.random() < 0.5:
            paper.ruled_lines(rng, page, surface)
        paper.specks(rng, page, surface, int(rng.integers(0, 30)))
        glyphs, origins, line_of = self._layout(rng, n, n_lines, surface)
        stroke = _stroke_width(glyphs)
        marks = _marks(rng, page, surface, _occupied(glyphs, origins), stroke)
        homography = paper.perspective(rng, (h, w), MAX_PERSPECTIVE)
        boxes = [_write_glyph(page, g, o, surface, homography) for g, o in zip(glyphs, origins)]
        mark_boxes = tuple(_warp_box(b, homography) for b in marks)
        page = cv2.warpPerspective(page, homography, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT101)
        page *= paper.lighting(rng, (h, w))[..., None]
        image = paper.camera(rng, page)
        return Frame(image, tuple(g.label for g in glyphs), tuple(boxes), tuple(line_of),
                     tuple(g.source for g in glyphs), light_ink, mark_boxes)

    def _layout(self, rng: np.random.Generator, n: int, n_lines: int,
                surface: Surface) -> tuple[list[_Glyph], list[tuple[int, int]], list[int]]:
        """Choose digits, their size and positions: lines top to bottom, digits left to
        right, all inside the margins. Returns glyphs, top-left origins and line numbers."""
        if n == 0:
            return [], [], []
        w, h = self.size
        counts = _split(rng, n, n_lines)
        avail_w, avail_h = w * (1 - 2 * MARGIN), h * (1 - 2 * MARGIN)
        top = min(DIGIT_HEIGHT[1], avail_w / (1.15 * max(counts)), avail_h / (1.5 * n_lines + 0.2))
        height = float(np.exp(rng.uniform(np.log(DIGIT_HEIGHT[0]), np.log(max(top, DIGIT_HEIGHT[0])))))
        picks = rng.integers(0, len(self.images), n)
        for _ in range(6):  # shrink until every line fits the frame
            glyphs = [self._glyph(rng, int(i), height, surface) for i in picks]
            rows = _rows(rng, glyphs, counts, height)
            if all(width <= avail_w for width, _ in rows) or height <= DIGIT_HEIGHT[0]:
                break
            height = max(DIGIT_HEIGHT[0], height * 0.85)
        return self._place(rng, glyphs, counts, rows, height)

    def _place(self, rng: np.random.Generator, glyphs: list[_Glyph], counts: list[int],
               rows: list[tuple[float, list[float]]], height: float
               ) -> tuple[list[_Glyph], list[tuple[int, int]], list[int]]:
        w, h = self.size
        pitch = height * rng.uniform(1.35, 1.7)
        block = pitch * (len(counts) - 1) + height
        y0 = MARGIN * h + rng.uniform(0, max(0.0, h * (1 - 2 * MARGIN) - block))
        origins, line_of, k = [], [], 0
        for line, (count, (width, gaps)) in enumerate(zip(counts, rows)):
            x = MARGIN * w + rng.uniform(0, max(0.0, w * (1 - 2 * MARGIN) - width))
            centre_y = y0 + line * pitch + height / 2
            for j in range(count):
                g = glyphs[k]
                gh, gw = g.alpha.shape
                dy = rng.uniform(-0.06, 0.06) * height  # handwriting wanders off the line
                origins.append((int(round(x)), int(round(centre_y - gh / 2 + dy))))
                line_of.append(line)
                x += gw + gaps[j]
                k += 1
        return glyphs, origins, line_of

    def _glyph(self, rng: np.random.Generator, index: int, height: float, surface: Surface) -> _Glyph:
        scale = float(np.clip(height * rng.uniform(0.9, 1.1), *DIGIT_HEIGHT))  # ink height, px
        angle = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)
        alpha = _render_digit(self.images[index], scale, angle)
        alpha = _ink_texture(rng, alpha, surface.light_ink)
        return _Glyph(alpha, int(self.labels[index]), index)


def sample_clip(n_frames: int, seed: int = 0, hold: int = 20,
                generator: FrameGenerator | None = None) -> Iterator[np.ndarray]:
    """The demo's built-in clip: ``n_frames`` uint8 BGR (480, 640, 3) frames showing a new
    sheet of digits every ``hold`` frames, each held with a slight hand shake and fresh
    sensor noise, like a page held up to a webcam."""
    gen = generator if generator is not None else FrameGenerator.from_mnist(seed)
    rng = np.random.default_rng([seed, 1 << 20])
    sheet = None
    for k in range(n_frames):
        if k % hold == 0:
            light = (k // hold) % 4 == 3  # every fourth sheet is a chalkboard
            sheet = gen.frame(index=k // hold, light_ink=light).image
        assert sheet is not None
        yield _shake(rng, sheet)


def _shake(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Shift and turn a frame by a pixel or two and add fresh noise (uint8 BGR in, out)."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-0.8, 0.8), 1.0)
    m[:, 2] += rng.uniform(-2.5, 2.5, 2)
    moved = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT101)
    noise = rng.normal(0, 2.0, moved.shape).astype(np.float32)
    return np.clip(moved.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _check_digits(images: np.ndarray, labels: np.ndarray) -> None:
    size = (IMAGE_SIZE, IMAGE_SIZE)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3 \
            or images.shape[1:] != size or len(images) == 0:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}"
        raise ValueError(f"expected MNIST test images as uint8 (N, {IMAGE_SIZE}, {IMAGE_SIZE}), N > 0; got {got}")
    if np.shape(labels) != (len(images),):
        raise ValueError(f"expected {len(images)} labels, one per image; got shape {np.shape(labels)}")


def _split(rng: np.random.Generator, n: int, n_lines: int) -> list[int]:
    """Share ``n`` digits among ``n_lines`` lines, each with at least one, about evenly."""
    counts = [n // n_lines] * n_lines
    for i in rng.permutation(n_lines)[: n % n_lines]:
        counts[i] += 1
    return counts


def _rows(rng: np.random.Generator, glyphs: list[_Glyph], counts: list[int],
          height: float) -> list[tuple[float, list[float]]]:
    """Per line: its total width and the gap after each digit (a quarter to half a digit
    height: people leave room between digits, and touching digits are another problem)."""
    rows, k = [], 0
    for count in counts:
        gaps = list(rng.uniform(0.25, 0.5, count) * height)
        gaps[-1] = 0.0
        width = sum(g.alpha.shape[1] for g in glyphs[k:k + count]) + sum(gaps)
        rows.append((float(width), gaps))
        k += count
    return rows


def _render_digit(image: np.ndarray, height: float, angle: float) -> np.ndarray:
    """One MNIST digit (uint8 28x28, white ink) as a pen stroke ``height`` pixels tall,
    turned by ``angle`` degrees: float32 alpha patch in [0, 1] with a 2-pixel border."""
    ys, xs = np.nonzero(image > 127)
    if len(ys) == 0:  # an (almost) empty digit image: draw its faint ink instead
        ys, xs = np.nonzero(image > 0)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    src = image[max(y0 - 2, 0):y1 + 2, max(x0 - 2, 0):x1 + 2].astype(np.float32) / 255.0
    scale = height / (y1 - y0)
    sh, sw = src.shape
    rad = np.deg2rad(angle)
    out_w = int(np.ceil(abs(sw * np.cos(rad)) + abs(sh * np.sin(rad))) * scale) + 4
    out_h = int(np.ceil(abs(sw * np.sin(rad)) + abs(sh * np.cos(rad))) * scale) + 4
    m = cv2.getRotationMatrix2D((sw / 2, sh / 2), angle, scale)
    m[:, 2] += (out_w / 2 - sw / 2, out_h / 2 - sh / 2)
    alpha = cv2.warpAffine(src, m, (out_w, out_h), flags=cv2.INTER_CUBIC)
    # MNIST's soft, anti-aliased edges blown up look like a felt tip in fog; a pen has a
    # crisp edge, so the grey ramp is sharpened to about a pixel.
    t = np.clip((alpha - 0.25) / 0.35, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _ink_texture(rng: np.random.Generator, alpha: np.ndarray, chalk: bool) -> np.ndarray:
    """Uneven pen pressure, or grainy chalk, on an alpha patch (float32 in [0, 1])."""
    noise = paper.smooth_noise(rng, alpha.shape, cell=8.0)
    if chalk:
        grain = rng.random(alpha.shape).astype(np.float32)
        return alpha * np.clip(0.75 + 0.1 * noise, 0, 1) * np.where(grain < 0.15, 0.4, 1.0)
    return alpha * np.clip(0.95 + 0.05 * noise, 0.7, 1.0)


def _stroke_width(glyphs: list[_Glyph]) -> float:
    """Pen width of the frame's digits (pixels), for drawing marks with the same pen."""
    if not glyphs:
        return 2.0
    return max(1.0, float(np.median([g.alpha.shape[0] for g in glyphs])) / 10.0)


def _occupied(glyphs: list[_Glyph], origins: list[tuple[int, int]]) -> list[Box]:
    return [(x, y, g.alpha.shape[1], g.alpha.shape[0]) for g, (x, y) in zip(glyphs, origins)]


def _marks(rng: np.random.Generator, page: np.ndarray, surface: Surface,
           taken: list[Box], stroke: float) -> list[Box]:
    """Draw up to ``MAX_MARKS`` small non-digit marks (dash, plus, cross, star) in place,
    away from the digits (a mark touching a digit changes what the digit is); returns
    their boxes (page pixels)."""
    h, w = page.shape[:2]
    drawn: list[Box] = []
    for _ in range(int(rng.integers(0, MAX_MARKS + 1))):
        size = rng.uniform(*MARK_SIZE)
        for _attempt in range(20):
            cx, cy = rng.uniform(MARGIN * w, (1 - MARGIN) * w), rng.uniform(MARGIN * h, (1 - MARGIN) * h)
            box = (int(cx - size), int(cy - size), int(2 * size), int(2 * size))
            if not any(_overlap(box, t) for t in taken):
                _draw_mark(rng, page, (cx, cy), size, surface.ink, stroke)
                taken.append(box)
                half = size / 2 + stroke  # the mark's own extent, pen included
                drawn.append((int(cx - half), int(cy - half), int(2 * half), int(2 * half)))
                break
    return drawn


def _draw_mark(rng: np.random.Generator, page: np.ndarray, centre: tuple[float, float],
               size: float, ink: np.ndarray, stroke: float) -> None:
    kind = int(rng.integers(4))
    angle = rng.uniform(-0.3, 0.3)
    arms = {0: [0.0], 1: [0.0, np.pi / 2], 2: [np.pi / 4, -np.pi / 4], 3: [0.0, np.pi / 3, -np.pi / 3]}[kind]
    thickness = max(1, int(round(stroke * rng.uniform(0.7, 1.2))))
    r = size / 2
    for a in arms:
        dx, dy = r * np.cos(a + angle), r * np.sin(a + angle)
        p1 = (int(centre[0] - dx), int(centre[1] - dy))
        p2 = (int(centre[0] + dx), int(centre[1] + dy))
        cv2.line(page, p1, p2, ink.tolist(), thickness, cv2.LINE_AA)


def _warp_box(box: Box, homography: np.ndarray) -> Box:
    """A page box -> the frame box around its four warped corners."""
    x, y, w, h = box
    corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)
    warped = paper.warp_points(corners, homography)
    x0, y0 = np.floor(warped.min(axis=0)).astype(int)
    x1, y1 = np.ceil(warped.max(axis=0)).astype(int)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _write_glyph(page: np.ndarray, glyph: _Glyph, origin: tuple[int, int], surface: Surface,
         homography: np.ndarray) -> Box:
    """Write one glyph onto the page in place and return its ink box in frame pixels
    (after the page's perspective): the bounding box of its pixels at least half inked."""
    x, y = origin
    a = glyph.alpha
    region = page[y:y + a.shape[0], x:x + a.shape[1]]
    a = a[: region.shape[0], : region.shape[1]]
    region *= 1.0 - a[..., None]
    region += a[..., None] * surface.ink
    ys, xs = np.nonzero(a >= 0.5)
    points = np.stack([xs + x + 0.5, ys + y + 0.5], axis=1).astype(np.float32)
    warped = paper.warp_points(points, homography)
    x0, y0 = np.floor(warped.min(axis=0)).astype(int)
    x1, y1 = np.ceil(warped.max(axis=0)).astype(int)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)
