"""The training configuration; torch-free so that ``digitvae train --help`` needs no torch."""

from __future__ import annotations

from dataclasses import dataclass

from digitvae.runtime.errors import DigitVAEError
from digitvae.runtime.spec import DEFAULT_LATENT_SIZE


@dataclass
class TrainConfig:
    epochs: int = 30  # 1-2 min each on 2 cores; with flagged 1s, 20 left the ELBO and the read-right
    # figures on generated frames just short of their goals (BENCHMARKS.md, "Flagged 1s")
    batch_size: int = 128  # small batches generalise better on MNIST and suit a CPU
    lr: float = 2e-3  # Adam peak learning rate, cosine-decayed to zero per step
    weight_decay: float = 1e-4  # mild, decoupled (AdamW); mostly for the classifier
    class_weight: float = 10.0  # the seed weighted cross-entropy 10x against the VAE loss
    gen_weight: float = 10.0  # generation/restyle consistency; 0 reproduces the plain seed
    outlier_weight: float = 0.5  # outlier exposure (Hendrycks et al. 2019 use 0.5); 0 = off
    augment: float = 0.5  # share of the classifier's batch shifted, rotated, scaled, re-stroked
    camera: float = 0.0  # share of the classifier's batch passed through the camera model (blur, low
    # resolution, shear, broken strokes, line ends, specks): what a photo does that the crop cannot undo
    flagged_ones: float = 0.25  # share of the 1s given a flag (the up-stroke many writers outside
    # the US start a 1 with; MNIST's writers seldom did, and its classifier reads such a 1 as 7)
    extra: str | None = None  # folder of extra labelled digits (a sub-folder per digit), e.g. real crops
    extra_share: float = 0.1  # extra digits added to each classifier batch, as a share of its MNIST images
    latent_size: int = DEFAULT_LATENT_SIZE  # width of z
    seed: int = 0  # same seed, same machine, same result
    limit: int | None = None  # train on the first N images only (smoke runs)
    eval_limit: int | None = None  # evaluate on the first N test images only (smoke runs)
    threads: int | None = None  # torch CPU threads; None = all cores
    data_dir: str | None = None  # folder of IDX files; None = DIGITVAE_DATA or the cache
    out_dir: str = "runs/latest"  # checkpoint, metrics and pictures go here
    resume: bool = False  # continue from out_dir/resume.pt, bit-for-bit
    device: str = "auto"  # auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps
    amp: bool = False  # bfloat16 autocast for the training step (CUDA only)

    def __post_init__(self) -> None:
        for flag, share in (("--augment", self.augment), ("--camera", self.camera),
                             ("--flagged-ones", self.flagged_ones)):
            if not 0.0 <= share <= 1.0:
                raise DigitVAEError(f"{flag} {share}: expected a share, from 0 to 1")
        if not 0.0 < self.extra_share <= 1.0:
            raise DigitVAEError(f"--extra-share {self.extra_share}: expected a share of the batch above 0, at most 1")
