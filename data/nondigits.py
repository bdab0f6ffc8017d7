"""Things that are not digits, as the camera would hand them to the model (OpenCV).

A seeded generator of 28x28 crops that are *not* handwritten digits, for measuring and
testing "is this a digit at all" (:meth:`DigitVAE.is_digit`). Each kind first draws an
*ink patch* at camera resolution (float, white ink on black, any size, ink > 0 where there
is any) and then sends it through :func:`mnist_normalise`, which uses the camera reader's
own MNIST normalisation (:func:`digitvae.runtime.crops.mnist_crop`), so that the model sees non-digits exactly as it would see them from the
camera: fitted into the 20x20 box, centred by centre of mass, ink scaled to peak at 1.

Kinds (:data:`KINDS`):

``noise``       uniform, salt-and-pepper and blotchy (blurred, thresholded) noise
``blank``       nothing at all: the all-black 28x28 a normaliser gives for no ink
``near_blank``  a speck or two far apart, or a faint smudge with a speck on it
``lines``       straight strokes, one to four; a *single* stroke is kept at least 50 degrees
                from vertical (:data:`MIN_SLANT`), since a lone steeper stroke is a 1
``blobs``       one to three filled ellipses and rectangles, hard or soft edged
``letters``     capital letters in OpenCV's Hershey fonts (A B C E F G H K M N P R W X Y),
                upright or italic, a little rotated and sheared
``symbols``     # @ % & + * ? ! in the same fonts
``paper``       blank paper seen by the camera (grain, fibres, light and shadow, sensor noise
                and JPEG), with the background taken off and a noise threshold applied as a
                reader would: what is left is sparse speckle

Every image is a pure function of ``(seed, kind, index)``, so ``nondigits(k, 10, s)[:5]``
equals ``nondigits(k, 5, s)``. :func:`glyphs` draws other characters with the same renderer,
for checks on characters the benchmark never draws.

OpenCV is imported on demand: ``import digitvae.runtime`` never loads it.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Final

import numpy as np

from digitvae.runtime import spec
from digitvae.runtime.optional import require

KINDS: Final = ("noise", "blank", "near_blank", "lines", "blobs", "letters", "symbols", "paper")

LETTERS: Final = "ABCEFGHKMNPRWXY"
SYMBOLS: Final = "#@%&+*?!"
#: A lone straight stroke is drawn at least this many degrees off vertical: steeper, it is
#: simply a 1 (the principal axis of MNIST's test 1s lies within 41 degrees of vertical for
#: 99% of them and within 45.6 degrees for all).
MIN_SLANT: Final = 50.0


def _cv2() -> Any:
    return require("cv2", "drawing non-digit crops")


# --- MNIST normalisation ----------------------------------------------------------------


def mnist_normalise(ink: np.ndarray) -> np.ndarray:
    """One ink patch, float ``(H, W)``, white ink on black (values <= 0 are no ink) -> the
    float32 ``(28, 28)`` crop in [0, 1] the model would see.

    The patch is cut to the bounding box of its ink and scaled so that its brightest pixel
    is 1; then the camera reader's own :func:`digitvae.runtime.crops.mnist_crop` fits it into
    the 20x20 box (aspect kept, anti-aliased) and centres it by centre of mass, exactly as
    real crops are. No ink gives the all-black frame.

    (The camera scales a real crop's ink from its frame's contrast map so that the stroke
    cores are 1; a drawn patch has no frame, so its peak is taken as the core. For the
    solid shapes drawn here the two agree.)
    """
    from digitvae.runtime import crops  # the camera's normaliser (OpenCV)

    patch = np.asarray(ink, dtype=np.float32)
    if patch.ndim != 2 or patch.size == 0:
        raise ValueError(f"ink patch: expected a non-empty 2-D array (H, W), got shape {patch.shape}")
    if not np.isfinite(patch).all():
        raise ValueError("ink patch: expected finite values, got NaN or infinity")
    patch = np.maximum(patch, 0.0)
    rows, cols = np.nonzero(patch.any(axis=1))[0], np.nonzero(patch.any(axis=0))[0]
    if len(rows) == 0:
        return np.zeros((spec.IMAGE_SIZE, spec.IMAGE_SIZE), np.float32)
    patch = patch[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    crop = np.asarray(crops.mnist_crop(np.ascontiguousarray(patch / float(patch.max()))), dtype=np.float32)
    return np.clip(crop, 0.0, 1.0)


# --- ink patches, one function per kind ----------------------------------------------------


def _side(rng: np.random.Generator, low: int = 30, high: int = 90) -> int:
    """A crop side at camera resolution, in pixels."""
    return int(rng.integers(low, high + 1))


def _noise(rng: np.random.Generator) -> np.ndarray:
    cv2 = _cv2()
    h, w = _side(rng, 12, 80), _side(rng, 12, 80)
    variant = rng.integers(3)
    if variant == 0:  # uniform grey noise
        return rng.random((h, w), dtype=np.float32)
    if variant == 1:  # salt and pepper
        density = rng.uniform(0.02, 0.5)
        return (rng.random((h, w)) < density).astype(np.float32) * rng.uniform(0.3, 1.0, (h, w)).astype(np.float32)
    # blotches: blurred Gaussian noise, thresholded
    field = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), rng.uniform(0.8, 3.0))
    field /= max(float(field.std()), 1e-6)
    return np.maximum(field - rng.uniform(0.0, 1.5), 0.0)


def _blank(rng: np.random.Generator) -> np.ndarray:
    return np.zeros((_side(rng), _side(rng)), np.float32)


def _speck(cv2: Any, canvas: np.ndarray, centre: tuple[int, int], rng: np.random.Generator) -> None:
    """A dot of radius 0-2 px, 30-100% dark, drawn (anti-aliased) into a uint8 canvas."""
    layer = np.zeros_like(canvas)
    cv2.circle(layer, centre, int(rng.integers(0, 3)), 255, -1, cv2.LINE_AA)
    np.maximum(canvas, (layer * rng.uniform(0.3, 1.0)).astype(np.uint8), out=canvas)


def _near_blank(rng: np.random.Generator) -> np.ndarray:
    cv2 = _cv2()
    h, w = _side(rng, 40, 90), _side(rng, 40, 90)
    specks = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:  # two specks, far apart: their bounding box is the whole crop
        _speck(cv2, specks, (int(rng.integers(0, w // 4)), int(rng.integers(0, h))), rng)
        _speck(cv2, specks, (int(rng.integers(3 * w // 4, w)), int(rng.integers(0, h))), rng)
        return specks.astype(np.float32) / 255.0
    # a faint smudge (a thumb, a shadow, an erased mark) with one or two specks on it
    coarse = rng.standard_normal((4, 4)).astype(np.float32)
    smudge = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    smudge = (smudge - smudge.min()) / max(float(np.ptp(smudge)), 1e-6) * rng.uniform(0.02, 0.12)
    for _ in range(int(rng.integers(1, 3))):
        _speck(cv2, specks, (int(rng.integers(w)), int(rng.integers(h))), rng)
    return np.maximum(smudge, specks.astype(np.float32) / 255.0)


def _lines(rng: np.random.Generator) -> np.ndarray:
    cv2 = _cv2()
    s = _side(rng, 40, 90)
    canvas = np.zeros((s, s), np.uint8)
    count = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.3, 0.25, 0.15]))
    thickness = int(rng.integers(max(1, s // 30), max(2, s // 10) + 1))
    for _ in range(count):
        if count == 1:  # a lone stroke near vertical is a 1: keep it >= 50 degrees off vertical
            angle = np.deg2rad(rng.uniform(MIN_SLANT, 90) * rng.choice([-1, 1]))
            length = rng.uniform(0.5, 0.95) * s
            cx, cy = rng.uniform(0.3, 0.7, 2) * s
            dx, dy = np.sin(angle) * length / 2, np.cos(angle) * length / 2
            p1, p2 = (cx - dx, cy - dy), (cx + dx, cy + dy)
        else:
            while True:
                p1, p2 = tuple(rng.uniform(0.05, 0.95, 2) * s), tuple(rng.uniform(0.05, 0.95, 2) * s)
                if np.hypot(p1[0] - p2[0], p1[1] - p2[1]) >= s / 3:
                    break
        cv2.line(canvas, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), 255, thickness, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255.0


def _blobs(rng: np.random.Generator) -> np.ndarray:
    cv2 = _cv2()
    s = _side(rng, 40, 90)
    canvas = np.zeros((s, s), np.uint8)
    for _ in range(int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))):
        centre = rng.uniform(0.25, 0.75, 2) * s
        axes = rng.uniform(0.1, 0.4, 2) * s
        angle = float(rng.uniform(0, 180))
        if rng.random() < 0.5:
            cv2.ellipse(canvas, (int(centre[0]), int(centre[1])), (int(axes[0]), int(axes[1])), angle, 0, 360, 255, -1,
                        cv2.LINE_AA)
        else:
            corners = cv2.boxPoints(((float(centre[0]), float(centre[1])), (float(2 * axes[0]), float(2 * axes[1])), angle))
            cv2.fillPoly(canvas, [np.round(corners).astype(np.int32)], 255, cv2.LINE_AA)
    blobs = canvas.astype(np.float32) / 255.0
    if rng.random() < 0.4:  # soft edges: a felt-tip blot or an out-of-focus mark
        blobs = cv2.GaussianBlur(blobs, (0, 0), rng.uniform(1.0, 4.0))
    return blobs


FONTS: Final = ("FONT_HERSHEY_SIMPLEX", "FONT_HERSHEY_PLAIN", "FONT_HERSHEY_DUPLEX", "FONT_HERSHEY_COMPLEX",
                "FONT_HERSHEY_TRIPLEX", "FONT_HERSHEY_COMPLEX_SMALL", "FONT_HERSHEY_SCRIPT_SIMPLEX",
                "FONT_HERSHEY_SCRIPT_COMPLEX")


def _glyph(rng: np.random.Generator, characters: str) -> np.ndarray:
    """One character in a random Hershey font, weight, slant and small rotation."""
    cv2 = _cv2()
    text = characters[int(rng.integers(len(characters)))]
    font = getattr(cv2, FONTS[int(rng.integers(len(FONTS)))])
    if rng.random() < 0.3:
        font |= cv2.FONT_ITALIC
    height = rng.uniform(30, 70)  # pixels, roughly
    scale = height / cv2.getTextSize("H", font, 1.0, 1)[0][1]
    thickness = int(rng.integers(1, max(2, round(height / 12)) + 1))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    pad = int(height / 2) + thickness
    canvas = np.zeros((th + base + 2 * pad, tw + 2 * pad), np.uint8)
    cv2.putText(canvas, text, (pad, pad + th), font, scale, 255, thickness, cv2.LINE_AA)
    h, w = canvas.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-12, 12)), 1.0)
    matrix[0, 1] += rng.uniform(-0.2, 0.2)  # shear, as handwriting slants
    return cv2.warpAffine(canvas, matrix, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0


def _letters(rng: np.random.Generator) -> np.ndarray:
    return _glyph(rng, LETTERS)


def _symbols(rng: np.random.Generator) -> np.ndarray:
    return _glyph(rng, SYMBOLS)


def _paper(rng: np.random.Generator) -> np.ndarray:
    """A patch of blank paper through the camera, then ink extraction as a reader does it."""
    cv2 = _cv2()
    from . import paper  # camera-side module (OpenCV); imported only here

    h, w = _side(rng, 30, 90), _side(rng, 30, 90)
    surface = paper.paper_surface(rng)
    page = paper.blank_page(rng, (h, w), surface)
    for _ in range(int(rng.integers(0, 6))):  # fibres: thin, faint, wandering darker threads
        steps = int(rng.integers(4, 12))
        start = rng.uniform(0, 1, 2) * (w, h)
        walk = np.cumsum(rng.normal(0, 3.0, (steps, 2)), axis=0) + start
        colour = (surface.background * (1 - rng.uniform(0.02, 0.08))).tolist()
        cv2.polylines(page, [walk.astype(np.int32)], False, colour, 1, cv2.LINE_AA)
    page *= paper.lighting(rng, (h, w))[..., None]
    frame = paper.camera(rng, page)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    # The background (paper under its light) by a wide blur, ink = how much darker a pixel
    # is; pixels within a few noise standard deviations of the paper are not ink.
    background = cv2.GaussianBlur(gray, (0, 0), max(h, w) / 6)
    darker = background - gray
    noise = 1.4826 * float(np.median(np.abs(darker - np.median(darker)))) + 1e-3
    return np.maximum(darker - rng.uniform(1.0, 3.0) * noise, 0.0)


_PATCHES: Final[dict[str, Callable[[np.random.Generator], np.ndarray]]] = {
    "noise": _noise, "blank": _blank, "near_blank": _near_blank, "lines": _lines, "blobs": _blobs,
    "letters": _letters, "symbols": _symbols, "paper": _paper,
}


# --- public -----------------------------------------------------------------------------


def ink_patch(kind: str, index: int, seed: int = 0) -> np.ndarray:
    """The raw ink patch (float32 ``(H, W)``, white ink on black) of one non-digit, before
    normalisation: a pure function of ``(seed, kind, index)``."""
    if kind not in _PATCHES:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    rng = np.random.default_rng([int(seed), zlib.crc32(kind.encode()), int(index)])
    return np.asarray(_PATCHES[kind](rng), dtype=np.float32)


def nondigits(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` non-digit crops of one ``kind`` (see :data:`KINDS`), MNIST-normalised:
    float32 ``(n, 28, 28)`` in [0, 1], white ink on black. Reproducible for a ``seed``."""
    if kind not in _PATCHES:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    return _normalised(n, lambda i: ink_patch(kind, i, seed))


def glyphs(characters: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` crops of characters drawn at random from ``characters`` by the renderer of
    ``letters`` and ``symbols``, MNIST-normalised: float32 ``(n, 28, 28)`` in [0, 1]. For
    checks on characters the benchmark's kinds never draw. Reproducible for a ``seed``."""
    if not isinstance(characters, str) or not characters or not all(33 <= ord(c) <= 126 for c in characters):
        raise ValueError(f"characters: expected printable ASCII without spaces (what the Hershey fonts draw), "
                         f"got {characters!r}")
    key = zlib.crc32(characters.encode())
    return _normalised(n, lambda i: _glyph(np.random.default_rng([int(seed), key, i]), characters))


def _normalised(n: int, patch: Callable[[int], np.ndarray]) -> np.ndarray:
    """``patch(i)`` for i < ``n``, each MNIST-normalised: float32 ``(n, 28, 28)``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n: expected a count >= 0, got {n!r}")
    out = np.zeros((int(n), spec.IMAGE_SIZE, spec.IMAGE_SIZE), np.float32)
    for i in range(int(n)):
        out[i] = mnist_normalise(patch(i))
    return out


def all_nondigits(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Every kind: ``{kind: float32 (n, 28, 28)}`` in the order of :data:`KINDS`."""
    return {kind: nondigits(kind, n, seed) for kind in KINDS}
