"""Scoring images with a trained run: ``attnmel predict`` and the maps behind Fig. 3.

A run's ``best.pt`` is loaded as data (``weights_only``) and rebuilt into its network; any
image then goes through exactly the evaluation pipeline of training (the 0.8·min(H, W)
centre square resized to ``data.image_size``, its centre ``data.crop_size`` crop, the run's
stored normalisation), so a run's own test images score as in its ``predictions.csv``.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from attnmel.atomic import atomic_write
from attnmel.checkpoint import BEST, FINAL, PREDICTIONS, final_checkpoint, load_checkpoint
from attnmel.config import TrainConfig, config_from_dict
from attnmel.data.augment import centre_crop
from attnmel.data.layout import IMAGE_EXTENSIONS, SUPERPIXELS_SUFFIX, find_mask
from attnmel.data.preprocess import preprocess_image
from attnmel.errors import UserError
from attnmel.evaluation import EVAL_BATCH_CAP, predict_batches
from attnmel.attention_overlap import renormalised_maps
from attnmel.overlay import PANEL, overlay_image, read_mask
from attnmel.model_names import paper_name
from attnmel.models import build_model
from attnmel.runtime import Precision, prepare_model, resolve_device, resolve_precision

__all__ = [
    "LoadedModel",
    "load_model",
    "resolve_checkpoint",
    "collect_images",
    "predict_files",
]



@dataclass
class LoadedModel:
    """A trained network ready to score images, with what its evaluation needs."""

    model: nn.Module
    config: TrainConfig
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str  # the paper's name, e.g. "AttnMel-CNN-Lesion"
    checkpoint: Path
    device: torch.device
    precision: Precision

    def preprocess(self, path: str | Path) -> np.ndarray:
        """(3, S, S) uint8 of one image file, as the run's cache holds it (``UserError`` if unreadable)."""
        return preprocess_image(Path(path), self.config.data.image_size, self.config.data.crop_fraction)

    def score(
        self, images_u8: torch.Tensor, *, batch_size: int | None = None, with_maps: bool = False,
        map_size: int | None = None,
    ) -> Iterator[tuple[slice, np.ndarray, dict[str, np.ndarray]]]:  # fmt: skip
        """Batches of (rows, melanoma probabilities (B,), maps) for (N, 3, S, S) uint8 images.

        Maps are {"pool3", "pool4"} or {"cam"} (or empty), each (B, m, m) in [0, 1]: min-max
        re-normalised and bilinearly upsampled to ``map_size`` (default: the crop), as the
        paper shows them.
        """
        crop = self.config.data.crop_size
        size = map_size or crop
        batches = predict_batches(
            self.model, images_u8.to(self.device), crop=crop, mean=self.mean, std=self.std,
            batch_size=batch_size or self.config.runtime.eval_batch_size or EVAL_BATCH_CAP, precision=self.precision,
            with_maps=with_maps,
        )  # fmt: skip
        for rows, probs, maps in batches:
            shown = {k: renormalised_maps(v, (size, size))[:, 0].cpu().numpy() for k, v in maps.items()}
            yield rows, probs.double().cpu().numpy(), shown


def load_model(checkpoint: str | Path, *, device: str = "auto") -> LoadedModel:
    """Rebuild the network of a run's ``best.pt`` on ``device``; a file that is not such a
    checkpoint (or would need code to load) is a ``UserError`` naming it."""
    path = Path(checkpoint)
    payload = load_checkpoint(path, kind="model")
    try:
        cfg = config_from_dict(payload["config"])
        mean = tuple(float(v) for v in payload["normalization"]["mean"])
        std = tuple(float(v) for v in payload["normalization"]["std"])
        state = payload["model"]
    except UserError as exc:
        raise UserError(f"{path}: its stored config is not valid here: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is not a readable AttnMel checkpoint: missing or bad field {exc}") from None
    if len(mean) != 3 or len(std) != 3:
        raise UserError(f"{path}: normalisation must have 3 channels, got mean {mean} and std {std}")
    model = build_model(cfg.model, weights="none")  # the weights come from the checkpoint
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise UserError(f"{path}: its weights do not fit the {cfg.model.variant} network it names ({first})") from None
    torch_device = resolve_device(device)
    _, precision = resolve_precision(cfg.runtime, torch_device)
    model = prepare_model(model, torch_device, precision, compile=False)
    name = paper_name(cfg.model.variant, cfg.data.roi)
    return LoadedModel(model.eval(), cfg, mean, std, name, path, torch_device, precision)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- which checkpoint


def _best_of_trial(trial_dir: Path) -> Path:
    final = final_checkpoint(trial_dir)
    if final is None or not (final / BEST).is_file():
        raise UserError(f"trial {trial_dir} has no finished checkpoint (checkpoint_*/{FINAL} with {BEST}); "
                        "is it still running or did it fail?")  # fmt: skip
    return final / BEST


def resolve_checkpoint(ref: str | Path) -> Path:
    """The ``best.pt`` that ``ref`` names: a checkpoint file, a run directory, or a sweep trial's
    directory (its final checkpoint). A trial id is looked up by the command line, which knows
    where sweeps keep their trials."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / BEST).is_file():
            return path / BEST
        if any(path.glob("checkpoint_*")) or (path / "params.json").exists():
            return _best_of_trial(path)
        raise UserError(f"{path} holds no {BEST}: give a run directory, a sweep trial's directory or a checkpoint file")
    raise UserError(f"run or checkpoint {path} does not exist")


# --------------------------------------------------------------------------- which images


def collect_images(inputs: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """The files to score, in order, and notes on what folders held besides images.

    A file is taken as given (whatever its name; decoding decides). A folder gives its
    .jpg/.jpeg/.png files, sorted; ISIC superpixel maps (``*_superpixels.png``), hidden files
    and files of other kinds (e.g. the official metadata CSV) are left out with one note.
    A path that does not exist, or an empty selection, is a ``UserError``.
    """
    files: list[Path] = []
    notes: list[str] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_file():
            files.append(path)
            continue
        if not path.is_dir():
            raise UserError(f"image or folder {path} does not exist")
        entries = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        superpixels = [p for p in entries if p.name.endswith(SUPERPIXELS_SUFFIX)]
        others = [p for p in entries if p.suffix.lower() not in IMAGE_EXTENSIONS]
        files += [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS and p not in superpixels]
        left = []
        if superpixels:
            left.append(f"{len(superpixels)} ISIC superpixel map(s) (*{SUPERPIXELS_SUFFIX})")
        if others:
            names = ", ".join(p.name for p in others[:5]) + (", …" if len(others) > 5 else "")
            left.append(f"{len(others)} file(s) that are not {'/'.join(IMAGE_EXTENSIONS)} images ({names})")
        if left:
            notes.append(f"{path}: left out {' and '.join(left)}")
    unique = list(dict.fromkeys(files))  # a file named twice (also via its folder) is scored once
    if not unique:
        raise UserError(f"no {'/'.join(IMAGE_EXTENSIONS)} images in {', '.join(str(i) for i in inputs)}")
    return unique, notes


def _decode(model: LoadedModel, path: Path) -> tuple[np.ndarray | None, str | None]:
    try:
        return model.preprocess(path), None
    except UserError as exc:
        return None, str(exc)
    except Exception as exc:  # e.g. Pillow's DecompressionBombError: one bad file must not stop the rest
        return None, f"{path}: unreadable image ({type(exc).__name__}: {exc})"


def _chunks(pool: ThreadPoolExecutor, model: LoadedModel, files: list[Path], size: int):
    """(files, decoded) per chunk, the next chunk decoding while the caller scores this one."""
    parts = [files[i : i + size] for i in range(0, len(files), size)]

    def submit(part: list[Path]) -> list[Future]:
        return [pool.submit(_decode, model, f) for f in part]

    pending = submit(parts[0]) if parts else []
    for k, part in enumerate(parts):
        current, pending = pending, submit(parts[k + 1]) if k + 1 < len(parts) else []
        yield part, [f.result() for f in current]


# --------------------------------------------------------------------------- the command's work


@dataclass
class PredictReport:
    """What ``predict_files`` did: the rows written, one line per skipped file and per other
    problem (a mask that does not fit its image), the overlays written."""

    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    overlays: list[Path] = field(default_factory=list)


def _overlay_names(files: list[Path]) -> dict[Path, str]:
    """``<stem>.png`` per file; repeated stems (same name in two folders) get ``-2``, ``-3``…"""
    seen: dict[str, int] = {}
    names = {}
    for f in files:
        seen[f.stem] = seen.get(f.stem, 0) + 1
        names[f] = f"{f.stem}.png" if seen[f.stem] == 1 else f"{f.stem}-{seen[f.stem]}.png"
    return names


def predict_files(
    model: LoadedModel,
    files: list[Path],
    out: Path,
    *,
    overlay: bool = False,
    masks: Path | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    warn: Callable[[str], None] | None = None,
    labels: Mapping[Path, int] | None = None,
) -> PredictReport:
    """Score ``files`` in batches; write ``out/predictions.csv`` (image, prob, model, checkpoint,
    and with ``labels`` each image's label) and with ``overlay`` one ``out/overlays/<stem>.png``
    per image. An unreadable file is skipped with one line passed to ``warn`` (default:
    stderr), the rest go on."""
    from tqdm import tqdm

    report = PredictReport()
    batch = batch_size or model.config.runtime.eval_batch_size or EVAL_BATCH_CAP
    out.mkdir(parents=True, exist_ok=True)
    if overlay:
        (out / "overlays").mkdir(exist_ok=True)
    names = _overlay_names(files)
    bar = tqdm(total=len(files), unit="img", desc="predict", file=sys.stderr,
               disable=True if not progress or len(files) <= batch else None)  # fmt: skip

    def say(line: str) -> None:
        (warn or (lambda text: tqdm.write(f"attnmel: warning: {text}", file=sys.stderr)))(line)

    checkpoint = str(model.checkpoint.resolve())
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for part, decoded in _chunks(pool, model, files, batch):
            good = [(f, a) for f, (a, _) in zip(part, decoded) if a is not None]
            for f, (_, reason) in zip(part, decoded):
                if reason is not None:
                    report.skipped.append(f"skipped {reason}")
                    say(report.skipped[-1])
            if good:
                images = torch.from_numpy(np.stack([a for _, a in good]))
                for rows, probs, maps in model.score(images, batch_size=batch, with_maps=overlay, map_size=PANEL):
                    for (f, arr), prob, k in zip(good[rows], probs, range(rows.start, rows.stop)):
                        report.rows.append({"image": str(f), "prob": float(prob), "model": model.name,
                                            "checkpoint": checkpoint, "label": labels.get(f) if labels else None})  # fmt: skip
                        if overlay:
                            crop = centre_crop(arr, model.config.data.crop_size)  # numpy slices like tensors
                            drawn = {n: m[k - rows.start] for n, m in maps.items()}
                            picture = overlay_image(f, model.config.data, model.name, crop, drawn, float(prob),
                                                    _mask_for(masks, f, report, say))  # fmt: skip
                            target = out / "overlays" / names[f]
                            _save_png(picture, target)
                            report.overlays.append(target)
            bar.update(len(part))
    bar.close()
    _write_csv(out / PREDICTIONS, report.rows, with_labels=labels is not None)
    return report


def _mask_for(
    masks: Path | None, image: Path, report: PredictReport, say: Callable[[str], None]
) -> np.ndarray | None:
    found = find_mask(masks, image) if masks is not None else None
    if found is None:
        return None
    try:
        with Image.open(image) as im:
            size = im.size
        return read_mask(found, size)
    except UserError as exc:
        report.warnings.append(f"{exc}; overlay drawn without the lesion outline")
        say(report.warnings[-1])
        return None


def _save_png(picture: Image.Image, target: Path) -> None:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    atomic_write(target, buffer.getvalue())


def _write_csv(path: Path, rows: list[dict], *, with_labels: bool = False) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["image", "prob", "model", "checkpoint", *(["label"] if with_labels else [])])
    writer.writerows([r["image"], repr(r["prob"]), r["model"], r["checkpoint"], *([r["label"]] if with_labels else [])]
                     for r in rows)  # exact floats  # fmt: skip
    atomic_write(path, text.getvalue())
