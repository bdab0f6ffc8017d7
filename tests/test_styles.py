"""``digitvae.train.styles``: handwriting styles MNIST lacks, drawn for training."""

from __future__ import annotations

import pytest

from conftest import needs_torch

pytestmark = needs_torch


@pytest.fixture
def digits(mnist):
    from digitvae.train.train import as_tensors

    return as_tensors(mnist.test_images[:200], mnist.test_labels[:200])


def test_share_zero_is_the_identity_and_draws_nothing(digits):
    import torch

    from digitvae.train.styles import flagged_ones

    images, labels = digits
    g = torch.Generator().manual_seed(3)
    assert flagged_ones(images, labels, 0.0, g) is images
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(3).get_state())


def test_only_upright_ones_get_a_flag_at_their_top_left(digits):
    import torch

    from digitvae.train.styles import flagged_ones

    images, labels = digits
    out = flagged_ones(images, labels, 1.0, torch.Generator().manual_seed(0))
    changed = (out - images).abs().flatten(1).amax(1) > 0.05
    assert not changed[labels != 1].any()  # other digits pass untouched
    ones = labels == 1
    assert changed[ones].float().mean() > 0.5  # most 1s are upright or lean right
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    # The flag adds ink left of the stem in the upper half; the ink stays centred by mass.
    flagged = out[changed]
    added = (flagged - images[changed]).clamp_min(0)
    cols = torch.arange(28.0)
    ink_col = (images[changed].sum(dim=(1, 2)) * cols).sum(1) / images[changed].sum(dim=(1, 2, 3))
    flag_col = (added.sum(dim=(1, 2)) * cols).sum(1) / added.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    assert (flag_col < ink_col).float().mean() > 0.8
    assert added[:, :, 14:].sum() < added[:, :, :14].sum()
    centre = (flagged.sum(dim=(1, 2)) * (cols + 0.5)).sum(1) / flagged.sum(dim=(1, 2, 3))
    assert torch.allclose(centre, torch.full_like(centre, 14.0), atol=0.75)


def test_a_one_leaning_left_gets_no_flag():
    import torch

    from digitvae.train.styles import flagged_ones

    image = torch.zeros(1, 1, 28, 28)
    for row in range(4, 24):  # a stroke from the top left to the bottom right: a "\"
        col = 8 + (row - 4) // 2
        image[0, 0, row, col:col + 2] = 1.0
    out = flagged_ones(image, torch.tensor([1]), 1.0, torch.Generator().manual_seed(0))
    # Only re-centred (a sub-pixel shift): no ink added, none left of the stroke's top.
    assert float(out.sum()) == pytest.approx(float(image.sum()), rel=1e-3)
    assert float(out[0, 0, :10, :6].max()) == 0.0
