"""Train the digit VAE on MNIST: ``train_one_epoch`` and ``evaluate``, pictures, checkpoints.

The loss per image is the negative ELBO (Bernoulli reconstruction summed over pixels, plus
KL) plus ``class_weight`` x the classifier's cross-entropy, as in the seed. Two more terms
keep the promise the seed's design makes, generation by digit type:

* generation consistency: decode z from the prior with a random one-hot digit d, and ask
  the (frozen) classifier to read d;
* restyle consistency: decode the posterior mean of a real image with another random d,
  and ask the same.

Both send gradients to the decoder only. Without them the decoder can learn to ignore its
digit input, because z already carries the digit (SPEC section 4, known risk). An
independent ``Judge`` network, which never sends the decoder a gradient, measures the
result every epoch.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm import tqdm

from digitvae.runtime.pictures import tile, write_png
from digitvae.runtime.spec import CHECKPOINT_FILE, NUM_CLASSES

from . import checkpoint
from .augment import augment
from .outliers import outliers
from .config import TrainConfig
from .model import DigitVAE, Judge, ModelArgs, one_hot

if TYPE_CHECKING:
    from digitvae.data.mnist import Mnist

METRICS_FILE = "metrics.jsonl"
RESUME_FILE = "resume.pt"
EVAL_SEED = 1234  # fixed noise for evaluation, so figures are comparable across epochs


# --- one epoch ------------------------------------------------------------------------


def consistency_loss(model: DigitVAE, mu: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy of the frozen classifier on digits decoded with a requested class.

    Half the codes come from the prior (generation), half are posterior means of real
    images (restyle). The classifier's weights are detached and it runs in eval mode, so
    this term shapes the decoder alone and leaves batch-norm statistics untouched.
    """
    n = mu.shape[0]
    z = torch.cat([torch.randn(n - n // 2, mu.shape[1], generator=generator), mu[: n // 2].detach()])
    wanted = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    drawn = model.decoder.decode_image(z, one_hot(wanted))
    frozen = {k: v.detach() for k, v in model.classifier.named_parameters()}
    was_training = model.classifier.training
    model.classifier.eval()
    logits = functional_call(model.classifier, (frozen, dict(model.classifier.named_buffers())), (drawn,))
    model.classifier.train(was_training)
    return F.cross_entropy(logits, wanted)


def train_one_epoch(model: DigitVAE, judge: Judge, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, images: torch.Tensor,
                    labels: torch.Tensor, config: TrainConfig, generator: torch.Generator,
                    epoch: int) -> dict[str, float]:
    model.train()
    judge.train()
    order = torch.randperm(len(images), generator=generator)
    sums: dict[str, float] = {}
    batches = range(0, len(images), config.batch_size)
    bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch", leave=False, disable=None)
    for start in bar:
        idx = order[start : start + config.batch_size]
        # The VAE learns clean digits (the test set is clean, and augmented ones cost it
        # ~28 nats each); the classifier and judge, which read camera crops, see augmented ones.
        x, y = images[idx], labels[idx]
        x_augmented = augment(x, config.augment, generator)
        mu, logvar = model.encoder(x)
        # Digits and outliers in one classifier pass, so batch norm sees them together
        # (as Hendrycks et al. do); the outliers' target is the uniform distribution.
        odd = outliers(len(x) // 2, x, y, generator) if config.outlier_weight > 0 else x[:0]
        logits = model.classifier(torch.cat([x_augmented, odd]))
        terms = model.loss_terms(x, y, mu, logvar, generator, logits=logits[: len(x)])
        uniform_ce = -F.log_softmax(logits[len(x) :], dim=1).mean() if len(odd) else torch.zeros(())
        gen = consistency_loss(model, mu, generator) if config.gen_weight > 0 else torch.zeros(())
        judged = F.cross_entropy(judge(x_augmented), y)
        classification = terms.classification + config.outlier_weight * uniform_ce
        loss = terms.neg_elbo + config.class_weight * classification + config.gen_weight * gen + judged
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step = {"neg_elbo": terms.neg_elbo.item(), "ce": terms.classification.item(), "gen_ce": gen.item(),
                "outlier_ce": uniform_ce.item()}
        for k, v in step.items():
            sums[k] = sums.get(k, 0.0) + v * len(idx)
        bar.set_postfix(elbo=f"{step['neg_elbo']:.1f}", ce=f"{step['ce']:.3f}", gen=f"{step['gen_ce']:.3f}")
    return {f"train_{k}": v / len(images) for k, v in sums.items()}


# --- evaluation -----------------------------------------------------------------------


@torch.no_grad()
def generation_accuracy(model: DigitVAE, judge: Judge, per_digit: int, seed: int) -> tuple[float, list[float]]:
    """Share of digits drawn from the prior with a one-hot digit that the judge reads right."""
    generator = torch.Generator().manual_seed(seed)
    wanted = torch.arange(NUM_CLASSES).repeat_interleave(per_digit)
    z = torch.randn(len(wanted), model.args.latent_size, generator=generator)
    read = judge(model.decoder.decode_image(z, one_hot(wanted))).argmax(1)
    per_class = [(read[wanted == d] == d).float().mean().item() for d in range(NUM_CLASSES)]
    return (read == wanted).float().mean().item(), per_class


@torch.no_grad()
def restyle_accuracy(model: DigitVAE, judge: Judge, images: torch.Tensor) -> float:
    """Share of (image, digit) pairs whose restyled drawing the judge reads as that digit."""
    mu, _ = model.encoder(images)
    hits = 0
    for d in range(NUM_CLASSES):
        wanted = torch.full((len(images),), d)
        hits += (judge(model.decoder.decode_image(mu, one_hot(wanted))).argmax(1) == d).sum().item()
    return hits / (NUM_CLASSES * len(images))


@torch.no_grad()
def evaluate(model: DigitVAE, judge: Judge, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 1000) -> dict[str, float]:
    """Test-set figures: accuracy, negative ELBO and its terms (nats per image), generation."""
    model.eval()
    judge.eval()
    generator = torch.Generator().manual_seed(EVAL_SEED)
    totals = {"correct": 0.0, "judge_correct": 0.0, "reconstruction": 0.0, "kl": 0.0}
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        mu, logvar = model.encoder(x)
        logits = model.classifier(x)  # once: the loss terms and the accuracy share it
        terms = model.loss_terms(x, y, mu, logvar, generator, reduce=False, logits=logits)
        totals["correct"] += (logits.argmax(1) == y).sum().item()
        totals["judge_correct"] += (judge(x).argmax(1) == y).sum().item()
        totals["reconstruction"] += terms.reconstruction.sum().item()
        totals["kl"] += terms.kl.sum().item()
    n = len(images)
    gen_acc, gen_per_digit = generation_accuracy(model, judge, per_digit=500, seed=EVAL_SEED)
    odd = outliers(1000, images[:500], labels[:500], torch.Generator().manual_seed(EVAL_SEED))
    outlier_confidence = F.softmax(model.classifier(odd), dim=1).max(1).values.mean().item()
    return {
        "test_accuracy": totals["correct"] / n,
        "test_neg_elbo": (totals["reconstruction"] + totals["kl"]) / n,
        "test_reconstruction": totals["reconstruction"] / n,
        "test_kl": totals["kl"] / n,
        "judge_accuracy": totals["judge_correct"] / n,
        "generation_accuracy": gen_acc,
        "generation_accuracy_min_digit": min(gen_per_digit),
        "generation_accuracy_per_digit": gen_per_digit,
        "restyle_accuracy": restyle_accuracy(model, judge, images[:1000]),
        "outlier_confidence": outlier_confidence,  # mean top probability on drawn non-digits
        "test_images": n,
    }


# --- pictures -------------------------------------------------------------------------


@torch.no_grad()
def save_pictures(model: DigitVAE, test_images: torch.Tensor, out_dir: Path, columns: int = 12) -> None:
    """generation.png: row d = digit d, same z per column. reconstruction.png: pairs.
    restyle.png: each row, a test digit then its handwriting re-drawn as 0-9."""
    model.eval()
    z = torch.randn(columns, model.args.latent_size, generator=torch.Generator().manual_seed(EVAL_SEED))
    rows = [model.decoder.decode_image(z, one_hot(torch.full((columns,), d))) for d in range(NUM_CLASSES)]
    write_png(out_dir / "generation.png", tile(torch.cat(rows)[:, 0].numpy(), NUM_CLASSES, columns), scale=3)

    originals = test_images[: 4 * columns // 2]
    mu, _ = model.encoder(originals)
    digit = F.softmax(model.classifier(originals), dim=1)
    recon = model.decoder.decode_image(mu, digit)
    pairs = torch.stack([originals, recon], dim=1).reshape(-1, *originals.shape[1:])
    write_png(out_dir / "reconstruction.png", tile(pairs[:, 0].numpy(), 4, columns), scale=3)

    sources = test_images[:8]
    mu, _ = model.encoder(sources)
    cells = []
    for i in range(len(sources)):
        cells.append(sources[i : i + 1])
        cells.append(model.decoder.decode_image(mu[i].expand(NUM_CLASSES, -1), one_hot(torch.arange(NUM_CLASSES))))
    write_png(out_dir / "restyle.png", tile(torch.cat(cells)[:, 0].numpy(), len(sources), NUM_CLASSES + 1), scale=3)


# --- the run --------------------------------------------------------------------------


def as_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1]; labels -> int64."""
    return torch.from_numpy(images).float().div_(255.0).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def build_optimizer(model: DigitVAE, judge: Judge, config: TrainConfig, steps: int):
    params = list(model.parameters()) + list(judge.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps, pct_start=0.15)
    return optimizer, scheduler


def train(config: TrainConfig, data: "Mnist") -> dict[str, Any]:
    """Run (or resume) a training; returns the last epoch's metrics."""
    out = Path(config.out_dir)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)
    if config.threads:
        torch.set_num_threads(config.threads)
    fit_images, fit_labels = as_tensors(*data.fit_split())
    test_images, test_labels = as_tensors(data.test_images, data.test_labels)
    if config.limit:
        fit_images, fit_labels = fit_images[: config.limit], fit_labels[: config.limit]
    if config.eval_limit:
        test_images, test_labels = test_images[: config.eval_limit], test_labels[: config.eval_limit]

    model, judge = DigitVAE(ModelArgs(latent_size=config.latent_size)), Judge()
    steps_per_epoch = -(-len(fit_images) // config.batch_size)
    optimizer, scheduler = build_optimizer(model, judge, config, config.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, Any]] = []
    first_epoch = 1
    if config.resume:
        first_epoch, history = restore(out / RESUME_FILE, model, judge, optimizer, scheduler, generator)

    for epoch in range(first_epoch, config.epochs + 1):
        started = time.perf_counter()
        metrics = {"epoch": epoch}
        metrics.update(train_one_epoch(model, judge, optimizer, scheduler, fit_images, fit_labels, config, generator, epoch))
        metrics["epoch_seconds"] = time.perf_counter() - started
        metrics.update(evaluate(model, judge, test_images, test_labels))
        history.append(metrics)
        report(metrics, out)
        save_pictures(model, test_images, out)
        checkpoint.save(out / CHECKPOINT_FILE, model, judge, asdict(config), history)
        checkpoint.save(out / RESUME_FILE, model, judge, asdict(config), history, extra={
            "epoch": epoch, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state()})
    return history[-1] if history else {}


def restore(path: Path, model: DigitVAE, judge: Judge, optimizer, scheduler, generator: torch.Generator):
    state = checkpoint.read(path)
    model.load_state_dict(state["model"])
    judge.load_state_dict(state["judge"])
    optimizer.load_state_dict(state["optimizer"])
    # The schedule was built for this run's --epochs (which may extend the old run);
    # only its position carries over. Unchanged --epochs resumes bit-for-bit.
    scheduler.last_epoch = state["scheduler"]["last_epoch"]
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])  # dropout draws from the global generator
    print(f"resuming {path} after epoch {state['epoch']}")
    return state["epoch"] + 1, list(state["metrics"])


def report(metrics: dict[str, Any], out: Path) -> None:
    print(
        f"epoch {metrics['epoch']:2d} ({metrics['epoch_seconds']:.0f}s): "
        f"accuracy {100 * metrics['test_accuracy']:.2f}%  -ELBO {metrics['test_neg_elbo']:.2f} nats "
        f"(recon {metrics['test_reconstruction']:.2f} + KL {metrics['test_kl']:.2f})  "
        f"generated digits read right {100 * metrics['generation_accuracy']:.2f}% "
        f"(worst digit {100 * metrics['generation_accuracy_min_digit']:.1f}%)  "
        f"restyle {100 * metrics['restyle_accuracy']:.2f}%  "
        f"confidence on non-digits {metrics['outlier_confidence']:.2f}",
        flush=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    with open(out / METRICS_FILE, "a") as f:
        f.write(json.dumps(metrics) + "\n")
