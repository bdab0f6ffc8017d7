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
    gained = out.sum(dim=(1, 2, 3)) > images.sum(dim=(1, 2, 3)) + 2.0  # re-centring alone keeps the ink
    assert gained[labels == 1].float().mean() > 0.5  # most 1s are upright or lean right
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    # The flag pulls the upper half's ink to the left of the lower half's.
    flagged = out[gained]
    assert (_upper_lean(flagged) > _upper_lean(images[gained]) + 0.5).float().mean() > 0.8
    cols = torch.arange(28.0)
    centre = (flagged.sum(dim=(1, 2)) * cols).sum(1) / flagged.sum(dim=(1, 2, 3))
    assert torch.allclose(centre, torch.full_like(centre, 14.0), atol=0.3)  # pixel 14, as MNIST's


def _upper_lean(images):
    """(N,) how far left of the lower half's mean column the upper half's ink lies (columns;
    the halves split at each image's centre of mass): unchanged by a shift."""
    import torch

    x = images[:, 0]
    index = torch.arange(28.0)
    row = (x.sum(2) * index).sum(1) / x.sum(dim=(1, 2))
    upper = (index.view(1, 28, 1) < row.view(-1, 1, 1)).float()

    def mean_column(weights):
        return (weights.sum(1) * index).sum(1) / weights.sum(dim=(1, 2)).clamp_min(1e-6)

    return mean_column(x * (1 - upper)) - mean_column(x * upper)


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
