"""Why the CPU recipe trains NCHW: channels-last (NHWC) training step time against NCHW, and whether its weight
gradients match. Each model runs in its own subprocess, so a native crash is recorded, not fatal:

    python benchmarks/channels_last.py            # writes benchmarks/results/channels_last.json

Per model: seconds per training step (batch 4 at 256×512, AdamW, float32, median of ``--steps``) in each layout,
and the worst weight-gradient error of each float32 layout against a float64 NCHW reference on one 2×3×64×128
batch: per parameter ``‖g − g64‖ / max(‖g64‖, 10⁻³ · the largest ‖g64‖)`` (parameters whose true gradient is 0, such
as a bias before BatchNorm, are measured against that floor, not against their own rounding noise).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

from edgeseg.fileio import write_text_atomic
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table

log = logging.getLogger("benchmarks.channels_last")
RESULTS = Path(__file__).resolve().parent / "results" / "channels_last.json"


def _output(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def step_seconds(model_name: str, nhwc: bool, steps: int) -> float:
    import torch

    from edgeseg.models import create

    model = create(model_name, num_classes=8).train()
    x, y = torch.randn(4, 3, 256, 512), torch.randint(0, 8, (4, 256, 512))
    if nhwc:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        t0 = time.perf_counter()
        torch.nn.functional.cross_entropy(_output(model(x)), y).backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def gradient_errors(model_name: str) -> dict:
    import torch

    from edgeseg.models import create

    def grads(net, image):
        torch.manual_seed(1)  # the same dropout masks in every layout
        _output(net(image)).square().mean().backward()
        return {n: p.grad.double() for n, p in net.named_parameters() if p.grad is not None}

    torch.manual_seed(0)
    state = create(model_name, num_classes=8).state_dict()
    x = torch.randn(2, 3, 64, 128)
    nets = {}
    for layout in ("float64", "nchw", "nhwc"):
        net = create(model_name, num_classes=8).train()
        net.load_state_dict(state)
        nets[layout] = net.double() if layout == "float64" else net
    reference = grads(nets["float64"], x.double())
    floor = 1e-3 * max(g.norm() for g in reference.values())
    result = {}
    for layout, image in (("nchw", x), ("nhwc", x.contiguous(memory_format=torch.channels_last))):
        net = nets[layout].to(memory_format=torch.channels_last) if layout == "nhwc" else nets[layout]
        got = grads(net, image)
        errors = {n: float((got[n] - g).norm() / max(g.norm(), floor)) for n, g in reference.items()}
        worst = max(errors, key=errors.get)
        result[layout] = {"worst_error": round(errors[worst], 4), "worst_parameter": worst}
    return result


def measure(model_name: str, steps: int) -> dict:
    """Everything for one model, in this process (the parent runs it in a child)."""
    return {"nchw_s": round(step_seconds(model_name, False, steps), 3),
            "nhwc_s": round(step_seconds(model_name, True, steps), 3), "gradients": gradient_errors(model_name)}


def run_child(model_name: str, steps: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", model_name, "--steps", str(steps)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        log.warning("%s: exited with %d: %s", model_name, done.returncode, last)
        return {"model": model_name, "crashed": True, "returncode": done.returncode, "stderr_last_line": last}
    return {"model": model_name, "crashed": False, **json.loads(done.stdout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bisenetv2", "lednet", "dfanet_b"])
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per layout")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.steps)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    rows = []
    for name in args.models:
        log.info("== %s", name)
        rows.append(run_child(name, args.steps))
    result = {"benchmark": "channels_last", "environment": collect_environment(), "steps": args.steps,
              "batch": "4x3x256x512 for the timing, 2x3x64x128 for the gradients", "rows": rows}
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(render_table(("model", "NCHW s/step", "NHWC s/step", "NCHW grad error", "NHWC grad error", "worst NHWC"),
                       [(r["model"], "crashed", "crashed", "-", "-", r["stderr_last_line"]) if r["crashed"] else
                        (r["model"], f"{r['nchw_s']:.3f}", f"{r['nhwc_s']:.3f}",
                         f"{r['gradients']['nchw']['worst_error']:.3f}",
                         f"{r['gradients']['nhwc']['worst_error']:.3f}", r["gradients"]["nhwc"]["worst_parameter"])
                        for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
