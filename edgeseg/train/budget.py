"""Fit a training schedule to a time budget: time a few steps, then size the poly schedule so the learning
rate decays to ~0 inside the budget, as a real schedule would (stopping a long schedule early would leave
the learning rate high)."""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path

from edgeseg.train.config import TrainConfig
from edgeseg.train.trainer import Trainer

log = logging.getLogger(__name__)
PROBE_STEPS = 8
SKIPPED_STEPS = 2  # data-loader start-up


def seconds_per_iteration(config: TrainConfig) -> float:
    """Steady-state seconds per optimizer step of ``config``, from a short throw-away run."""
    log.info("timing %d training steps of %s to size the schedule", PROBE_STEPS, config.model)
    with tempfile.TemporaryDirectory(prefix="edgeseg-probe-") as tmp:
        probe = dataclasses.replace(config, out=tmp, iters=PROBE_STEPS, log_every=1, val_max_images=1,
                                    val_every=10**9, checkpoint_every=10**9, max_minutes=None)
        Trainer(probe).run()
        times = {r["iter"]: r["time_s"] for r in map(json.loads, (Path(tmp) / "metrics.jsonl").open())
                 if "time_s" in r}
    return (times[PROBE_STEPS] - times[SKIPPED_STEPS]) / (PROBE_STEPS - SKIPPED_STEPS)


def iterations_for_minutes(config: TrainConfig, minutes: float, margin: float = 0.95,
                           minimum: int = 20) -> int:
    """How many steps of ``config`` fit in ``minutes`` (with ``margin`` left for validation)."""
    per_step = seconds_per_iteration(config)
    iters = max(minimum, int(minutes * 60 / per_step * margin))
    log.info("%.2f s per step: %d steps fit in %.1f min", per_step, iters, minutes)
    return iters
