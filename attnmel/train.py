"""One training run: ``fit(config, run_dir)`` yields one result per epoch.

The loop follows section 3.1 of the paper: SGD with Nesterov momentum, lr 0.01 decayed by 0.1
every 10 epochs, Eq. 5 (focal loss plus the Dice attention regularisers), oversampled epochs,
and the best epoch chosen by validation AUC (never test). A run given its directory back
resumes after its last checkpoint and ends with the same numbers as an uninterrupted one: the
sampler order, the augmentation draws and dropout are re-seeded from (seed, epoch) at the
start of each epoch, so no RNG state needs saving. What the directory holds is described in
:mod:`attnmel.checkpoint`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attnmel import checkpoint as ckpt
from attnmel.atomic import atomic_write
from attnmel.config import TrainConfig, config_hash, config_to_dict, save_config
from attnmel.data import DataBundle, EpochSampler, SplitTensors, load_bundle, train_batch
from attnmel.errors import UserError
from attnmel.evaluation import NonFiniteError, attention_rows, eval_batch_size, evaluate, melanoma_probs
from attnmel.metrics import ap_auc
from attnmel.record import LOSS_TERMS, SPLIT_METRICS, external_metrics, external_split, run_identity
from attnmel.models import build_model
from attnmel.runtime import Precision, prepare_model, resolve_device, resolve_precision
from attnmel.selection import best_epoch_row
from attnmel.step import load_optimizer_state, make_optimizer, make_scheduler, train_step

__all__ = ["fit", "train_one_epoch", "BestEpoch", "numbers_key", "resume_payload"]

CHECK_EVERY = 20  # steps between host reads of the non-finite-loss flag


def numbers_key(cfg: TrainConfig) -> str:
    """Hash of what determines the numbers (not device, threads, compilation, cuDNN autotuning,
    evaluation batching, when test is scored, checkpointing or fault injection: a run may resume
    under other such settings)."""
    runtime = replace(
        cfg.runtime, device="auto", num_threads=None, fail_at_epoch=None, eval_batch_size=None, checkpoint_every=1,
        compile=None, cudnn_benchmark=None, background_checkpoint=True, eval_test="every",
    )
    return config_hash(replace(cfg, runtime=runtime))


def _different_run(run_dir: Path) -> UserError:
    return UserError(f"{run_dir} holds a run with a different config; use a new --out directory")


def _remove_run_files(run_dir: Path, *, remove_dir: bool) -> None:
    for name in ("config.yaml", ckpt.DATA_INFO, ckpt.EPOCHS_LOG):
        (run_dir / name).unlink(missing_ok=True)
    if remove_dir and not any(run_dir.iterdir()):
        run_dir.rmdir()


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent, reproducible seeds per (run seed, epoch, stream)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def _raise_if_bad(first_bad: torch.Tensor, epoch: int) -> None:
    step = int(first_bad.item())
    if step:
        raise NonFiniteError(f"non-finite training loss at epoch {epoch}, step {step} (lower optim.lr)")


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
    precision: Precision,
) -> dict[str, float]:
    """One epoch over ``order`` (indices into ``train``); returns mean losses per term."""
    model.train()
    device = train.images.device
    regularised = cfg.data.roi != "none"
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # total, cls, dice3, dice4
    steps = 0
    first_bad = torch.zeros((), dtype=torch.long, device=device)  # 1-based step of the first NaN/inf loss
    order_t = torch.as_tensor(order, dtype=torch.long, device=device)
    for step, start in enumerate(range(0, len(order_t), cfg.optim.batch_size)):
        index = order_t[start : start + cfg.optim.batch_size]
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
        terms = train_step(model, optimizer, images, train.labels.index_select(0, index), rois,
                           loss=cfg.loss, precision=precision)  # fmt: skip
        # Remember the first non-finite step on the device; reading it back every step would
        # stall the GPU, so it is checked every CHECK_EVERY steps and at the end of the epoch.
        first_bad = torch.where((first_bad == 0) & ~torch.isfinite(terms.total), step + 1, first_bad)
        if (step + 1) % CHECK_EVERY == 0:
            _raise_if_bad(first_bad, epoch)
        sums += torch.stack(terms).double()
        steps += 1
    _raise_if_bad(first_bad, epoch)
    means = (sums / max(steps, 1)).tolist()  # one device sync per epoch, not per step
    return dict(zip(LOSS_TERMS, means))


def _bundle_to(bundle: DataBundle, device: torch.device) -> DataBundle:
    def move(split: SplitTensors) -> SplitTensors:
        def to(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return SplitTensors(to(split.images), to(split.labels), to(split.rois), split.ids, to(split.lesion))

    return replace(bundle, train=move(bundle.train), val=move(bundle.val), test=move(bundle.test))


def _best_fields(best: dict[str, Any]) -> dict[str, Any]:
    return {"best_epoch": best["epoch"], **{f"best_{k}": best.get(k) for k in SPLIT_METRICS}}


@dataclass
class BestEpoch:
    """The best validation epoch so far, held in memory: its weights (and, when it was seen in
    this process, its validation/test probabilities). Written as ``best.pt`` with each resumable
    checkpoint and at the end, never more often: a save per improvement would cost more than a
    GPU epoch for VGG-16."""

    row: dict[str, Any] | None = None
    weights: dict[str, torch.Tensor] | None = None
    probs: dict[str, np.ndarray] | None = None
    written: bool = True

    def update(self, model: nn.Module, row: dict[str, Any], probs: dict[str, np.ndarray]) -> None:
        self.row, self.probs, self.written = row, probs, False
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        """The best weights of a resumed run: ``best.pt`` or ``best.prev.pt``, whichever holds
        the best epoch of the restored history (a crash may fall between the two saves)."""
        best = best_epoch_row(history)
        if best is None:
            return
        for path in (run_dir / ckpt.BEST, ckpt.previous_of(run_dir / ckpt.BEST)):
            if path.exists():
                saved = ckpt.load_checkpoint(path, kind="model")
                if saved["epoch"] == best["epoch"]:
                    self.row, self.weights, self.probs = best, saved["model"], None
                    return
        raise UserError(f"{run_dir}: no best.pt holds epoch {best['epoch']}, the best of the resumed history; "
                        "delete the folder to start the run over")  # fmt: skip

    def payload(self, cfg: TrainConfig, bundle: DataBundle) -> dict[str, Any]:
        """``best.pt``: weights and what scoring new images needs, no optimiser state."""
        return {
            "kind": "model",
            "model": self.weights,
            "epoch": self.row["epoch"],
            "metrics": {k: self.row.get(k) for k in SPLIT_METRICS},
            "config": config_to_dict(cfg),
            "normalization": {"mean": list(bundle.mean), "std": list(bundle.std)},
        }

    def unwritten(self, cfg: TrainConfig, bundle: DataBundle) -> dict[str, Any] | None:
        """The ``best.pt`` payload when the best epoch changed since the last one handed out, else
        None. Its weights are this object's own copy, replaced (never changed) by ``update``, so a
        background write may hold them while training goes on."""
        if self.written or self.row is None:
            return None
        self.written = True
        return self.payload(cfg, bundle)


def resume_payload(
    model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, *, epoch: int, history: list[dict[str, Any]],
    cfg: TrainConfig,
) -> dict[str, Any]:
    """``last.pt``: everything a run needs to go on after ``epoch`` (tensors are the live ones;
    a background write copies them first, :meth:`attnmel.checkpoint.BackgroundWriter.host_state`)."""
    return {
        "kind": "resume",
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "history": list(history),
        "config": config_to_dict(cfg),
        "numbers_key": numbers_key(cfg),
    }


def _score_external(model: nn.Module, data: DataBundle, rows: list, eval_kw: dict) -> dict[str, dict[str, Any]]:
    """Score each external set once with the best model: its rows join ``rows``; returns its
    AUC, AP and counts by name."""
    device = data.train.images.device
    scores = {}
    for ext in data.external:
        prob = melanoma_probs(model, ext.images.to(device), what=f"outputs on external set {ext.name}", **eval_kw)
        rows += zip([external_split(ext.name)] * len(ext), ext.ids, ext.labels.tolist(), prob.tolist(), [ext.dataset] * len(ext))
        ap, auc = ap_auc(ext.labels.numpy(), prob)
        scores[ext.name] = {"dataset": ext.dataset, "split": ext.split, "auc": auc, "ap": ap, "images": len(ext),
                            "melanoma": int(ext.labels.sum())}  # fmt: skip
    return scores


def _finalise(
    best: BestEpoch, model: nn.Module, cfg: TrainConfig, data: DataBundle, run_dir: Path, eval_kw: dict
) -> dict[str, Any]:
    """Write the best epoch's per-image probabilities (those that gave its AUC; and of every
    external set, scored now), Table 3 on the split with lesion masks, ``best.pt`` and
    ``final.json``; drop the resumable state. Returns the best epoch's metrics (test scored here
    when no epoch of this process did: ``eval_test: best``, or a resumed run; with the same
    weights and evaluation, so the same numbers) and the external sets' AUC/AP keys."""
    model.load_state_dict(best.weights)
    probs = dict(best.probs or {})
    for split in ("val", "test"):
        if split not in probs:
            what = f"{split} outputs of the best epoch"
            probs[split] = melanoma_probs(model, getattr(data, split).images, what=what, **eval_kw)
    test_ap, test_auc = ap_auc(data.test.labels.cpu().numpy(), probs["test"])
    if (best.row.get("test_auc"), best.row.get("test_ap")) != (test_auc, test_ap):
        best.row = {**best.row, "test_auc": test_auc, "test_ap": test_ap}  # a copy: history keeps its nulls
        best.written = False  # best.pt carries the metrics
    metrics = {k: best.row[k] for k in SPLIT_METRICS}
    rows = []
    for split in ("val", "test"):
        part = getattr(data, split)
        rows += zip([split] * len(part.ids), part.ids, part.labels.tolist(), probs[split].tolist(), [cfg.data.dataset] * len(part.ids))
    external = _score_external(model, data, rows, eval_kw)
    ckpt.write_predictions(run_dir, rows)
    attention: list[dict[str, Any]] = []
    if data.mask_split is not None:
        part = getattr(data, data.mask_split)
        attention = [{**r, "split": data.mask_split} for r in attention_rows(model, part.images, part.lesion, **eval_kw)]
    atomic_write(run_dir / ckpt.ATTENTION, json.dumps(attention, indent=1))
    payload = best.unwritten(cfg, data)
    if payload is not None:
        ckpt.save_checkpoint(payload, run_dir / ckpt.BEST, keep_previous=True)
    final = {"best_epoch": best.row["epoch"], **metrics, "numbers_key": numbers_key(cfg), "mask_split": data.mask_split,
             "external": external}  # fmt: skip
    ckpt.write_final(run_dir, final)  # last: it records the sizes of the files above
    for path in (run_dir / ckpt.LAST, run_dir / ckpt.PREVIOUS, ckpt.previous_of(run_dir / ckpt.BEST)):
        path.unlink(missing_ok=True)  # resumable state is dead weight once the run ended
    scored = {key: e[m] for name, e in external.items() for key, m in zip(external_metrics(name), ("auc", "ap"))}
    return {"best_epoch": best.row["epoch"], **{f"best_{k}": v for k, v in metrics.items()}, **scored}


def fit(config: TrainConfig, run_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Train ``config`` in ``run_dir`` and yield one result dict per epoch.

    Resumes from the directory's last checkpoint (and refuses one that holds a different run);
    a finished run yields nothing. Each result carries the epoch's losses, lr, validation and
    test AP/AUC, timings, the best epoch so far (by validation AUC), ``checkpoint`` (whether a
    complete resumable state joined the directory since the previous result), ``done`` and the
    run's identity.

    The resumable state is due every ``runtime.checkpoint_every`` epochs. With
    ``runtime.background_checkpoint`` (the default) it is copied to host memory after the
    epoch's result was handed out and written while the next epoch trains, so it lands with the
    next result; without, it is written before the epoch's result. The last epoch writes the
    final artefacts before its result either way.
    """
    cfg, run_dir = config, Path(run_dir)
    identity = run_identity(cfg)  # also rejects a ROI on a variant without attention
    device = resolve_device(cfg.runtime.device)
    train_precision, eval_precision = resolve_precision(cfg.runtime, device)
    if ckpt.is_finished(run_dir):
        damaged = ckpt.final_problem(run_dir)
        if damaged is not None:
            raise UserError(f"{run_dir} holds a damaged finished run ({damaged}); delete the folder to start it over")
        if json.loads((run_dir / ckpt.FINAL).read_text()).get("numbers_key") != numbers_key(cfg):
            raise _different_run(run_dir)
        return
    state, warning = ckpt.load_resume_state(run_dir)
    if state is not None and state["numbers_key"] != numbers_key(cfg):
        raise _different_run(run_dir)
    if warning:
        print(f"attnmel: warning: {warning}", flush=True)
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)

    torch.manual_seed(cfg.runtime.seed)  # model initialisation
    model = build_model(cfg.model)
    bundle = load_bundle(cfg.data)
    fresh_dir = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)  # only once the inputs proved usable
    save_config(cfg, run_dir / "config.yaml")
    atomic_write(run_dir / ckpt.DATA_INFO, json.dumps(bundle.info, indent=2, default=str))

    runner = prepare_model(model, device, train_precision, compile=bool(cfg.runtime.compile),
                           cudnn_benchmark=cfg.runtime.cudnn_benchmark)
    optimizer = make_optimizer(model.parameters(), cfg.optim, device)
    scheduler = make_scheduler(optimizer, cfg.optim)
    sampler = EpochSampler(bundle.train.labels.tolist(), oversample=cfg.data.oversample,
                           passes=cfg.data.resolved_passes(), seed=cfg.runtime.seed)  # fmt: skip
    history: list[dict[str, Any]] = []
    best_epoch = BestEpoch()
    if state is not None:
        model.load_state_dict(state["model"])
        load_optimizer_state(optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = list(state["history"])
        best_epoch.restore(run_dir, history)
    if history or (run_dir / ckpt.EPOCHS_LOG).exists():
        ckpt.write_epochs(run_dir, history)  # drops rows of epochs whose checkpoint never landed

    data = _bundle_to(bundle, device)
    eval_size = cfg.runtime.eval_batch_size or eval_batch_size([len(bundle.val.labels), len(bundle.test.labels)])
    eval_kw = dict(crop=cfg.data.crop_size, mean=bundle.mean, std=bundle.std,
                   batch_size=eval_size, precision=eval_precision)  # fmt: skip
    test_every_epoch = cfg.runtime.eval_test == "every"
    generator = torch.Generator(device=device)
    writer = ckpt.BackgroundWriter() if cfg.runtime.background_checkpoint else None
    try:
        for epoch in range(len(history) + 1, cfg.optim.epochs + 1):
            if cfg.runtime.fail_at_epoch == epoch:
                raise RuntimeError(f"injected failure at epoch {epoch} (runtime.fail_at_epoch)")
            torch.manual_seed(_epoch_seed(cfg.runtime.seed, epoch, 0))  # dropout
            generator.manual_seed(_epoch_seed(cfg.runtime.seed, epoch, 1))  # augmentation
            order = sampler.epoch_indices(epoch)
            lr = optimizer.param_groups[0]["lr"]
            started = time.perf_counter()
            losses = train_one_epoch(runner, optimizer, data.train, order, cfg=cfg, mean=bundle.mean, std=bundle.std,
                                     generator=generator, epoch=epoch, precision=train_precision)  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize()
            train_seconds = time.perf_counter() - started
            scheduler.step()
            val_ap, val_auc, val_p = evaluate(runner, data.val.images, data.val.labels, what=f"validation outputs at epoch {epoch}", **eval_kw)
            probs, test_ap, test_auc = {"val": val_p}, None, None  # eval_test "best": test scored once, at the end
            if test_every_epoch:
                test_ap, test_auc, probs["test"] = evaluate(runner, data.test.images, data.test.labels, what=f"test outputs at epoch {epoch}", **eval_kw)
            row: dict[str, Any] = {
                "epoch": epoch, "lr": lr, **losses,
                "val_auc": val_auc, "val_ap": val_ap, "test_auc": test_auc, "test_ap": test_ap,
                "epoch_seconds": time.perf_counter() - started,
                "images_per_second": len(order) / train_seconds if train_seconds > 0 else math.nan,
            }  # fmt: skip
            history.append(row)
            best = best_epoch_row(history)
            is_best, done = best["epoch"] == epoch, epoch == cfg.optim.epochs
            if is_best:
                best_epoch.update(model, row, probs)
            # `landed`: a complete resumable state joined the directory since the last result
            landed = writer.wait() if writer is not None else False  # begun after the last epoch
            deferred, best_fields = None, _best_fields(best)
            ckpt.write_epochs(run_dir, history)  # before final.json, which records its size
            if done:
                best_fields = _finalise(best_epoch, model, cfg, data, run_dir, eval_kw)
                landed = True
            elif epoch % cfg.runtime.checkpoint_every == 0:
                resume = resume_payload(model, optimizer, scheduler, epoch=epoch, history=history, cfg=cfg)
                if writer is None:
                    ckpt.write_checkpoint(run_dir, best_epoch.unwritten(cfg, bundle), resume)
                    landed = True
                else:
                    deferred = (best_epoch.unwritten(cfg, bundle), resume)
            yield {**row, **best_fields, "is_best": is_best, "checkpoint": landed, "done": done, **identity}
            if deferred is not None:
                # after the yield: the caller has snapshotted the directory, and no write runs
                # while it does; the state is copied before the next step changes it
                best_payload, resume = deferred
                writer.submit(ckpt.write_checkpoint, run_dir, best_payload, writer.host_state(resume))
    except NonFiniteError:
        if not history:  # diverged before its first epoch ended (so before any checkpoint write): leave nothing behind
            _remove_run_files(run_dir, remove_dir=fresh_dir)
        raise
    finally:
        if writer is not None:
            writer.close()

