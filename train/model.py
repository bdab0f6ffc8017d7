"""The three networks of the seed's digit VAE, and the loss that trains them together.

1. ``Encoder``: image -> Q(z|x), a diagonal Gaussian given by ``mu`` and ``logvar``.
2. ``Decoder``: f(z, y), latent vector concatenated with a 10-dim digit vector -> image.
3. ``Classifier``: image -> 10 digit logits, the auxiliary task that makes the digit
   explicit so that a chosen digit can be generated, or a captured one re-drawn.

No network samples: the reparameterisation lives in ``DigitVAE.forward`` (training) and in
the runtime's numpy code (inference), so every exported graph is deterministic.
Sizes come from ``digitvae.runtime.spec``; nothing here repeats them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from digitvae.runtime.spec import IMAGE_SIZE, MIN_LATENT_SIZE, NUM_CLASSES, DEFAULT_LATENT_SIZE

FEATURE_SIDE = IMAGE_SIZE // 4  # two stride-2 stages: 28 -> 14 -> 7
SIDES = {2: FEATURE_SIDE, 3: 4}  # a third stage (3x3, stride 2, padding 1): 7 -> 4


@dataclass(frozen=True)
class ModelArgs:
    """Architecture arguments; stored in every checkpoint so that loading never guesses."""

    latent_size: int = DEFAULT_LATENT_SIZE  # width of z; the seed used 10
    vae_channels: int = 32  # first conv width of encoder/decoder; the second is twice it
    vae_hidden: int = 128  # fully connected width between the conv stack and z; keeps the
    # encoder and decoder graphs near 1.7 MB each, so the wheel stays under 5 MB
    vae_stages: int = 2  # stride-2 conv stages of encoder/decoder: 2 (28->7) or 3 (28->4)
    classifier_channels: int = 24  # first conv width of the classifier; doubles per stage
    classifier_hidden: int = 64  # fully connected layer before the logits: +0.2% accuracy on
    # the validation slice for 1% more multiply-adds; 64 keeps the wheel under 5 MB (0 = none)
    classifier_dropout: float = 0.3  # before each of the classifier's fully connected layers

    def __post_init__(self) -> None:
        if self.vae_stages not in SIDES:
            raise ValueError(f"vae_stages must be 2 or 3, got {self.vae_stages}")
        if self.latent_size < MIN_LATENT_SIZE:
            raise ValueError(f"latent_size must be at least {MIN_LATENT_SIZE}, got {self.latent_size}")

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    # The bias is redundant before batch norm; export folds the norm into the conv.
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]


class Encoder(nn.Module):
    """(N, 1, 28, 28) in [0, 1] -> mu, logvar, each (N, latent_size)."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        c = args.vae_channels
        third = [nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.ReLU()] if args.vae_stages == 3 else []  # 7 -> 4
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.ReLU(),  # 28 -> 14
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.ReLU(),  # 14 -> 7
            *third,
            nn.Flatten(),
            nn.Linear(2 * c * SIDES[args.vae_stages] ** 2, args.vae_hidden), nn.ReLU(),
        )
        self.fc_mu = nn.Linear(args.vae_hidden, args.latent_size)
        self.fc_logvar = nn.Linear(args.vae_hidden, args.latent_size)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(image)
        return self.fc_mu(h), self.fc_logvar(h)


class Decoder(nn.Module):
    """z (N, latent_size) and digit vector (N, 10) -> pixel logits (N, 1, 28, 28).

    Returns logits so that training can use the numerically stable
    ``binary_cross_entropy_with_logits``; ``decode_image`` (and the exported graph) applies
    the sigmoid to give pixels in [0, 1].
    """

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        c, side = args.vae_channels, SIDES[args.vae_stages]
        self.fc = nn.Sequential(
            nn.Linear(args.latent_size + NUM_CLASSES, args.vae_hidden), nn.ReLU(),
            nn.Linear(args.vae_hidden, 2 * c * side**2), nn.ReLU(),
        )
        third = [nn.ConvTranspose2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.ReLU()] if args.vae_stages == 3 else []  # 4 -> 7
        self.deconv = nn.Sequential(
            nn.Unflatten(1, (2 * c, side, side)),
            *third,
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),  # 14 -> 28
        )

    def forward(self, z: torch.Tensor, digit: torch.Tensor) -> torch.Tensor:
        # The seed: "these 10 numbers will be concatenated into the latent vector".
        return self.deconv(self.fc(torch.cat([z, digit], dim=1)))

    def decode_image(self, z: torch.Tensor, digit: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(z, digit))


class Classifier(nn.Module):
    """(N, 1, 28, 28) in [0, 1] -> digit logits (N, 10).

    Three conv stages (24, 48, 96 channels) with batch norm and max pooling, then a
    fully connected layer of 64: 109k weights, 4.3M multiply-adds per image, so that ten
    camera crops classify in well under a millisecond on one core.
    """

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        c, hidden, dropout = args.classifier_channels, args.classifier_hidden, args.classifier_dropout
        self.features = nn.Sequential(
            *conv_bn_relu(1, c), nn.MaxPool2d(2),  # 28 -> 14
            *conv_bn_relu(c, 2 * c), nn.MaxPool2d(2),  # 14 -> 7
            *conv_bn_relu(2 * c, 4 * c), nn.MaxPool2d(2),  # 7 -> 3
            nn.Flatten(),
        )
        flat = 4 * c * 3 * 3
        # Batch norm on the hidden layer, as on the convs; export folds it into the Linear.
        hidden_layer = [nn.Dropout(dropout), nn.Linear(flat, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU()] if hidden else []
        self.head = nn.Sequential(*hidden_layer, nn.Dropout(dropout), nn.Linear(hidden or flat, NUM_CLASSES))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


class Judge(nn.Module):
    """An independent digit reader used only to *measure* generated digits.

    It never sends a gradient to the decoder, and its architecture differs from the
    classifier's (strided convs, no pooling), so a decoder cannot learn to fool it:
    its verdict on generated digits is an honest measurement.
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *conv_bn_relu(1, 16),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),  # 28 -> 14
            *conv_bn_relu(32, 32),
            nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),  # 14 -> 7
            *conv_bn_relu(64, 64),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * FEATURE_SIDE**2, NUM_CLASSES),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


@dataclass
class LossTerms:
    """Per-image means over a batch, in nats."""

    reconstruction: torch.Tensor  # Bernoulli cross-entropy summed over the 784 pixels
    kl: torch.Tensor  # KL(Q(z|x) || N(0, I))
    classification: torch.Tensor  # cross-entropy of the classifier against the label

    @property
    def neg_elbo(self) -> torch.Tensor:
        return self.reconstruction + self.kl


def reconstruction_nats(pixel_logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Bernoulli cross-entropy summed over pixels, per image (N,): -log p(x|z) in nats.

    Continuous targets in [0, 1], as pytorch/examples' VAE does, so the figure is comparable.
    """
    bce = F.binary_cross_entropy_with_logits(pixel_logits, image, reduction="none")
    return bce.flatten(1).sum(dim=1)


def kl_nats(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image (N,), closed form.

    Kingma & Welling 2014, appendix B: -1/2 * sum(1 + logvar - mu^2 - exp(logvar)).
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


class DigitVAE(nn.Module):
    """The three networks together, as trained. Export takes them apart again."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        self.encoder = Encoder(args)
        self.decoder = Decoder(args)
        self.classifier = Classifier(args)

    def loss_terms(self, image: torch.Tensor, label: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None, reduce: bool = True,
                   logits: torch.Tensor | None = None, eps: torch.Tensor | None = None) -> LossTerms:
        """The seed's loss terms for a batch whose encoding (mu, logvar) is already known.

        ``logits`` (default: the classifier on ``image``) lets training pass what the
        classifier made of an augmented copy of the batch; the VAE terms use clean images.
        ``eps`` (default: drawn from ``generator``) is the reparameterisation noise.
        """
        mu, logvar = mu.float(), logvar.float()  # the loss in fp32, also under autocast
        if eps is None:
            eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        z = mu + eps * torch.exp(0.5 * logvar)  # reparameterisation trick
        logits = self.classifier(image) if logits is None else logits
        # The seed's scheme: the decoder learns from what the classifier sees. Detached, so
        # that reconstruction cannot push style information into the classifier's output.
        digit = F.softmax(logits, dim=1).detach()
        reconstruction = reconstruction_nats(self.decoder(z, digit), image)
        kl = kl_nats(mu, logvar)
        classification = F.cross_entropy(logits, label, reduction="mean" if reduce else "none")
        if reduce:
            reconstruction, kl = reconstruction.mean(), kl.mean()
        return LossTerms(reconstruction=reconstruction, kl=kl, classification=classification)


def one_hot(digits: torch.Tensor) -> torch.Tensor:
    return F.one_hot(digits.long(), NUM_CLASSES).float()
