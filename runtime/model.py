"""``DigitVAE``: the three graphs on onnxruntime, with numpy for everything in between.

The seed's two ways of using the model: image -> latent and digit (``encode``,
``classify``), and latent plus digit -> image (``decode``, ``generate``). Sampling happens
here, in numpy, with a seed the caller can give; the graphs themselves are deterministic.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from . import inputs, spec
from .artifacts import Artifacts, ArtifactError, load_artifacts
from .novelty import GATES, Thresholds, combine, tests

CHUNK = 4096  # images per onnxruntime call: bounds the memory of a large batch
NOISE_DRAWS = 8192  # posterior noise vectors per seed that images pick from (see posterior_sample)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def bernoulli_nats(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """-log p(x|z) per image: Bernoulli cross-entropy summed over the 784 pixels, in nats."""
    eps = np.float32(1e-7)  # the decoder's sigmoid can round to exactly 0 or 1 in float32
    p = np.clip(pixels, eps, 1 - eps)
    return -(image * np.log(p) + (1 - image) * np.log1p(-p)).reshape(len(image), -1).sum(axis=1)


def kl_nats(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image (Kingma & Welling 2014, appendix B)."""
    return -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=1)


def posterior_sample(images: np.ndarray, mu: np.ndarray, logvar: np.ndarray, seed: int | None) -> np.ndarray:
    """One z ~ Q(z|x) per image, float32 (N, latent): mu + eps * exp(logvar / 2), the
    reparameterisation as in training. With a ``seed``, each image's eps is picked from a
    table of draws made with that seed by the image's own pixels (CRC-32), so an image's
    sample, and its score, depend on the image and the seed alone, not on its place in the
    batch (a crop is judged the same in any frame), while different images still get
    independent noise but for a 1 in ``NOISE_DRAWS`` chance of sharing a draw (a mean over
    images is an honest ELBO estimate)."""
    if seed is None:
        eps = np.random.default_rng().standard_normal(mu.shape, dtype=np.float32)
    else:
        pick = [zlib.crc32(image.tobytes()) % NOISE_DRAWS for image in np.ascontiguousarray(images)]
        eps = _noise_table(seed, mu.shape[1])[pick]
    return (mu + eps * np.exp(0.5 * logvar)).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _noise_table(seed: int, latent_size: int) -> np.ndarray:
    table = np.random.default_rng(seed).standard_normal((NOISE_DRAWS, latent_size), dtype=np.float32)
    table.flags.writeable = False  # shared by every caller and thread
    return table


@dataclass(frozen=True)
class Assessment:
    """Everything the camera needs about a batch of crops, from one pass of each graph."""

    probabilities: np.ndarray  # (N, 10) float32
    score: np.ndarray  # (N,) negative ELBO, nats
    oddness: np.ndarray  # (N,) <= 1 means "a digit" under the manifest's thresholds
    is_digit: np.ndarray  # (N,) bool
    tests: dict[str, np.ndarray]  # each test's (N,) value over its threshold (see novelty.tests)

    @property
    def digits(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


class DigitVAE:
    """Encoder, decoder and classifier of the digit VAE, run on the CPU with onnxruntime.

    Thread-safe: onnxruntime sessions may be run from several threads at once, and every
    call keeps its random state local.
    """

    def __init__(self, artifacts: Artifacts, threads: int | None = None) -> None:
        self.artifacts = artifacts
        self.latent_size = artifacts.latent_size
        thresholds = artifacts.manifest.get("thresholds")
        try:
            self.thresholds = Thresholds.from_manifest(thresholds) if thresholds else None
        except ValueError as exc:
            raise ArtifactError(f"{artifacts.folder / spec.MANIFEST_FILE}: {exc}") from exc
        options = ort.SessionOptions()
        if threads is not None:
            if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
                raise ValueError(f"threads: expected a positive integer or None, got {threads!r}")
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only; onnxruntime's warnings are not the user's business
        self._sessions = {}
        for name, data in artifacts.graphs.items():
            try:
                self._sessions[name] = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ArtifactError(f"onnxruntime cannot load {artifacts.folder / artifacts.files[name]}: {exc}") from exc

    @classmethod
    def load(cls, folder: str | os.PathLike[str] | None = None, *, precision: str = "fp32",
             threads: int | None = None) -> "DigitVAE":
        """Load and verify the artifacts: ``folder``, else ``$DIGITVAE_ARTIFACTS``, else the
        graphs shipped in the package. ``precision="int8"`` uses the int8 graphs that ship."""
        artifacts = load_artifacts(folder, precision)
        if precision == "int8" and not any(f.endswith(spec.INT8_SUFFIX) for f in artifacts.files.values()):
            raise ArtifactError(f"no int8 graphs ship in {artifacts.folder}: use precision='fp32'")
        return cls(artifacts, threads)

    # --- the graphs -------------------------------------------------------------------

    def _run(self, name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        n = len(next(iter(feeds.values())))
        parts = [self._sessions[name].run(None, {k: v[i : i + CHUNK] for k, v in feeds.items()}) for i in range(0, n, CHUNK)]
        return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]

    def classify(self, images: Any) -> np.ndarray:
        """Images (N, 1, 28, 28), (N, 28, 28) or (28, 28), float in [0, 1] (or uint8 0-255)
        -> (N, 10) float32 probabilities of the digits 0-9."""
        return softmax(self._run("classifier", {"image": inputs.images(images)})[0])

    def encode(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """Images as for ``classify`` -> ``mu``, ``logvar``: (N, latent_size) float32 each."""
        mu, logvar = self._run("encoder", {"image": inputs.images(images)})
        return mu, logvar

    def decode(self, z: Any, digits: Any) -> np.ndarray:
        """z (N, latent_size) float, digits ints 0-9 (N,) or vectors (N, 10) of probabilities
        -> (N, 28, 28) float32 images in [0, 1]."""
        z = inputs.latents(z, self.latent_size)
        return self._decode(z, inputs.digit_vectors(digits, len(z)))

    def _decode(self, z: np.ndarray, digit: np.ndarray) -> np.ndarray:
        return self._run("decoder", {"z": z, "digit": digit})[0][:, 0]

    # --- the seed's uses ----------------------------------------------------------------

    def sample_latents(self, n: int, seed: int | None = None) -> np.ndarray:
        """(n, latent_size) float32 draws from the prior N(0, I)."""
        rng = np.random.default_rng(inputs.seed(seed))
        return rng.standard_normal((inputs.count(n), self.latent_size), dtype=np.float32)

    def generate(self, digit: int, n: int = 16, seed: int | None = None) -> np.ndarray:
        """The digit ``digit`` in ``n`` random handwriting styles -> (n, 28, 28) float32."""
        z = self.sample_latents(n, seed)
        return self._decode(z, inputs.digit_vectors(digit, len(z), what="digit"))

    def reconstruct(self, images: Any) -> np.ndarray:
        """Each image through encoder (posterior mean) and decoder, with the digit the
        classifier reads -> (N, 28, 28) float32."""
        x = inputs.images(images)
        mu, _ = self._run("encoder", {"image": x})
        return self._decode(mu, softmax(self._run("classifier", {"image": x})[0]))

    def restyle(self, image: Any, digits: Iterable[int] = range(10)) -> np.ndarray:
        """One image's handwriting re-drawn as each of ``digits`` -> (len(digits), 28, 28)."""
        x = inputs.images(image, what="image")
        if len(x) != 1:
            raise ValueError(f"image: expected one image, got a batch of {len(x)}; call restyle once per image")
        wanted = inputs.digit_vectors(np.asarray(list(digits), dtype=np.int64), what="digits")
        mu, _ = self._run("encoder", {"image": x})
        return self._decode(np.repeat(mu, len(wanted), axis=0), wanted)

    def score(self, images: Any, seed: int | None = 0) -> np.ndarray:
        """Per-image negative ELBO in nats (one posterior sample, drawn with ``seed``, see
        :func:`posterior_sample`): high means unlike a digit. An image scores the same alone
        or in any batch. Blank crops score *low*, so see ``is_digit``."""
        return self._score(inputs.images(images), seed)[0]

    def _score(self, x: np.ndarray, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
        mu, logvar = self._run("encoder", {"image": x})
        probabilities = softmax(self._run("classifier", {"image": x})[0])
        pixels = self._decode(posterior_sample(x, mu, logvar, inputs.seed(seed)), probabilities)[:, None]
        return bernoulli_nats(x, pixels) + kl_nats(mu, logvar), probabilities

    def assess(self, images: Any, seed: int | None = 0, *, gates: Collection[str] = GATES) -> Assessment:
        """Probabilities, score and the is-digit verdict in one pass of each graph. The
        gates of :func:`~digitvae.runtime.novelty.tests` named in ``gates`` apply (default:
        all; the camera reader leaves one out)."""
        if self.thresholds is None:
            raise ArtifactError(f"{self.artifacts.folder / spec.MANIFEST_FILE} has no is-digit thresholds: re-export the artifacts")
        x = inputs.images(images)
        score, probabilities = self._score(x, seed)
        values = tests(self.thresholds, score, probabilities, x, gates)
        odd = combine(values)
        return Assessment(probabilities=probabilities, score=score, oddness=odd, is_digit=odd <= 1.0, tests=values)

    def is_digit(self, images: Any, seed: int | None = 0) -> np.ndarray:
        """(N,) bool: is each image a digit at all? Combines the score, the classifier's
        confidence and the amount of ink against the manifest's calibrated thresholds."""
        return self.assess(images, seed).is_digit
