"""Test-set figures and pictures of a model, on any device, shared out over the processes
of a distributed run.

Each piece of work (a batch of test images, a chunk of generated digits, a digit to
restyle into) is done by one rank; the results are gathered on every rank and combined in
one fixed order, so every rank holds the same figures. The test-set figures do not depend
on the number of processes at all: the batches and their noise are the same for any.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from digitvae.runtime.pictures import tile, write_png
from digitvae.runtime.spec import NUM_CLASSES

from .distributed import World
from .model import DigitVAE, Judge, one_hot
from .outliers import outliers

EVAL_SEED = 1234  # fixed noise for evaluation, so figures are comparable across epochs
SINGLE = World()


def chunked(world: World, n: int, compute: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
    """``compute(start, stop)`` over ``range(n)`` cut into one chunk per rank, gathered and
    joined in order on the CPU (one process: a single chunk, as before sharding)."""
    size = -(-n // world.size)
    bounds = {i: (i * size, min(n, (i + 1) * size)) for i in range(world.size) if i * size < n}
    mine = {i: compute(*bounds[i]).cpu() for i in bounds if world.owns(i)}
    parts = world.gather(mine)
    return torch.cat([parts[i] for i in sorted(parts)])


@torch.no_grad()
def generation_accuracy(model: DigitVAE, judge: Judge, per_digit: int, seed: int,
                        world: World = SINGLE) -> tuple[float, list[float]]:
    """Share of digits drawn from the prior with a one-hot digit that the judge reads right."""
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    wanted = torch.arange(NUM_CLASSES, device=device).repeat_interleave(per_digit)
    z = torch.randn(len(wanted), model.args.latent_size, generator=generator, device=device)
    read = chunked(world, len(wanted), lambda a, b: judge(model.decoder.decode_image(z[a:b], one_hot(wanted[a:b]))).argmax(1))
    wanted = wanted.cpu()
    per_class = [(read[wanted == d] == d).float().mean().item() for d in range(NUM_CLASSES)]
    return (read == wanted).float().mean().item(), per_class


@torch.no_grad()
def restyle_accuracy(model: DigitVAE, judge: Judge, images: torch.Tensor, world: World = SINGLE) -> float:
    """Share of (image, digit) pairs whose restyled drawing the judge reads as that digit."""
    mu, _ = model.encoder(images)
    hits = {}
    for d in filter(world.owns, range(NUM_CLASSES)):
        wanted = torch.full((len(images),), d, device=images.device)
        hits[d] = (judge(model.decoder.decode_image(mu, one_hot(wanted))).argmax(1) == d).sum().item()
    return sum(world.gather(hits).values()) / (NUM_CLASSES * len(images))


def _batch_totals(model: DigitVAE, judge: Judge, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> tuple[float, ...]:
    """(classifier right, judge right, reconstruction nats, KL nats), summed over one batch."""
    mu, logvar = model.encoder(x)
    logits = model.classifier(x)  # once: the loss terms and the accuracy share it
    terms = model.loss_terms(x, y, mu, logvar, reduce=False, logits=logits, eps=eps)
    return ((logits.argmax(1) == y).sum().item(), (judge(x).argmax(1) == y).sum().item(),
            terms.reconstruction.sum().item(), terms.kl.sum().item())


@torch.no_grad()
def evaluate(model: DigitVAE, judge: Judge, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 1000, world: World = SINGLE) -> dict[str, float]:
    """Test-set figures: accuracy, negative ELBO and its terms (nats per image), generation."""
    model.eval()
    judge.eval()
    generator = torch.Generator(images.device).manual_seed(EVAL_SEED)
    mine = {}
    for i, start in enumerate(range(0, len(images), batch_size)):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        # Every rank draws every batch's noise, so each image meets the same noise for any world size.
        eps = torch.randn(len(x), model.args.latent_size, generator=generator, device=images.device)
        if world.owns(i):
            mine[i] = _batch_totals(model, judge, x, y, eps)
    batches = world.gather(mine)
    totals = {"correct": 0.0, "judge_correct": 0.0, "reconstruction": 0.0, "kl": 0.0}
    for i in sorted(batches):  # in batch order, so the sums are the same for any world size
        for key, value in zip(totals, batches[i]):
            totals[key] += value
    n = len(images)
    gen_acc, gen_per_digit = generation_accuracy(model, judge, per_digit=500, seed=EVAL_SEED, world=world)
    odd = outliers(1000, images[:500], labels[:500], torch.Generator(images.device).manual_seed(EVAL_SEED))
    confidence = chunked(world, len(odd), lambda a, b: F.softmax(model.classifier(odd[a:b]), dim=1).max(1).values)
    return {
        "test_accuracy": totals["correct"] / n,
        "test_neg_elbo": (totals["reconstruction"] + totals["kl"]) / n,
        "test_reconstruction": totals["reconstruction"] / n,
        "test_kl": totals["kl"] / n,
        "judge_accuracy": totals["judge_correct"] / n,
        "generation_accuracy": gen_acc,
        "generation_accuracy_min_digit": min(gen_per_digit),
        "generation_accuracy_per_digit": gen_per_digit,
        "restyle_accuracy": restyle_accuracy(model, judge, images[:1000], world),
        "outlier_confidence": confidence.mean().item(),  # mean top probability on drawn non-digits
        "test_images": n,
    }


@torch.no_grad()
def save_pictures(model: DigitVAE, test_images: torch.Tensor, out_dir: Path, columns: int = 12) -> None:
    """generation.png: row d = digit d, same z per column. reconstruction.png: pairs.
    restyle.png: each row, a test digit then its handwriting re-drawn as 0-9."""
    model.eval()
    device = test_images.device
    z = torch.randn(columns, model.args.latent_size, generator=torch.Generator(device).manual_seed(EVAL_SEED), device=device)
    rows = [model.decoder.decode_image(z, one_hot(torch.full((columns,), d, device=device))) for d in range(NUM_CLASSES)]
    write_png(out_dir / "generation.png", tile(torch.cat(rows)[:, 0].cpu().numpy(), NUM_CLASSES, columns), scale=3)

    originals = test_images[: 4 * columns // 2]
    mu, _ = model.encoder(originals)
    digit = F.softmax(model.classifier(originals), dim=1)
    recon = model.decoder.decode_image(mu, digit)
    pairs = torch.stack([originals, recon], dim=1).reshape(-1, *originals.shape[1:])
    write_png(out_dir / "reconstruction.png", tile(pairs[:, 0].cpu().numpy(), 4, columns), scale=3)

    sources = test_images[:8]
    mu, _ = model.encoder(sources)
    cells = []
    for i in range(len(sources)):
        cells.append(sources[i : i + 1])
        cells.append(model.decoder.decode_image(mu[i].expand(NUM_CLASSES, -1), one_hot(torch.arange(NUM_CLASSES, device=device))))
    write_png(out_dir / "restyle.png", tile(torch.cat(cells)[:, 0].cpu().numpy(), len(sources), NUM_CLASSES + 1), scale=3)
