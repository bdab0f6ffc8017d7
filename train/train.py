"""Train the digit VAE on MNIST: ``train_one_epoch``, the run on a device or under torchrun,
checkpoints (figures and pictures: ``evaluate.py``; devices: ``device.py``; torchrun: ``distributed.py``).

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
from torch import nn
from torch.func import functional_call
from tqdm import tqdm

from digitvae.data.extra import load_extra
from digitvae.runtime.spec import CHECKPOINT_FILE, NUM_CLASSES

from . import checkpoint
from .augment import augment
from .camera_model import camera
from .styles import flagged_ones
from .cli import check_writable
from .config import TrainConfig
from .device import autocast, autocast_dtype, make_deterministic, rng_state, set_rng_state
from .distributed import Batches, World, WorldError, rank_seeds
from .evaluate import evaluate, save_pictures
from .model import DigitVAE, Judge, ModelArgs, one_hot
from .outliers import outliers

if TYPE_CHECKING:
    from digitvae.data.mnist import Mnist

METRICS_FILE = "metrics.jsonl"
RESUME_FILE = "resume.pt"
CPU = torch.device("cpu")


# --- one epoch ------------------------------------------------------------------------


def consistency_loss(model: DigitVAE, mu: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy of the frozen classifier on digits decoded with a requested class.

    Half the codes come from the prior (generation), half are posterior means of real
    images (restyle). The classifier's weights are detached and it runs in eval mode, so
    this term shapes the decoder alone and leaves batch-norm statistics untouched.
    """
    n, device = mu.shape[0], mu.device
    prior = torch.randn(n - n // 2, mu.shape[1], generator=generator, device=device)
    z = torch.cat([prior, mu[: n // 2].detach().float()])
    wanted = torch.randint(0, NUM_CLASSES, (n,), generator=generator, device=device)
    drawn = model.decoder.decode_image(z, one_hot(wanted))
    frozen = {k: v.detach() for k, v in model.classifier.named_parameters()}
    was_training = model.classifier.training
    model.classifier.eval()
    logits = functional_call(model.classifier, (frozen, dict(model.classifier.named_buffers())), (drawn,))
    model.classifier.train(was_training)
    return F.cross_entropy(logits, wanted)


class Objective(nn.Module):
    """The model and the judge behind one forward that returns a training step's loss.

    DistributedDataParallel synchronises the gradients of what runs inside its forward, and
    a step uses every network (the frozen classifier of the consistency term included), so
    the whole step is the module that DDP wraps. Its parameters are the model's and the judge's.
    """

    def __init__(self, model: DigitVAE, judge: Judge, config: TrainConfig) -> None:
        super().__init__()
        self.model, self.judge = model, judge
        self.class_weight, self.gen_weight, self.outlier_weight = config.class_weight, config.gen_weight, config.outlier_weight

    def forward(self, x: torch.Tensor, y: torch.Tensor, x_read: torch.Tensor, y_read: torch.Tensor, odd: torch.Tensor,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, its four terms detached: neg_elbo, ce, gen_ce, outlier_ce).

        ``x``: the clean MNIST batch the VAE learns; ``x_read``: what the classifier and the
        judge read, the same digits augmented first, then any extra digits (``y_read``)."""
        model, zero = self.model, torch.zeros((), device=x.device)
        mu, logvar = model.encoder(x)
        # Digits and outliers in one classifier pass, so batch norm sees them together
        # (as Hendrycks et al. do); the outliers' target is the uniform distribution.
        logits = model.classifier(torch.cat([x_read, odd]))
        terms = model.loss_terms(x, y, mu, logvar, generator, logits=logits[: len(x)])
        read_ce = F.cross_entropy(logits[: len(x_read)], y_read)
        uniform_ce = -F.log_softmax(logits[len(x_read) :], dim=1).mean() if len(odd) else zero
        gen = consistency_loss(model, mu, generator) if self.gen_weight > 0 else zero
        judged = F.cross_entropy(self.judge(x_read), y_read)
        classification = read_ce + self.outlier_weight * uniform_ce
        loss = terms.neg_elbo + self.class_weight * classification + self.gen_weight * gen + judged
        return loss, torch.stack([t.detach() for t in (terms.neg_elbo, read_ce, gen, uniform_ce)])


STEP_TERMS = ("neg_elbo", "ce", "gen_ce", "outlier_ce")


def classifier_view(x: torch.Tensor, y: torch.Tensor, config: TrainConfig, generator: torch.Generator,
                    extra: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """What the classifier and judge read of a batch: the MNIST digits plus ``extra_share`` of
    extra digits drawn at random, a share of the 1s flagged, augmented, then a share through
    the camera model."""
    if extra is not None:
        drawn = torch.randint(len(extra[0]), (max(1, round(config.extra_share * len(x))),), generator=generator,
                              device=generator.device)
        x, y = torch.cat([x, extra[0][drawn]]), torch.cat([y, extra[1][drawn]])
    x = flagged_ones(x, y, config.flagged_ones, generator)
    return camera(augment(x, config.augment, generator), config.camera, generator), y


def train_one_epoch(step: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                    batches: Batches, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                    generator: torch.Generator, epoch: int, world: World, amp: torch.dtype | None,
                    extra: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
    """One pass over this process's share of the data; the means are over every process's."""
    step.train()
    sums, count = dict.fromkeys(STEP_TERMS, 0.0), 0
    bar = tqdm(batches.epoch(epoch, generator), total=len(batches), desc=f"epoch {epoch}/{config.epochs}", unit="batch",
               leave=False, disable=None if world.is_main else True)
    for idx in bar:
        # The VAE learns clean digits (the test set is clean, and augmented ones cost it
        # ~28 nats each); the classifier and judge, which read camera crops, see augmented ones.
        x, y = images[idx], labels[idx]
        x_read, y_read = classifier_view(x, y, config, generator, extra)
        odd = outliers(len(x) // 2, x, y, generator) if config.outlier_weight > 0 else x[:0]
        with autocast(images.device, amp):
            loss, terms = step(x, y, x_read, y_read, odd, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        values = dict(zip(STEP_TERMS, terms.tolist()))
        for k, v in values.items():
            sums[k] += v * len(idx)
        count += len(idx)
        bar.set_postfix(elbo=f"{values['neg_elbo']:.1f}", ce=f"{values['ce']:.3f}", gen=f"{values['gen_ce']:.3f}")
    shares = world.gather({world.rank: (sums, count)})
    total = sum(c for _, c in shares.values())
    return {f"train_{k}": sum(shares[r][0][k] for r in sorted(shares)) / total for k in STEP_TERMS}


# --- the run --------------------------------------------------------------------------


def as_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1]; labels -> int64."""
    return torch.from_numpy(images).float().div_(255.0).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def build_optimizer(model: DigitVAE, judge: Judge, config: TrainConfig, steps: int):
    params = list(model.parameters()) + list(judge.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps, pct_start=0.15)
    return optimizer, scheduler


def select(data: "Mnist", config: TrainConfig) -> tuple[torch.Tensor, ...]:
    """(fit images, fit labels, test images, test labels), cut to --limit and --eval-limit."""
    fit_images, fit_labels = as_tensors(*data.fit_split())
    test_images, test_labels = as_tensors(data.test_images, data.test_labels)
    if config.limit:
        fit_images, fit_labels = fit_images[: config.limit], fit_labels[: config.limit]
    if config.eval_limit:
        test_images, test_labels = test_images[: config.eval_limit], test_labels[: config.eval_limit]
    return fit_images, fit_labels, test_images, test_labels


def train(config: TrainConfig, data: "Mnist", world: World = World(), device: torch.device = CPU) -> dict[str, Any]:
    """Run (or resume) a training on ``device``, as one of ``world``'s processes; returns the
    last epoch's metrics. Checks everything it can before rank 0 writes anything."""
    out = Path(config.out_dir)
    torch.manual_seed(config.seed)
    make_deterministic(device)
    amp = autocast_dtype(device, config.amp)
    if config.threads:
        torch.set_num_threads(config.threads)
    fit_images, fit_labels, test_images, test_labels = (t.to(device) for t in select(data, config))
    extra = tuple(t.to(device) for t in as_tensors(*load_extra(config.extra))) if config.extra else None
    batches = Batches(len(fit_images), config.batch_size, world, config.seed, device)
    if world.is_main:
        check_writable(out)

    model, judge = DigitVAE(ModelArgs(latent_size=config.latent_size)).to(device), Judge().to(device)
    optimizer, scheduler = build_optimizer(model, judge, config, config.epochs * len(batches))
    generator = torch.Generator(device).manual_seed(config.seed)
    history: list[dict[str, Any]] = []
    first_epoch = 1
    if config.resume:
        first_epoch, history = restore(out / RESUME_FILE, model, judge, optimizer, scheduler, generator, world, device)
    objective = Objective(model, judge, config)
    step = world.wrap(objective, device)

    for epoch in range(first_epoch, config.epochs + 1):
        if world.distributed:  # the seed schedule: see distributed.py
            draws, dropout = rank_seeds(config.seed, epoch, world.rank)
            generator.manual_seed(draws)
            torch.manual_seed(dropout)
        started = time.perf_counter()
        metrics = {"epoch": epoch}
        metrics.update(train_one_epoch(step, optimizer, scheduler, batches, fit_images, fit_labels,
                                       config, generator, epoch, world, amp, extra))
        metrics["epoch_seconds"] = time.perf_counter() - started
        world.sync_buffers(objective)
        metrics.update(evaluate(model, judge, test_images, test_labels, world=world))
        metrics["weights_sha256"] = world.agreed(checkpoint.weights_sha256(model, judge), "the weights")
        history.append(metrics)
        if world.is_main:
            save_epoch(out, model, judge, config, history, optimizer, scheduler, generator, world, device, test_images)
    return history[-1] if history else {}


def save_epoch(out: Path, model: DigitVAE, judge: Judge, config: TrainConfig, history: list[dict[str, Any]], optimizer,
               scheduler, generator: torch.Generator, world: World, device: torch.device, test_images: torch.Tensor) -> None:
    """Rank 0's part of an epoch's end: the line, metrics, pictures, checkpoint and resume file."""
    report(history[-1], out)
    save_pictures(model, test_images, out)
    run = {"world_size": world.size, "device": device.type}
    checkpoint.save(out / CHECKPOINT_FILE, model, judge, asdict(config), history, extra=run)
    checkpoint.save(out / RESUME_FILE, model, judge, asdict(config), history, extra={
        **run, "epoch": history[-1]["epoch"], "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "device_rng": rng_state(device)})


def restore(path: Path, model: DigitVAE, judge: Judge, optimizer, scheduler, generator: torch.Generator,
            world: World, device: torch.device) -> tuple[int, list[dict[str, Any]]]:
    """Continue from rank 0's resume file. One process restores its random state too; several
    need none (their seeds follow the epoch), but the same number of them."""
    state = world.from_main(lambda: checkpoint.read(path))
    was = (state.get("world_size", 1), state.get("device", "cpu"))  # files from before torchrun: 1, cpu
    if was != (world.size, device.type):
        raise WorldError(f"{path} was written by {was[0]} process(es) on {was[1]}; resume it the same way "
                         f"(this run: {world.size} on {device.type})")
    model.load_state_dict(state["model"])
    judge.load_state_dict(state["judge"])
    optimizer.load_state_dict(state["optimizer"])
    # The schedule was built for this run's --epochs (which may extend the old run);
    # only its position carries over. Unchanged --epochs resumes bit-for-bit.
    scheduler.last_epoch = state["scheduler"]["last_epoch"]
    if not world.distributed:
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])  # dropout draws from the global generator
        set_rng_state(device, state.get("device_rng"))
    if world.is_main:
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
