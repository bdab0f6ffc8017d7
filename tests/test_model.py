"""The networks' shapes and the loss terms against values worked out by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from digitvae.runtime import spec  # noqa: E402
from digitvae.train.augment import augment  # noqa: E402
from digitvae.train.model import DigitVAE, Judge, ModelArgs, kl_nats, one_hot, reconstruction_nats  # noqa: E402


@pytest.fixture(scope="module")
def model() -> DigitVAE:
    torch.manual_seed(0)
    return DigitVAE(ModelArgs()).eval()


def test_shapes(model):
    x = torch.rand(5, 1, spec.IMAGE_SIZE, spec.IMAGE_SIZE)
    mu, logvar = model.encoder(x)
    assert mu.shape == logvar.shape == (5, spec.DEFAULT_LATENT_SIZE)
    assert model.classifier(x).shape == (5, spec.NUM_CLASSES)
    image = model.decoder.decode_image(mu, one_hot(torch.arange(5)))
    assert image.shape == (5, 1, spec.IMAGE_SIZE, spec.IMAGE_SIZE)
    assert 0 <= image.min() and image.max() <= 1
    assert Judge()(x).shape == (5, spec.NUM_CLASSES)


def test_three_stage_variant_has_the_same_interface():
    model = DigitVAE(ModelArgs(vae_stages=3, vae_hidden=256)).eval()
    x = torch.rand(3, 1, 28, 28)
    mu, _ = model.encoder(x)
    assert model.decoder.decode_image(mu, one_hot(torch.arange(3))).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="vae_stages"):
        ModelArgs(vae_stages=4)


def test_latent_size_is_checked():
    with pytest.raises(ValueError, match="at least 10"):
        ModelArgs(latent_size=4)


def test_kl_by_hand():
    # KL(N(0,1)||N(0,1)) = 0; KL(N(mu,1)||N(0,1)) = mu^2/2 per dimension;
    # KL(N(0,s^2)||N(0,1)) = (s^2 - 1 - log s^2)/2 per dimension.
    zeros = torch.zeros(1, 3)
    assert kl_nats(zeros, zeros).item() == pytest.approx(0.0)
    assert kl_nats(torch.full((1, 3), 2.0), zeros).item() == pytest.approx(3 * 2.0)
    logvar = torch.full((1, 3), math.log(4.0))
    assert kl_nats(zeros, logvar).item() == pytest.approx(3 * (4 - 1 - math.log(4)) / 2)


def test_reconstruction_by_hand():
    # A pixel logit of 0 means p = 1/2: -log(1/2) = log 2 nats for any target, per pixel.
    logits = torch.zeros(2, 1, 28, 28)
    target = torch.rand(2, 1, 28, 28)
    assert reconstruction_nats(logits, target).tolist() == pytest.approx([784 * math.log(2)] * 2, rel=1e-5)
    # Target 1 with p = sigmoid(2): -log(sigmoid(2)) = log(1 + e^-2) per pixel.
    nats = reconstruction_nats(torch.full((1, 1, 28, 28), 2.0), torch.ones(1, 1, 28, 28))
    assert nats.item() == pytest.approx(784 * math.log1p(math.exp(-2)), rel=1e-5)


def test_loss_terms_are_per_image_means(model):
    x, y = torch.rand(4, 1, 28, 28), torch.arange(4)
    mu, logvar = model.encoder(x)
    g = torch.Generator().manual_seed(0)
    each = model.loss_terms(x, y, mu, logvar, torch.Generator().manual_seed(0), reduce=False)
    mean = model.loss_terms(x, y, mu, logvar, g)
    assert mean.reconstruction.item() == pytest.approx(each.reconstruction.mean().item(), rel=1e-5)
    assert mean.neg_elbo.item() == pytest.approx((each.reconstruction + each.kl).mean().item(), rel=1e-5)


def test_augment_keeps_shape_range_and_share():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    out = augment(x, 0.5, g)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.3 < changed < 0.7
    assert torch.equal(augment(x, 0.0, g), x)


def test_classifier_without_hidden_layer_loads_older_checkpoints_shape():
    # classifier_hidden=0 is the head checkpoints had before the hidden layer.
    model = DigitVAE(ModelArgs(classifier_hidden=0)).eval()
    linears = [m for m in model.classifier.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4 * 24 * 9, spec.NUM_CLASSES)]
    assert model.classifier(torch.rand(2, 1, 28, 28)).shape == (2, spec.NUM_CLASSES)


def test_outliers_are_non_digit_images_in_range_and_reproducible():
    from digitvae.train.outliers import crosses, outliers

    digits, labels = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    first = outliers(64, digits, labels, torch.Generator().manual_seed(3))
    again = outliers(64, digits, labels, torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    assert first.shape[1:] == (1, 28, 28) and 0 <= first.min() and first.max() <= 1
    # 8 each of four drawn kinds and up to 16 turned digits (a mirrored 0, 1 or 8 stays a
    # digit and is dropped).
    assert 32 < len(first) <= 48
    marks = crosses(50, torch.Generator().manual_seed(0))
    assert (marks.flatten(1).sum(1) > 20).all(), "every cross has ink"
    # Strokes end inside the 20x20 box a normalised digit occupies; with half the widest pen
    # (3 pixels) around them, the outermost rows and columns stay blank or nearly so.
    edges = torch.cat([marks[:, 0], marks[:, -1], marks[:, :, 0], marks[:, :, -1]], 1)
    assert edges.max() < 0.3
