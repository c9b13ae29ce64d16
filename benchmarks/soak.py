"""Soak test of ``edgeseg run``: does the process's memory stay flat over a long video?

Exports a tiny bundle (random weights), writes a synthetic video of moving coloured shapes, then runs
``edgeseg run BUNDLE --source VIDEO --sink OUT.avi --json`` as a subprocess (so decoding, inference and the
overlay video sink are all exercised) and samples its resident memory (VmRSS from ``/proc``, children included)
every ``--interval`` seconds until it exits. After a warm-up (``--warmup-s`` seconds or the first 10% of the
samples, whichever is longer) it reports the RSS min, max, spread and least-squares slope; the verdict is
``flat`` when the spread is at most 5 MiB, else ``growing``.

    nice -n 10 python benchmarks/soak.py                       # 3000 frames of 240x320, lednet at 64x128
    python benchmarks/soak.py --frames 300 --out /tmp/soak.json  # quick check
    python benchmarks/soak.py --bundle path/to/bundle            # soak an existing bundle

Linux only (reads ``/proc``). Writes ``benchmarks/results/soak.json`` with the machine, date, settings, the whole
curve as ``[seconds, rss_mib]`` pairs and the statistics; with matplotlib installed also a plot beside it
(same stem, ``.png``) with the warm-up shaded and a ±5 MiB band around the post-warm-up median (the y axis spans
that band, so the start-up ramp runs off the bottom).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgeseg.cli.args import input_size
from edgeseg.fileio import write_text_atomic
from edgeseg.runtime.environment import collect_environment
from edgeseg.texttable import render_table

log = logging.getLogger("benchmarks.soak")
RESULTS = Path(__file__).resolve().parent / "results"
FLAT_MIB = 5.0
EDGESEG = [sys.executable, "-m", "edgeseg"]


def export_bundle(out: Path, model: str, size: tuple[int, int]) -> Path:
    command = [*EDGESEG, "export", "--model", model, "--input-size", f"{size[0]}x{size[1]}",
               "--simplify", "none", "--out", str(out)]
    log.info("exporting %s at %dx%d: %s", model, *size, " ".join(command))
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return out


def write_video(path: Path, frames: int, size: tuple[int, int], fps: float) -> Path:
    """``frames`` frames of a gradient with three shapes moving across it, MJPG in an .avi."""
    height, width = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPG video to {path}")
    background = np.zeros((height, width, 3), np.uint8)
    background[..., 0] = np.linspace(40, 200, width, dtype=np.uint8)
    background[..., 1] = np.linspace(30, 160, height, dtype=np.uint8)[:, None]
    for i in range(frames):
        image = background.copy()
        phase = 2 * math.pi * i / 150
        cx, cy = int(width * (0.5 + 0.4 * math.sin(phase))), int(height * (0.5 + 0.35 * math.cos(phase)))
        cv2.circle(image, (cx, cy), height // 6, (0, 0, 230), -1)
        x = (i * 3) % width
        cv2.rectangle(image, (x, height // 5), (x + width // 6, height // 5 + height // 4), (0, 210, 0), -1)
        y = (i * 2) % height
        cv2.rectangle(image, (width // 8, y), (width // 8 + width // 5, y + height // 10), (230, 200, 0), -1)
        writer.write(image)
    writer.release()
    return path


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from the parent ids in ``/proc/*/stat``."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(parents.get(tree[-1], []))
    return tree


def rss_mib(pid: int) -> float | None:
    """Summed VmRSS of ``pid`` and its descendants in MiB; None once the process is gone."""
    total_kib, seen = 0, False
    for proc in process_tree(pid):
        try:
            lines = Path(f"/proc/{proc}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
                seen = True
    return total_kib / 1024 if seen else None


def sample(command: list[str], interval: float, logs: Path) -> tuple[list[list[float]], dict, float]:
    """Run ``command``, sampling its RSS every ``interval`` s; returns the curve, its JSON summary, wall seconds."""
    log.info("running %s", " ".join(command))
    curve: list[list[float]] = []
    with open(logs / "stdout.txt", "w+") as out, open(logs / "stderr.txt", "w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(command, stdout=out, stderr=err)
        while proc.poll() is None:
            rss = rss_mib(proc.pid)
            if rss is not None and proc.poll() is None:
                curve.append([round(time.monotonic() - start, 2), round(rss, 2)])
                if len(curve) % 30 == 0:
                    log.info("%4.0f s  %.1f MiB", *curve[-1])
            time.sleep(interval)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if stderr.strip():
        log.info("edgeseg run stderr:\n%s", stderr.rstrip())
    if proc.returncode != 0:
        raise RuntimeError(f"edgeseg run exited {proc.returncode}")
    return curve, json.loads(stdout.strip().splitlines()[-1]), seconds


def video_frames(path: Path) -> int:
    """Frames in the overlay video the sink wrote (0 when it is missing)."""
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    return count


def steady_stats(curve: list[list[float]], warmup_s: float) -> dict:
    """Warm-up cut, then min, max, spread and slope (MiB/min) of the rest, and the verdict."""
    skip = max(sum(1 for t, _ in curve if t < warmup_s), math.ceil(0.1 * len(curve)))
    steady = np.array(curve[skip:], dtype=float).reshape(-1, 2)
    if len(steady) < 2:
        raise RuntimeError(f"only {len(steady)} samples after the warm-up: use more --frames or a shorter --interval")
    t, rss = steady[:, 0], steady[:, 1]
    slope = float(np.polyfit(t / 60, rss, 1)[0])
    spread = float(rss.max() - rss.min())
    return {"samples": len(curve), "warmup_samples": skip, "warmup_end_s": float(t[0]),
            "rss_min_mib": round(float(rss.min()), 2), "rss_max_mib": round(float(rss.max()), 2),
            "rss_median_mib": round(float(np.median(rss)), 2), "spread_mib": round(spread, 2),
            "slope_mib_per_min": round(slope, 3), "peak_rss_mib": round(max(r for _, r in curve), 2),
            "verdict": "flat" if spread <= FLAT_MIB else "growing"}


def plot(curve: list[list[float]], stats: dict, title: str, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no plot")
        return False
    t, rss = zip(*curve)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.axvspan(0, stats["warmup_end_s"], color="0.85", label="warm-up")
    mid = stats["rss_median_mib"]
    ax.axhspan(mid - FLAT_MIB, mid + FLAT_MIB, color="tab:green", alpha=0.15, label=f"±{FLAT_MIB:g} MiB of median")
    ax.plot(t, rss, color="tab:blue", lw=1.2, label="RSS")
    low, high = min(stats["rss_min_mib"], mid - FLAT_MIB), max(stats["rss_max_mib"], mid + FLAT_MIB)
    ax.set(xlabel="seconds", ylabel="RSS (MiB)", title=title, ylim=(low - 2, high + 2))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def report(stats: dict, summary: dict, seconds: float) -> str:
    rows = [("frames processed", f"{summary['frames_out']} of {summary['frames_in']}"),
            ("frames in the sink video", str(summary["sink_frames"])), ("run duration", f"{seconds:.1f} s"),
            ("FPS (edgeseg summary)", f"{summary['fps']:.1f}"),
            ("samples (warm-up)", f"{stats['samples']} ({stats['warmup_samples']}, to {stats['warmup_end_s']:.0f} s)"),
            ("RSS min / max", f"{stats['rss_min_mib']:.1f} / {stats['rss_max_mib']:.1f} MiB"),
            ("spread", f"{stats['spread_mib']:.2f} MiB"), ("slope", f"{stats['slope_mib_per_min']:+.3f} MiB/min"),
            ("verdict", f"{stats['verdict']} (spread <= {FLAT_MIB:g} MiB)")]
    return render_table(("after warm-up", "value"), rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="an existing bundle (default: export a tiny one)")
    parser.add_argument("--model", default="lednet", help="model to export without --bundle (default lednet)")
    parser.add_argument("--input-size", type=input_size, default=(64, 128), help="deploy HxW (default 64x128)")
    parser.add_argument("--frames", type=int, default=3000, help="video length (default 3000)")
    parser.add_argument("--video-size", type=input_size, default=(240, 320), help="video HxW (default 240x320)")
    parser.add_argument("--fps", type=float, default=30.0, help="video frame rate (default 30)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between RSS samples (default 1)")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="warm-up seconds left out (default 10)")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json", help="JSON path (plot beside it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="edgeseg-soak-") as tmp:
        root = Path(tmp)
        bundle = args.bundle or export_bundle(root / "bundle", args.model, args.input_size)
        log.info("writing a %d-frame %dx%d video", args.frames, *args.video_size)
        video = write_video(root / "soak.avi", args.frames, args.video_size, args.fps)
        command = [*EDGESEG, "run", str(bundle), "--source", str(video), "--sink", str(root / "out.avi"), "--json"]
        curve, summary, seconds = sample(command, args.interval, root)
        summary["sink_frames"] = video_frames(root / "out.avi")
    stats = steady_stats(curve, args.warmup_s)
    environment = collect_environment()
    environment["platform"] = platform.platform()
    result = {"benchmark": "soak", "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "run_command": "edgeseg " + " ".join(command[len(EDGESEG):]),
              "settings": {"model": args.model if args.bundle is None else None,
                           "bundle": str(args.bundle or "exported, random weights"),
                           "input_size": list(args.input_size), "frames": args.frames,
                           "video_size": list(args.video_size), "video_fps": args.fps, "interval_s": args.interval,
                           "warmup_s": args.warmup_s, "flat_spread_mib": FLAT_MIB},
              "environment": environment, "run": {"seconds": round(seconds, 2), "summary": summary},
              "stats": stats, "verdict": stats["verdict"], "curve": curve}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    title = f"edgeseg run RSS: {summary.get('model')} {summary.get('backend')}, {args.frames} frames"
    if plot(curve, stats, title, args.out.with_suffix(".png")):
        log.info("plot: %s", args.out.with_suffix(".png"))
    print(report(stats, summary, seconds))
    print(f"\n{environment['cpu']}, {environment['cpu_cores']} cores, {environment['date']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
