"""One training run: ``fit(config, run_dir)`` yields one result per epoch.

The loop follows section 3.1 of the paper: SGD with Nesterov momentum, lr 0.01 decayed by 0.1
every 10 epochs, focal loss plus the Dice attention regularisers of Eq. 5, oversampled epochs,
and the best epoch chosen by validation AUC (never test). Every epoch writes ``last.pt`` (and
``best.pt`` when validation AUC improves), so a run given its directory back resumes where it
stopped and ends with the same numbers as an uninterrupted one: the sampler order, the
augmentation draws and dropout are all re-seeded from (seed, epoch) at the start of each epoch.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attnmel.config import TrainConfig, config_hash, config_to_dict, load_config, save_config
from attnmel.data import DataBundle, EpochSampler, SplitTensors, eval_batch, load_bundle, train_batch
from attnmel.errors import UserError
from attnmel.losses import batch_dice_loss, downsample_reference, focal_loss
from attnmel.metrics import ap_auc
from attnmel.models import create_model, paper_name
from attnmel.selection import best_epoch_row

__all__ = [
    "fit",
    "train_one_epoch",
    "evaluate",
    "run_identity",
    "code_version",
    "resolve_device",
    "NonFiniteLossError",
    "read_summary",
]

LAST, BEST = "last.pt", "best.pt"
CHECK_EVERY = 20  # steps between host reads of the non-finite-loss flag
EPOCHS_LOG = "epochs.jsonl"


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one.

    ``ATTNMEL_CODE_VERSION`` wins: a job shipped to a cluster as a copy without ``.git``
    carries the submitter's version in it.
    """
    from attnmel import __version__

    if os.environ.get("ATTNMEL_CODE_VERSION"):
        return os.environ["ATTNMEL_CODE_VERSION"]

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def run_identity(cfg: TrainConfig) -> dict[str, Any]:
    """The fields that say which run this is (variant, ROI, seed, effective λ, ...)."""
    regularised = cfg.data.roi != "none"
    return {
        "dataset": cfg.data.dataset,
        "variant": cfg.model.variant,
        "roi": cfg.data.roi,
        "paper_name": paper_name(cfg.model.variant, cfg.data.roi),
        "seed": cfg.runtime.seed,
        "lambda1": float(cfg.loss.lambda1) if regularised else 0.0,
        "lambda2": float(cfg.loss.lambda2) if regularised else 0.0,
        "backbone": cfg.model.backbone,
        "weights": cfg.model.weights,
        "pretrained": cfg.model.weights != "none",
        "config_hash": config_hash(cfg),
        "code_version": code_version(),
    }


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; explicit names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"config key 'runtime.device' is {name!r} but CUDA is not available here")
    return device


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent, reproducible seeds per (run seed, epoch, stream)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def _raise_if_bad(first_bad: torch.Tensor, epoch: int) -> None:
    step = int(first_bad.item())
    if step:
        raise NonFiniteLossError(f"non-finite training loss at epoch {epoch}, step {step}")


def _classification_loss(logits: torch.Tensor, target: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    if cfg.loss.kind == "ce":
        return nn.functional.cross_entropy(logits, target)
    return focal_loss(logits, target, gamma=cfg.loss.gamma)


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: SplitTensors,
    order: np.ndarray,
    *,
    cfg: TrainConfig,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    generator: torch.Generator,
    epoch: int,
    bf16: bool,
    channels_last: bool,
) -> dict[str, float]:
    """One epoch over ``order`` (indices into ``train``); returns mean losses per term."""
    model.train()
    device = train.images.device
    regularised = cfg.data.roi != "none"
    batch_size = cfg.optim.batch_size
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # total, cls, dice3, dice4
    steps = 0
    first_bad = torch.zeros((), dtype=torch.long, device=device)  # 1-based step of the first NaN/inf loss
    order_t = torch.as_tensor(order, dtype=torch.long, device=device)
    for step, start in enumerate(range(0, len(order_t), batch_size)):
        index = order_t[start : start + batch_size]
        if len(index) < 2:  # batch norm cannot train on a single sample
            continue
        images, rois = train_batch(
            train.images.index_select(0, index),  # far faster than fancy indexing on CPU
            train.rois.index_select(0, index) if regularised else None,
            crop=cfg.data.crop_size,
            mean=mean,
            std=std,
            generator=generator,
        )  # (B, 3, c, c) float, (B, 1, c, c) or None
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = train.labels.index_select(0, index)
        with _autocast(device, bf16):
            out = model(images)
        cls = _classification_loss(out.logits.float(), target, cfg)
        loss = cls
        dice3 = dice4 = torch.zeros((), device=device)
        if regularised:
            attn3, attn4 = out.attn3.float(), out.attn4.float()
            dice3 = batch_dice_loss(attn3, downsample_reference(rois, attn3.shape[-2:]))
            dice4 = batch_dice_loss(attn4, downsample_reference(rois, attn4.shape[-2:]))
            loss = cls + cfg.loss.lambda1 * dice3 + cfg.loss.lambda2 * dice4
        # Remember the first non-finite step on the device; reading it back every step would
        # stall the GPU, so it is checked every CHECK_EVERY steps and at the end of the epoch.
        first_bad = torch.where((first_bad == 0) & ~torch.isfinite(loss.detach()), step + 1, first_bad)
        if (step + 1) % CHECK_EVERY == 0:
            _raise_if_bad(first_bad, epoch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums += torch.stack([loss.detach(), cls.detach(), dice3.detach(), dice4.detach()]).double()
        steps += 1
    _raise_if_bad(first_bad, epoch)
    means = (sums / max(steps, 1)).tolist()  # one device sync per epoch, not per step
    return dict(zip(("train_loss", "train_cls_loss", "train_dice3", "train_dice4"), means))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: SplitTensors,
    *,
    crop: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    batch_size: int,
    bf16: bool,
    channels_last: bool,
) -> tuple[float, float, np.ndarray]:
    """Melanoma probability (softmax of the two logits) on the centre crop; returns (AP, AUC, probs)."""
    model.eval()
    device = split.images.device
    probs = []
    for start in range(0, len(split.labels), batch_size):
        images = eval_batch(split.images[start : start + batch_size], crop=crop, mean=mean, std=std)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(device, bf16):
            logits = model(images).logits
        probs.append(torch.softmax(logits.float(), dim=1)[:, 1])
    prob = torch.cat(probs).cpu().numpy()
    ap, auc = ap_auc(split.labels.cpu().numpy(), prob)
    return ap, auc, prob


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _link_or_copy(source: Path, target: Path) -> None:
    """Atomically make ``target`` the same file as ``source``: a hard link (no copy of a
    checkpoint that can be 1 GB) that survives the next ``os.replace`` of ``source``."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _numbers_key(cfg: TrainConfig) -> str:
    """Hash of what determines the numbers (not device, threads or fault injection)."""
    runtime = replace(cfg.runtime, device="auto", num_threads=None, fail_at_epoch=None, eval_batch_size=64)
    return config_hash(replace(cfg, runtime=runtime))


def _bundle_to(bundle: DataBundle, device: torch.device) -> DataBundle:
    def move(split: SplitTensors) -> SplitTensors:
        return SplitTensors(
            images=split.images.to(device, non_blocking=True),
            labels=split.labels.to(device, non_blocking=True),
            rois=None if split.rois is None else split.rois.to(device, non_blocking=True),
            ids=split.ids,
        )

    return replace(bundle, train=move(bundle.train), val=move(bundle.val), test=move(bundle.test))


def fit(config: TrainConfig, run_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Train ``config`` in ``run_dir`` and yield one result dict per epoch.

    Resumes from ``run_dir/last.pt`` when it exists (and refuses a directory that holds a
    different run). Each result carries the epoch's losses, lr, validation and test AP/AUC,
    timings, the best epoch so far (by validation AUC) with its metrics, and the run's identity.
    """
    cfg = config
    run_dir = Path(run_dir)
    identity = run_identity(cfg)  # also rejects a ROI on a variant without attention
    device = resolve_device(cfg.runtime.device)
    on_cuda = device.type == "cuda"
    bf16 = cfg.runtime.bf16 if cfg.runtime.bf16 is not None else on_cuda
    channels_last = cfg.runtime.channels_last if cfg.runtime.channels_last is not None else on_cuda
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    if on_cuda:
        torch.backends.cudnn.benchmark = True

    state = torch.load(run_dir / LAST, map_location="cpu", weights_only=False) if (run_dir / LAST).exists() else None
    if state is not None and state["numbers_key"] != _numbers_key(cfg):
        raise UserError(f"{run_dir} holds a run with a different config; use a new --out directory")

    torch.manual_seed(cfg.runtime.seed)  # model initialisation
    model = create_model(cfg.model.variant, backbone=cfg.model.backbone, weights=cfg.model.weights)
    bundle = load_bundle(cfg.data)
    run_dir.mkdir(parents=True, exist_ok=True)  # only once the inputs proved usable
    save_config(cfg, run_dir / "config.yaml")
    (run_dir / "data_info.json").write_text(json.dumps(bundle.info, indent=2, default=str))

    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.optim.lr,
        momentum=cfg.optim.momentum,
        nesterov=cfg.optim.nesterov and cfg.optim.momentum > 0,
        weight_decay=cfg.optim.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.optim.lr_step, gamma=cfg.optim.lr_gamma)
    sampler = EpochSampler(
        bundle.train.labels.tolist(),
        oversample=cfg.data.oversample,
        passes=cfg.data.resolved_passes(),
        seed=cfg.runtime.seed,
    )
    history: list[dict[str, Any]] = []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
    _write_epochs_log(run_dir, history)  # drops rows of epochs whose checkpoint never landed

    data = _bundle_to(bundle, device)
    mean, std = bundle.mean, bundle.std
    generator = torch.Generator(device=device)
    for epoch in range(len(history) + 1, cfg.optim.epochs + 1):
        if cfg.runtime.fail_at_epoch == epoch:
            raise RuntimeError(f"injected failure at epoch {epoch} (runtime.fail_at_epoch)")
        torch.manual_seed(_epoch_seed(cfg.runtime.seed, epoch, 0))  # dropout
        generator.manual_seed(_epoch_seed(cfg.runtime.seed, epoch, 1))  # augmentation
        order = sampler.epoch_indices(epoch)
        lr = optimizer.param_groups[0]["lr"]
        started = time.perf_counter()
        losses = train_one_epoch(
            model, optimizer, data.train, order, cfg=cfg, mean=mean, std=std,
            generator=generator, epoch=epoch, bf16=bf16, channels_last=channels_last,
        )
        if on_cuda:
            torch.cuda.synchronize()
        train_seconds = time.perf_counter() - started
        scheduler.step()
        eval_kw = dict(crop=cfg.data.crop_size, mean=mean, std=std, batch_size=cfg.runtime.eval_batch_size,
                       bf16=bf16, channels_last=channels_last)
        val_ap, val_auc, _ = evaluate(model, data.val, **eval_kw)
        test_ap, test_auc, _ = evaluate(model, data.test, **eval_kw)
        row: dict[str, Any] = {
            "epoch": epoch,
            "lr": lr,
            **losses,
            "val_auc": val_auc,
            "val_ap": val_ap,
            "test_auc": test_auc,
            "test_ap": test_ap,
            "epoch_seconds": time.perf_counter() - started,
            "images_per_second": len(order) / train_seconds if train_seconds > 0 else math.nan,
        }
        history.append(row)
        best = best_epoch_row(history)
        is_best = best["epoch"] == epoch
        _atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "sampler": {"seed": sampler.seed, "oversample": sampler.oversample, "passes": sampler.passes},
                "rng": {"torch": torch.get_rng_state(), "augment": generator.get_state().cpu()},
                "epoch": epoch,
                "history": history,
                "config": config_to_dict(cfg),
                "numbers_key": _numbers_key(cfg),
            },
            run_dir / LAST,
        )
        if is_best:
            _link_or_copy(run_dir / LAST, run_dir / BEST)
        _write_epochs_log(run_dir, history)
        yield {
            **row,
            **_best_fields(best),
            "is_best": is_best,
            "done": epoch == cfg.optim.epochs,
            **identity,
        }


def _best_fields(best: dict[str, Any]) -> dict[str, Any]:
    return {
        "best_epoch": best["epoch"],
        "best_val_auc": best["val_auc"],
        "best_val_ap": best["val_ap"],
        "best_test_auc": best["test_auc"],
        "best_test_ap": best["test_ap"],
    }


def _write_epochs_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    tmp = run_dir / (EPOCHS_LOG + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in history))
    os.replace(tmp, run_dir / EPOCHS_LOG)


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """Best-epoch summary of a run directory, from its small ``epochs.jsonl`` and ``config.yaml``
    (no checkpoint is loaded)."""
    run_dir = Path(run_dir)
    log = run_dir / EPOCHS_LOG
    if not log.exists():
        raise UserError(f"no finished epoch in {run_dir} (expected {log})")
    history = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    best = best_epoch_row(history)
    if best is None:
        raise UserError(f"no finished epoch in {run_dir} (expected {log})")
    cfg = load_config(run_dir / "config.yaml")
    return {
        "best_epoch": best["epoch"],
        "val_auc": best["val_auc"],
        "val_ap": best["val_ap"],
        "test_auc": best["test_auc"],
        "test_ap": best["test_ap"],
        "epochs": len(history),
        "done": len(history) >= cfg.optim.epochs,
    }
