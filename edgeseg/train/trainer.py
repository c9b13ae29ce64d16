"""The training loop: optimizer, poly LR with warm-up, AMP, accumulation, validation, checkpoints, resume.

A run folder holds what :data:`RUN_FILES` names and nothing is written there before the first checkpoint:
``config.json`` comes with it and ``metrics.jsonl`` is appended at each checkpoint, so the log never runs
ahead of what a checkpoint holds. A run that fails before its first checkpoint leaves nothing behind; one
that is interrupted (Ctrl-C, SIGTERM) saves ``last.pt`` at the iteration reached, for ``--resume``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from edgeseg.data.torch_dataset import TorchSegmentationDataset
from edgeseg.data.transforms import train_transforms
from edgeseg.errors import CheckpointError, EdgesegError
from edgeseg.evaluate import evaluate_model, select_device
from edgeseg.fileio import os_error, write_text_atomic
from edgeseg.meta import ModelMeta
from edgeseg.metrics import scores_from_confusion
from edgeseg.models import create, load_checkpoint, load_model, load_state, model_info, save_checkpoint
from edgeseg.models.deploy import is_rgbd
from edgeseg.models.registry import check_model_kwargs
from edgeseg.progress import Progress
from edgeseg.train import distributed
from edgeseg.train.config import TrainConfig
from edgeseg.train.cpu_features import native_bf16
from edgeseg.train.extras import ExtraTerms, main_criterion, open_sources, weak_labels
from edgeseg.train.losses import SegmentationLoss, criterion_for, pairwise_distillation, pixelwise_distillation
from edgeseg.train.sampler import ResumableSampler
from edgeseg.train.schedule import poly_warmup

log = logging.getLogger(__name__)
LAST, BEST, METRICS, CONFIG = "last.pt", "best.pt", "metrics.jsonl", "config.json"
RUN_FILES = (LAST, BEST, METRICS, CONFIG)  # all a run writes into its folder: --overwrite removes only these


def check_run_folder(out: str | Path, *, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse, before any work, a run folder that is a file, one that holds another run (unless ``resume`` or
    ``overwrite``), or ``resume`` without a ``last.pt``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgesegError(f"--out {out} exists and is not a folder; give a folder for the run")
    if resume and overwrite:
        raise EdgesegError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    for name in RUN_FILES:
        if (out / name).is_dir():
            raise EdgesegError(f"{out / name} is a folder, which edgeseg did not write; move it or choose another "
                               f"--out")
    if resume:
        if not (out / LAST).is_file():
            raise CheckpointError(f"--resume: {out / LAST} not found")
        return
    present = [name for name in RUN_FILES if (out / name).exists()]
    if present and not overwrite:
        raise EdgesegError(f"{out} already holds a training run ({', '.join(present)}): continue it with --resume, "
                           f"replace it with --overwrite, or choose another --out")


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32), state["numpy"]["pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Trains ``config.model`` on ``config.data`` and writes ``last.pt``, ``best.pt``, ``metrics.jsonl`` and
    ``config.json`` into ``config.out``. ``resume=True`` continues bit-for-bit from ``out/last.pt``;
    ``overwrite=True`` replaces an earlier run there (its files only, when this run writes its first checkpoint).
    ``config`` itself is not changed: ``self.config`` is its resolved copy."""

    def __init__(self, config: TrainConfig, resume: bool = False, overwrite: bool = False) -> None:
        config = config.resolved()
        model_info(config.model)  # an unknown model (or option) fails before any data is touched
        check_model_kwargs(config.model, config.model_kwargs)
        check_run_folder(config.out, resume=resume, overwrite=overwrite)
        for key in ("teacher",) if resume else ("teacher", "weights"):  # a resumed run has its own weights
            path = getattr(config, key)
            if path is not None and not Path(path).is_file():
                raise CheckpointError(f"{key}: checkpoint {path} not found")
        self.config = config
        self.out = Path(config.out)
        self.overwrite = overwrite
        self._created_out = not self.out.exists()  # a failed run removes the folder only when it made it
        self._pending: list[str] = []  # metrics.jsonl lines not yet written (they go with the next checkpoint)
        self._published = False  # whether this run has written a checkpoint (and config.json)
        # RNG state and model buffers (BatchNorm statistics) at the start of the step in progress: what an
        # interrupted step is rolled back to
        self._step_start: tuple[dict, dict] | None = None
        self._mutating = False  # inside the optimizer update: a checkpoint now would be inconsistent
        device = select_device(config.device)
        self.ctx = distributed.init_from_env(device.type)
        if device.type == "cuda" and self.ctx.enabled:
            device = torch.device("cuda", self.ctx.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        self.amp = config.amp and device.type == "cuda"
        self.cpu_bf16 = config.cpu_bf16 and device.type == "cpu" and native_bf16()
        if self.cpu_bf16:
            log.info("bfloat16 autocast on this CPU (native bfloat16 instructions)")

        self.train_source, self.val_source = open_sources(config)
        self.num_classes = self.train_source.num_classes
        if config.class_weights is not None and len(config.class_weights) != self.num_classes:
            raise EdgesegError(f"class_weights has {len(config.class_weights)} values, the data has "
                               f"{self.num_classes} classes")
        first_image, _ = self.val_source[0]
        self.meta = ModelMeta(classes=self.train_source.classes, palette=self.train_source.palette,
                              input_size=tuple(first_image.shape[:2]))

        torch.manual_seed(config.seed + self.ctx.rank)
        np.random.seed(config.seed + self.ctx.rank)
        random.seed(config.seed + self.ctx.rank)
        self.model = create(config.model, num_classes=self.num_classes, weights=None if resume else config.weights,
                            **config.model_kwargs).to(device)
        self.teacher = self._load_teacher() if config.teacher else None
        criterion = main_criterion(config, criterion_for(config, self.train_source.classes)).to(device)
        self.extras = ExtraTerms(config)
        aux_weight = config.aux_weight if config.aux_weight is not None else getattr(self.model, "aux_weight", 1.0)
        self.loss = SegmentationLoss(criterion, aux_weight)
        self.optimizer = self._optimizer()
        self.scheduler = poly_warmup(self.optimizer, config.iters, config.warmup, config.poly_power)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.iteration = 0
        self.best_miou = -1.0
        if resume:
            self._resume()
        else:
            self._prepare_model()
        self.net = distributed.wrap_model(self.model, self.ctx, device, config.sync_bn)

    # -- set-up -------------------------------------------------------------------------------------------
    def _prepare_model(self, samples: int = 64) -> None:
        """Models that learn something from the labels before training (DUNet's reconstruction matrix) get
        the first ``samples`` training label maps at the deploy size."""
        prepare = getattr(self.model, "prepare_training", None)
        if prepare is None:
            return
        if self.config.weak != "none":
            raise EdgesegError(f"{self.config.model} learns from dense training labels before training; it cannot "
                               f"train from weak={self.config.weak}")
        from edgeseg.data.geometry import resize_labels

        count = min(samples, len(self.train_source))
        labels = np.stack([resize_labels(self.train_source[i][1], self.meta.input_size) for i in range(count)])
        prepare(torch.from_numpy(labels), self.train_source.ignore_index)

    def _load_teacher(self) -> torch.nn.Module:
        teacher, meta, _ = load_model(self.config.teacher)
        if meta.num_classes != self.num_classes:
            raise EdgesegError(f"teacher {self.config.teacher} has {meta.num_classes} classes, "
                               f"the data has {self.num_classes}")
        return teacher.to(self.device).eval().requires_grad_(False)

    def _optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]  # BN and biases
        groups = [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if c.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum)
        return torch.optim.AdamW(groups, lr=c.lr)

    def _resume(self) -> None:
        path = self.out / LAST
        if not path.is_file():
            raise CheckpointError(f"--resume: {path} not found")
        ckpt = load_checkpoint(path)
        state = ckpt.get("extra", {}).get("train_state")
        if not isinstance(state, dict) or ckpt.get("model") != self.config.model:
            raise CheckpointError(f"--resume: {path} is not a training checkpoint of {self.config.model}")
        load_state(self.model, ckpt["state_dict"], source=f"--resume: {path}")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            self.iteration = int(state["iteration"])
            self.best_miou = float(state["best_miou"])
            rng = state["rng"][self.ctx.rank] if self.ctx.rank < len(state["rng"]) else state["rng"][0]
            _set_rng_state(rng)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"--resume: the training state in {path} is damaged or does not fit this "
                                  f"config ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                                  ) from exc
        log.info("resumed from %s at iteration %d", path, self.iteration)

    def _loader(self) -> DataLoader:
        c = self.config
        transform = train_transforms(c.crop, c.scales, c.jitter, c.class_uniform)
        dataset = TorchSegmentationDataset(self.train_source, transform, self.meta.mean, self.meta.std, seed=c.seed,
                                           depth=is_rgbd(self.model), valid=self.extras.needs_valid,
                                           weak=weak_labels(c, self.train_source))
        per_step = c.batch_size * c.accumulate
        sampler = ResumableSampler(len(dataset), c.seed, self.ctx.rank, self.ctx.world_size,
                                   start=self.iteration * per_step)
        # Its own generator: creating the iterator must not draw from the global RNG, or a resumed run's
        # dropout masks would be shifted against an uninterrupted run's.
        generator = torch.Generator().manual_seed(c.seed + self.ctx.rank)
        return DataLoader(dataset, batch_size=c.batch_size, sampler=sampler, num_workers=c.workers,
                          drop_last=True, pin_memory=self.device.type == "cuda",
                          persistent_workers=c.workers > 0, generator=generator)

    # -- checkpoints and logs ------------------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        if self.ctx.is_main:
            self._pending.append(json.dumps(record) + "\n")

    def _save(self, name: str, extra: dict) -> None:
        """Write checkpoint ``name``; the first one of a run also writes ``config.json`` (and, with
        ``overwrite``, removes the earlier run's other files); the log lines so far follow it."""
        if not self.ctx.is_main:
            return
        save_checkpoint(self.out / name, self.model, name=self.config.model, kwargs=self.config.model_kwargs,
                        meta=self.meta, extra={"config": self.config.to_dict(), **extra})
        if not self._published:
            self._published = True
            if self.overwrite:
                for stale in (LAST, BEST, METRICS):
                    if stale != name:
                        try:
                            (self.out / stale).unlink(missing_ok=True)
                        except OSError as exc:
                            raise os_error(exc, self.out / stale, verb="cannot remove") from exc
            write_text_atomic(self.out / CONFIG, json.dumps(self.config.to_dict(), indent=2) + "\n")
        if self._pending:
            try:
                with open(self.out / METRICS, "a", encoding="utf-8") as f:
                    f.write("".join(self._pending))
            except OSError as exc:
                raise os_error(exc, self.out / METRICS) from exc
            self._pending.clear()

    def _save_last(self, rng_state: dict | None = None, gather: bool = True) -> None:
        rng = [rng_state or _rng_state()]
        if self.ctx.enabled and gather:
            gathered = [None] * self.ctx.world_size
            torch.distributed.all_gather_object(gathered, rng[0])
            rng = gathered
        self._save(LAST, {"iteration": self.iteration, "train_state": {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "iteration": self.iteration, "best_miou": self.best_miou,
            "rng": rng}})

    def validate(self) -> dict:
        """Score the val split (``val_max_images`` of it); a new best mIoU writes ``best.pt``."""
        c = self.config
        cm = evaluate_model(self.model, self.val_source, num_classes=self.num_classes, mean=self.meta.mean,
                            std=self.meta.std, device=self.device, max_images=c.val_max_images,
                            rank=self.ctx.rank, world_size=self.ctx.world_size, progress=self.ctx.is_main)
        scores = scores_from_confusion(distributed.all_reduce_array(cm.matrix, self.ctx))
        record = {"iter": self.iteration, "split": c.val_split, **scores}
        self._log(record)
        if scores["miou"] > self.best_miou:
            self.best_miou = scores["miou"]
            self._save(BEST, {"iteration": self.iteration, "metrics": record})
        images = len(self.val_source) if c.val_max_images is None else min(c.val_max_images, len(self.val_source))
        log.info("iter %d: val mIoU %.4f, pixel acc %.4f (best %.4f) on %d images of %s at their own size, torch "
                 "on %s", self.iteration, scores["miou"], scores["pixel_acc"], self.best_miou, images,
                 self.val_source.name, self.device)
        return record

    # -- the loop -------------------------------------------------------------------------------------------
    def _step(self, batches) -> dict:
        c = self.config
        self.net.train()
        parts_sum: dict[str, float] = {}
        self.loss.set_progress(self.iteration, c.iters)
        for images, labels, *valid in batches:
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            valid = valid[0].to(self.device, non_blocking=True) if valid else None
            with torch.autocast(self.device.type, dtype=torch.bfloat16 if self.cpu_bf16 else torch.float16,
                                enabled=self.amp or self.cpu_bf16):
                outputs = self.net(images)
                loss, parts = self.loss(outputs, labels)
                extra, extra_parts = self.extras(outputs, images, labels, valid, self.iteration)
                loss = loss + extra
                parts.update(extra_parts)
                if self.teacher is not None:
                    with torch.no_grad():
                        teacher_logits = self.teacher(images)
                    kd = pixelwise_distillation(outputs[0], teacher_logits, c.kd_temperature)
                    loss = loss + c.kd_weight * kd
                    parts["loss_kd"] = kd.detach()
                    if c.kd_pairwise_weight:
                        pair = pairwise_distillation(outputs[0], teacher_logits)
                        loss = loss + c.kd_pairwise_weight * pair
                        parts["loss_pair"] = pair.detach()
            self.scaler.scale(loss / c.accumulate).backward()
            parts_sum["loss"] = parts_sum.get("loss", 0.0) + float(loss.detach()) / c.accumulate
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v) / c.accumulate
        if not np.isfinite(parts_sum["loss"]):
            raise EdgesegError(f"loss became {parts_sum['loss']} at iteration {self.iteration}; lower --lr")
        self._mutating = True
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return parts_sum

    def run(self, stop_at: int | None = None) -> dict:
        """Train to ``config.iters`` (or ``stop_at``, or ``max_minutes``); returns the last validation."""
        c = self.config
        end = min(c.iters, stop_at) if stop_at is not None else c.iters
        start = self.iteration
        bar = Progress(c.iters, f"train {c.model}", start=self.iteration, enabled=self.ctx.is_main)
        t0 = time.monotonic()
        last_val: dict = {}
        interrupted = False
        try:
            batches = iter(self._loader())
            while self.iteration < end:
                self._step_start = (_rng_state(), {k: v.detach().clone() for k, v in self.model.named_buffers()})
                parts = self._step([next(batches) for _ in range(c.accumulate)])
                self.iteration += 1
                self._step_start, self._mutating = None, False
                lr = self.optimizer.param_groups[0]["lr"]
                bar.update(loss=parts["loss"], lr=lr)
                if self.iteration % c.log_every == 0 or self.iteration == end:
                    self._log({"iter": self.iteration, "lr": lr, "time_s": round(time.monotonic() - t0, 2),
                               **{k: round(v, 5) for k, v in parts.items()}})
                timed_out = c.max_minutes is not None and time.monotonic() - t0 >= c.max_minutes * 60
                finished = self.iteration >= end or timed_out
                if self.iteration % c.val_every == 0 or finished:
                    last_val = self.validate()
                if self.iteration % c.checkpoint_every == 0 or finished:
                    self._save_last()
                if timed_out:
                    log.info("time budget of %.1f min reached at iteration %d", c.max_minutes, self.iteration)
                    break
        except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (edgeseg.cli.main raises it as a KeyboardInterrupt)
            interrupted = True
            raise
        except BaseException:
            self._discard()
            raise
        finally:
            bar.close()
            if interrupted:
                self._save_interrupted(start)
                self._discard()
        distributed.barrier(self.ctx)
        return last_val

    def _save_interrupted(self, start: int) -> None:
        """Keep the progress of an interrupted run: ``last.pt`` at the iteration reached (no collectives: the
        other ranks are being interrupted too)."""
        if not self.ctx.is_main or self.iteration == start:
            return
        path = self.out / LAST
        if self._mutating:
            log.warning("interrupted while updating the weights: %s not updated", path)
            return
        rng = None
        if self._step_start is not None:  # interrupted in a forward or backward pass: undo what it changed
            rng, buffers = self._step_start
            with torch.no_grad():
                for key, buffer in self.model.named_buffers():
                    buffer.copy_(buffers[key])
        try:
            self._save_last(rng_state=rng, gather=False)
        except EdgesegError as exc:
            log.warning("interrupted, and %s could not be saved: %s", path, exc)
            return
        log.warning("interrupted: saved %s at iteration %d; continue with --resume", path, self.iteration)

    def _discard(self) -> None:
        """A run that stops before its first checkpoint leaves nothing: its log lines are dropped and the run
        folder is removed when this run made it (and it is empty)."""
        self._pending.clear()
        if self._published or not self.ctx.is_main or not self._created_out:
            return
        with contextlib.suppress(OSError):
            self.out.rmdir()
