"""Pages for the camera reader's tests (``test_camera``, ``test_ink``): MNIST digits drawn
as ink on paper, a stand-in model, and the shared reader and frame generator fixtures."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from digitvae.runtime import spec  # noqa: E402
from digitvae.runtime.camera import DigitReader  # noqa: E402
from digitvae.data.frames import FrameGenerator  # noqa: E402


class FakeVAE:
    """Stands in for DigitVAE where only the image work is under test: 'reads' every
    crop as the digit 1 and accepts crops with some ink; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def classify(self, images):
        x = np.asarray(images, np.float32).reshape(-1, spec.IMAGE_SIZE, spec.IMAGE_SIZE)
        self.calls.append(("classify", len(x)))
        p = np.full((len(x), spec.NUM_CLASSES), 0.01, np.float32)
        p[:, 1] = 0.91
        return p

    def is_digit(self, images):
        x = np.asarray(images, np.float32).reshape(-1, spec.IMAGE_SIZE ** 2)
        self.calls.append(("is_digit", len(x)))
        return x.mean(axis=1) > 0.02


def paper(digits: list[np.ndarray], places: list[tuple[int, int]], height: int,
          size: tuple[int, int] = (480, 640), ink: float = 0.85) -> np.ndarray:
    """Gray uint8 paper with MNIST digits (uint8 28x28, white ink) drawn as dark ink,
    ``height`` pixels tall, top-left corners at ``places``; ``ink``: the share of the
    paper's brightness a stroke's core takes away (soft pencil: about a fifth)."""
    page = np.full(size, 230, np.uint8)
    for image, (x, y) in zip(digits, places):
        drawn = cv2.resize(image, (height, height), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
        region = page[y:y + height, x:x + height].astype(np.float32)
        page[y:y + height, x:x + height] = np.clip(region * (1 - ink * np.clip(drawn, 0, 1)), 0, 255).astype(np.uint8)
    return page


def clear_digits(mnist, labels: list[int]) -> list[np.ndarray]:
    """The first test image of each label that the shipped model reads right (a test of
    the reader, not of the model's hardest digits)."""
    return [mnist.test_images[int(np.nonzero(mnist.test_labels == d)[0][0])] for d in labels]


@pytest.fixture(scope="module")
def reader(shipped_vae) -> DigitReader:
    return DigitReader(shipped_vae)


@pytest.fixture(scope="module")
def gen(mnist) -> FrameGenerator:
    return FrameGenerator.from_mnist(seed=0)
