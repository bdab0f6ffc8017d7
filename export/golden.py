"""Golden fixtures: a few real inputs and PyTorch's outputs, so the runtime's tests can
check numbers without torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from digitvae.runtime import spec
from digitvae.train.model import DigitVAE, one_hot

GOLDEN_IMAGES = 32  # real test digits; enough to cover every class, small enough to ship
GOLDEN_SEED = 20240607


@torch.no_grad()
def write_golden(model: DigitVAE, test_images: np.ndarray, test_labels: np.ndarray, path: Path) -> None:
    """Inputs (images, z, digits) and outputs (mu, logvar, logits, decoded) of every graph."""
    model.eval()
    images = torch.from_numpy(test_images[:GOLDEN_IMAGES]).float().div(255.0).unsqueeze(1)
    generator = torch.Generator().manual_seed(GOLDEN_SEED)
    z = torch.randn(2 * spec.NUM_CLASSES, model.args.latent_size, generator=generator)
    digits = torch.arange(2 * spec.NUM_CLASSES) % spec.NUM_CLASSES
    mu, logvar = model.encoder(images)
    np.savez_compressed(
        path,
        images=images.numpy(),
        labels=test_labels[:GOLDEN_IMAGES].astype(np.int64),
        mu=mu.numpy(),
        logvar=logvar.numpy(),
        logits=model.classifier(images).numpy(),
        z=z.numpy(),
        digits=digits.numpy(),
        decoded=model.decoder.decode_image(z, one_hot(digits)).numpy(),
    )
