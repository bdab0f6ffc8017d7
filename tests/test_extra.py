"""``digitvae.data.extra``: a folder per digit of extra training digits, and its bad folders."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from digitvae.data.extra import load_extra  # noqa: E402
from digitvae.runtime.errors import DigitVAEError  # noqa: E402


def write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def test_crops_and_photos_of_digits_are_loaded_as_mnist_crops(tmp_path, mnist):
    seven = mnist.test_images[int(np.nonzero(mnist.test_labels == 7)[0][0])]
    write(tmp_path / "7" / "crop.png", seven)  # 28x28, white on black: taken as it is
    write(tmp_path / "7" / "inverted.png", 255 - seven)  # dark on light: inverted
    photo = np.full((120, 90), 220, np.uint8)
    photo[20:100, 10:80] = 255 - cv2.resize(seven, (70, 80))  # a larger image: cropped by the reader
    write(tmp_path / "3" / "photo.jpg", photo)
    images, labels = load_extra(tmp_path)
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == [3, 7, 7]
    np.testing.assert_array_equal(images[labels == 7][0], seven)
    np.testing.assert_array_equal(images[labels == 7][1], seven)
    assert images[labels == 3][0].max() == 255


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "no such folder"),
    (lambda root: root.mkdir(), "no images found"),
    (lambda root: (root / "x").mkdir(parents=True), "named 0-9"),
    (lambda root: write(root / "12" / "a.png", np.zeros((28, 28), np.uint8)), "named 0-9"),
    (lambda root: ((root / "4").mkdir(parents=True), (root / "4" / "a.png").write_bytes(b"not a png")), "not an image"),
    (lambda root: write(root / "4" / "blank.png", np.full((60, 60), 200, np.uint8)), "holds no digit"),
])
def test_bad_folders_are_refused_in_one_line(tmp_path, make, message):
    root = tmp_path / "extra"
    make(root)
    with pytest.raises(DigitVAEError, match=message) as caught:
        load_extra(root)
    assert "\n" not in str(caught.value)
