"""``digitvae.train.camera_model``: what a photo does to a digit, drawn for training."""

from __future__ import annotations

import pytest

from conftest import needs_torch

pytestmark = needs_torch


@pytest.fixture
def digits(mnist):
    from digitvae.train.train import as_tensors

    return as_tensors(mnist.test_images[:64], mnist.test_labels[:64])[0]


def test_share_zero_is_the_identity_and_draws_nothing(digits):
    import torch

    from digitvae.train.camera_model import camera

    g = torch.Generator().manual_seed(3)
    assert camera(digits, 0.0, g) is digits
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(3).get_state())


def test_the_model_changes_digits_within_range_and_is_reproducible(digits):
    import torch

    from digitvae.train.camera_model import camera

    once = camera(digits, 1.0, torch.Generator().manual_seed(5))
    again = camera(digits, 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(once, again) and once.shape == digits.shape
    assert 0 <= float(once.min()) and float(once.max()) <= 1
    changed = (once - digits).abs().flatten(1).amax(1) > 0.05
    assert changed.float().mean() > 0.5  # most digits pass through at least one effect
    half = camera(digits, 0.5, torch.Generator().manual_seed(5))
    untouched = (half == digits).flatten(1).all(1).float().mean()
    assert 0.2 < untouched < 0.8
