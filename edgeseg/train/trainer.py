"""The training loop: optimizer, poly LR with warm-up, AMP, accumulation, validation, checkpoints, resume."""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from edgeseg.data import open_dataset
from edgeseg.data.torch_dataset import TorchSegmentationDataset
from edgeseg.data.transforms import train_transforms
from edgeseg.errors import CheckpointError, EdgesegError
from edgeseg.evaluate import evaluate_model
from edgeseg.fileio import write_text_atomic
from edgeseg.meta import ModelMeta
from edgeseg.metrics import scores_from_confusion
from edgeseg.models import create, load_checkpoint, load_model, model_info, save_checkpoint
from edgeseg.progress import Progress
from edgeseg.train import distributed
from edgeseg.train.config import TrainConfig
from edgeseg.train.losses import SegmentationLoss, build_criterion, pairwise_distillation, pixelwise_distillation
from edgeseg.train.sampler import ResumableSampler
from edgeseg.train.schedule import poly_warmup

log = logging.getLogger(__name__)
LAST, BEST = "last.pt", "best.pt"


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


def _select_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EdgesegError("--device cuda asked for, but torch sees no CUDA device")
    return device


class Trainer:
    """Trains ``config.model`` on ``config.data`` and writes ``last.pt``, ``best.pt``, ``metrics.jsonl`` and
    ``config.json`` into ``config.out``. ``resume=True`` continues bit-for-bit from ``out/last.pt``."""

    def __init__(self, config: TrainConfig, resume: bool = False) -> None:
        config.validate()
        model_info(config.model)  # an unknown model fails before any data is touched
        self.config = config
        self.out = Path(config.out)
        device = _select_device(config.device)
        self.ctx = distributed.init_from_env(device.type)
        if device.type == "cuda" and self.ctx.enabled:
            device = torch.device("cuda", self.ctx.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        self.amp = config.amp and device.type == "cuda"

        self.train_source = open_dataset(config.data, config.train_split)
        self.val_source = open_dataset(config.data, config.val_split)
        self.num_classes = self.train_source.num_classes
        first_image, _ = self.val_source[0]
        self.meta = ModelMeta(classes=self.train_source.classes, palette=self.train_source.palette,
                              input_size=tuple(first_image.shape[:2]))

        torch.manual_seed(config.seed + self.ctx.rank)
        np.random.seed(config.seed + self.ctx.rank)
        random.seed(config.seed + self.ctx.rank)
        self.model = create(config.model, num_classes=self.num_classes, **config.model_kwargs).to(device)
        self.teacher = self._load_teacher() if config.teacher else None
        criterion = build_criterion(config.loss, self.num_classes, config.class_weights).to(device)
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
        from edgeseg.runtime.preprocess import resize_labels

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
        if state is None or ckpt.get("model") != self.config.model:
            raise CheckpointError(f"--resume: {path} is not a training checkpoint of {self.config.model}")
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        self.best_miou = float(state["best_miou"])
        rng = state["rng"][self.ctx.rank] if self.ctx.rank < len(state["rng"]) else state["rng"][0]
        _set_rng_state(rng)
        log.info("resumed from %s at iteration %d", path, self.iteration)

    def _loader(self) -> DataLoader:
        c = self.config
        dataset = TorchSegmentationDataset(self.train_source, train_transforms(c.crop, c.scales, c.jitter),
                                           self.meta.mean, self.meta.std, seed=c.seed,
                                           depth=self.model.in_channels == 4)
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
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def _save(self, name: str, extra: dict) -> None:
        if self.ctx.is_main:
            save_checkpoint(self.out / name, self.model, name=self.config.model, kwargs=self.config.model_kwargs,
                            meta=self.meta, extra={"config": self.config.to_dict(), **extra})

    def _save_last(self) -> None:
        rng = [_rng_state()]
        if self.ctx.enabled:
            gathered = [None] * self.ctx.world_size
            torch.distributed.all_gather_object(gathered, rng[0])
            rng = gathered
        self._save(LAST, {"iteration": self.iteration, "train_state": {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "iteration": self.iteration, "best_miou": self.best_miou,
            "rng": rng}})

    def validate(self) -> dict:
        c = self.config
        cm = evaluate_model(self.model, self.val_source, num_classes=self.num_classes, mean=self.meta.mean,
                            std=self.meta.std, device=self.device, max_images=c.val_max_images,
                            rank=self.ctx.rank, world_size=self.ctx.world_size)
        scores = scores_from_confusion(distributed.all_reduce_array(cm.matrix, self.ctx))
        record = {"iter": self.iteration, "split": c.val_split, **scores}
        self._log(record)
        if scores["miou"] > self.best_miou:
            self.best_miou = scores["miou"]
            self._save(BEST, {"iteration": self.iteration, "metrics": record})
        log.info("iter %d: val mIoU %.4f, pixel acc %.4f (best %.4f)", self.iteration, scores["miou"],
                 scores["pixel_acc"], self.best_miou)
        return record

    # -- the loop -------------------------------------------------------------------------------------------
    def _step(self, batches) -> dict:
        c = self.config
        self.net.train()
        parts_sum: dict[str, float] = {}
        for images, labels in batches:
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                outputs = self.net(images)
                loss, parts = self.loss(outputs, labels)
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
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return parts_sum

    def run(self, stop_at: int | None = None) -> dict:
        """Train to ``config.iters`` (or ``stop_at``, or ``max_minutes``); returns the last validation."""
        c = self.config
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.out / "config.json", json.dumps(c.to_dict(), indent=2) + "\n")
        end = min(c.iters, stop_at) if stop_at is not None else c.iters
        batches = iter(self._loader())
        bar = Progress(c.iters, f"train {c.model}", start=self.iteration, enabled=self.ctx.is_main)
        t0 = time.monotonic()
        last_val: dict = {}
        try:
            while self.iteration < end:
                parts = self._step([next(batches) for _ in range(c.accumulate)])
                self.iteration += 1
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
        finally:
            bar.close()
        distributed.barrier(self.ctx)
        return last_val
