"""The real-photo figures under other shooting conditions: each frame changed first.

The same photos and sudoku cells as ``digitvae bench --real``, each frame (photo or cell)
first made darker, washed out, blurred, recompressed, resized or turned, as another camera,
room or hand would have taken it. A reader that holds its figures across these does not
depend on how the dev photos happen to be lit and framed; one that falls on one of them has
a constant that measures levels or pixels where it should measure shares. Prints one
markdown row per condition: photos 1 - edits/digits, precision and recall; sudoku train
and validation accuracy; empty cells read as a digit (train / validation). Turns apply to
the photos only: a sudoku cell is cut from the flattened grid, so it is never turned (a
turned cell would bring the grid's lines in across it, a frame no camera gives).

    python benchmarks/real_conditions.py ../shared/realdata
    python benchmarks/real_conditions.py ../shared/realdata --only none exposure-0.3 --artifacts DIR
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

import numpy as np

from digitvae.bench.real import measure
from digitvae.data import realdata
from digitvae.runtime import DigitVAE
from digitvae.runtime.camera import DigitReader
from digitvae.runtime.errors import DigitVAEError
from digitvae.runtime.optional import require

cv2 = require("cv2", "changing the photos")

Change = Callable[[np.ndarray], np.ndarray]


def _exposure(factor: float) -> Change:
    return lambda image: (image.astype(np.float32) * factor).astype(np.uint8)


def _washed(share: float) -> Change:
    """Washed out towards white, as glare or a bright exposure does: each pixel's darkness
    (255 - v) times ``share``, so ink stands out from the paper ``share`` as much (and soft
    pencil looks like this as taken)."""
    return lambda image: (255 - np.round((255 - image.astype(np.float32)) * share)).astype(np.uint8)


def _low_light(factor: float, noise: float) -> Change:
    """Darker, with the sensor noise a camera adds when it raises its gain in a dim room
    (Gaussian, ``noise`` levels; drawn from a seed of the frame's size, so each frame gets
    the same noise every run)."""
    def change(image: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(image.size)
        dim = image.astype(np.float32) * factor + rng.normal(0.0, noise, image.shape).astype(np.float32)
        return np.clip(np.round(dim), 0, 255).astype(np.uint8)
    return change


def _gamma(power: float) -> Change:
    table = (255.0 * (np.arange(256) / 255.0) ** power).astype(np.uint8)
    return lambda image: cv2.LUT(image, table)


def _blur(sigma: float) -> Change:
    return lambda image: cv2.GaussianBlur(image, (0, 0), sigma)


def _jpeg(quality: int) -> Change:
    def change(image: np.ndarray) -> np.ndarray:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError(f"OpenCV could not encode a {image.shape} {image.dtype} frame as JPEG")
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return change


def _scale(factor: float) -> Change:
    method = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return lambda image: cv2.resize(image, None, fx=factor, fy=factor, interpolation=method)


def turned(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """(``image`` turned about its centre onto a canvas large enough to keep every pixel in
    view, the 2x3 map from image to canvas pixels). The corners the turn opens continue the
    photo's edge smoothly (its edge pixels carried outwards, then blurred): paper going on,
    with neither an edge nor streaks of carried noise."""
    h, w = image.shape[:2]
    cos, sin = abs(np.cos(np.radians(degrees))), abs(np.sin(np.radians(degrees)))
    size = (int(np.ceil(w * cos + h * sin)), int(np.ceil(w * sin + h * cos)))
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    matrix[:, 2] += ((size[0] - w) / 2, (size[1] - h) / 2)
    out = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.ones((h, w), np.uint8), matrix, size, flags=cv2.INTER_NEAREST) > 0
    smooth = cv2.GaussianBlur(out, (0, 0), 0.02 * max(size))
    return np.where(inside[..., None] if out.ndim == 3 else inside, out, smooth), matrix


def _turn(degrees: float) -> Change:
    return lambda image: turned(image, degrees)[0]


CONDITIONS: dict[str, Change] = {
    "none": lambda image: image,
    "exposure-0.5": _exposure(0.5),  # a dim room
    "exposure-0.3": _exposure(0.3),
    "low-light": _low_light(0.3, 2.0),  # a third of the exposure, and noise of 2 levels
    "washed-0.7": _washed(0.7),  # glare, or a bright exposure
    "washed-0.5": _washed(0.5),
    "gamma-2": _gamma(2.0),  # a camera's darker tone curve: the paper's greys drop most
    "blur-1.5": _blur(1.5),  # out of focus, or shaken
    "jpeg-30": _jpeg(30),  # a messenger's recompression
    "scale-0.5": _scale(0.5),  # a lower-resolution camera, or the sheet further away
    "scale-1.5": _scale(1.5),  # a higher-resolution one, or closer
    "turn-8": _turn(8.0),  # the camera held askew (counter-clockwise)
    "turn-minus-8": _turn(-8.0),
    "turn-20": _turn(20.0),  # a note written or held at a slant, no sheet edge in view
    "turn-30": _turn(30.0),
    "turn-minus-30": _turn(-30.0),
    "turn-45": _turn(45.0),
    "turn-60": _turn(60.0),  # past 45 degrees: the links fold to 30, and the page turned by 30 lies on its side
    "turn-90": _turn(90.0),  # a page on its side: its digits' shape says so, the model which side is up
    "turn-minus-90": _turn(-90.0),
}


PHOTOS_ONLY = tuple(name for name in CONDITIONS if name.startswith("turn"))


class ChangedReader:
    """A reader that changes every frame before reading it (``cells``: sudoku cells too)."""

    def __init__(self, reader: DigitReader, change: Change, cells: bool = True) -> None:
        self.reader, self.change, self.cells = reader, change, cells

    def read(self, frame: np.ndarray) -> list[Any]:
        is_cell = frame.shape[:2] == (realdata.CELL_SIZE, realdata.CELL_SIZE)
        return self.reader.read(self.change(frame) if self.cells or not is_cell else frame)


def row(name: str, results: dict[str, Any]) -> str:
    """One table row; "-" where the folder has no photos or no cells of a split."""
    photos, sudoku = results["photos"].get("overall"), results["sudoku"]
    cells = [f"{100 * photos[k]:.1f}%" if photos else "-" for k in ("one_minus_edits", "precision", "recall")]
    if name in PHOTOS_ONLY:
        return f"| {name} | " + " | ".join(cells + ["(not turned)"] * 3) + " |"
    splits = [sudoku.get(split) for split in realdata.SPLITS]
    cells += [f"{100 * s['accuracy']:.1f}%" if s else "-" for s in splits]
    cells.append(" / ".join(str(s["empty_read"]) if s else "-" for s in splits))
    return f"| {name} | " + " | ".join(cells) + " |"


def real_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments the real-photo scripts share: the folder, the graphs and their precision."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("real", help="a folder laid out like ../shared/realdata")
    parser.add_argument("--artifacts", default=None, help="artifacts folder (default: the shipped graphs)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"))
    return parser


def open_real(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[realdata.RealData, DigitReader]:
    """The folder and a one-core reader, or one line and exit status 2 where the folder or
    the graphs are bad (the user's to fix)."""
    cv2.setNumThreads(1)
    try:
        return (realdata.load(args.real),
                DigitReader(DigitVAE.load(args.artifacts, precision=args.precision, threads=1)))
    except DigitVAEError as exc:
        parser.error(str(exc))


def main() -> None:
    parser = real_parser(__doc__)
    parser.add_argument("--only", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS),
                        help="conditions to measure (default: all)")
    args = parser.parse_args()
    data, reader = open_real(parser, args)
    print("| condition | photos 1 - edits/digits | photos precision | photos recall | sudoku train "
          "| sudoku validation | empty cells read (train / validation) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.only:
        results, _ = measure(ChangedReader(reader, CONDITIONS[name], cells=name not in PHOTOS_ONLY), data)
        print(row(name, results), flush=True)


if __name__ == "__main__":
    main()
