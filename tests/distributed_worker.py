"""Run under torchrun by test_distributed.py: train a few steps with DDP (gloo) and report a checksum of the
parameters from every rank."""

import json
import sys

import torch.distributed as dist

from edgeseg.train.config import TrainConfig
from edgeseg.train.trainer import Trainer

out = sys.argv[1]
config = TrainConfig(model="lednet", data="synthetic:16", out=out, iters=3, batch_size=2, crop=(32, 64),
                     workers=0, warmup=1, val_every=100, checkpoint_every=100, val_max_images=4)
trainer = Trainer(config)
result = trainer.run()
checksum = float(sum(p.double().sum() for p in trainer.model.parameters()))
with open(f"{out}/rank{dist.get_rank()}.json", "w") as f:
    json.dump({"checksum": checksum, "miou": result["miou"], "world": dist.get_world_size()}, f)
dist.destroy_process_group()
