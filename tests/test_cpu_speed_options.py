"""The CPU training option the synthetic recipe turns on: bfloat16 autocast, only where the CPU has native
bfloat16."""

import pytest
import torch

from edgeseg.train import trainer as trainer_module
from edgeseg.train.config import TrainConfig
from edgeseg.train.cpu_features import cpu_flags, native_bf16
from edgeseg.train.trainer import Trainer

X86 = ("processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse avx2 {extra}\nbugs\t\t: spectre\n\n"
       "processor\t: 1\n")


@pytest.mark.parametrize("extra, native", [("avx512f avx512_bf16", True), ("amx_bf16 amx_tile", True),
                                           ("avx512f avx512bw", False), ("", False)])
def test_native_bf16_is_read_from_the_cpu_flags(extra, native):
    assert native_bf16(X86.format(extra=extra)) is native


def test_no_flags_line_means_no_features():
    assert cpu_flags("Features\t: fp asimd bf16\n") == frozenset()  # aarch64: not a flag edgeseg acts on


def _config(out, **kw):
    base = dict(model="lednet", data="synthetic:8", out=str(out), iters=2, batch_size=2, crop=(32, 64), workers=0,
                warmup=0, val_every=100, checkpoint_every=100, val_max_images=1, log_every=1, device="cpu")
    return TrainConfig(**{**base, **kw})


def _conv_output_dtypes(trainer):
    seen = set()
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.add(out.dtype))
             for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)]
    trainer._step([next(iter(trainer._loader()))])
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_only_where_the_cpu_has_it(tmp_path, monkeypatch, native):
    monkeypatch.setattr(trainer_module, "native_bf16", lambda: native)
    trainer = Trainer(_config(tmp_path, cpu_bf16=True))
    assert _conv_output_dtypes(trainer) == ({torch.bfloat16} if native else {torch.float32})


def test_bf16_is_off_unless_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "native_bf16", lambda: True)
    assert _conv_output_dtypes(Trainer(_config(tmp_path))) == {torch.float32}


def test_the_synthetic_recipe_is_valid_and_weights_the_thin_classes_most():
    from edgeseg.data.synthetic import CLASSES
    from edgeseg.train.config import SYNTHETIC_CPU_RECIPE

    config = TrainConfig(**SYNTHETIC_CPU_RECIPE).resolved()
    weights = dict(zip(CLASSES, config.class_weights, strict=True))
    assert min(weights["person"], weights["pole"]) > max(w for c, w in weights.items() if c not in ("person", "pole"))
    assert config.cpu_bf16
