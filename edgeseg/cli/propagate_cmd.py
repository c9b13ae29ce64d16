"""``edgeseg propagate``: more training pairs from video around labelled frames (Zhu et al., CVPR 2019).

    edgeseg propagate --data folder:imgs,labels --frames recorded/ --steps 3 --out propagated/
    edgeseg propagate --data synthetic:20 --frames synthetic:dolly --steps 3 --out propagated/

Each labelled frame's label is carried ±1..K frames along its clip with optical flow (see
:mod:`edgeseg.video.propagate`; the frame naming is in :mod:`edgeseg.video.frames`). ``--mode joint`` pairs each
propagated label with the frame synthesised by the same warp (aligned by construction), ``--mode label`` with
the real frame. The result is a ``folder:`` dataset (:mod:`edgeseg.video.output`); train on it beside the
original data, with ``loss=relax`` for its boundaries. With ``--frames synthetic:pan|dolly`` the clips are
synthetic sequences with exact labels: the stats then include accuracy against the truth.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from edgeseg.cli.args import input_size
from edgeseg.cli.common import examples
from edgeseg.errors import EdgesegError

log = logging.getLogger("edgeseg.propagate")
SYNTHETIC_CLIPS = 20  # clips for --data synthetic without a count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="the labelled frames: a data spec (folder:IMAGES,LABELS, "
                                                      "cityscapes:/path, ..., or synthetic[:N] with synthetic frames)")
    parser.add_argument("--split", default="train", help="split of --data (default: train)")
    parser.add_argument("--frames", required=True,
                        help="folder of the video frames around the labelled ones (named <name>_<frame number>: see "
                             "'edgeseg propagate --help'), or synthetic:pan / synthetic:dolly")
    parser.add_argument("--steps", type=_steps, default=3, help="frames to propagate each way (default: 3)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the folder: dataset to")
    parser.add_argument("--mode", choices=("joint", "label"), default="joint",
                        help="pair labels with the synthesised frame (joint, default) or the real one (label)")
    parser.add_argument("--flow", choices=("dis", "exact"), default="dis",
                        help="motion estimator: OpenCV DIS optical flow (default) or, for synthetic frames, the exact "
                             "motion")
    parser.add_argument("--no-check", action="store_true",
                        help="keep pixels where forward and backward flow disagree (by default they become 255)")
    parser.add_argument("--with-centre", action="store_true",
                        help="also write each labelled frame (offset +00), so the folder trains on its own")
    parser.add_argument("--limit", type=_steps, help="use at most this many labelled frames")
    parser.add_argument("--size", type=input_size, help="frame size of synthetic sequences (default 256x512)")
    parser.add_argument("--json", action="store_true", help="print the stats as JSON")
    examples(parser,
             "edgeseg propagate --data synthetic --frames synthetic:dolly --steps 3 --out propagated",
             "edgeseg propagate --data folder:keys/images,keys/labels --frames clips/ --steps 2 --out prop --json",
             "edgeseg propagate --data cityscapes:/data/cs --frames /data/cs/leftImg8bit_sequence --mode label "
             "--out cs-prop")
    parser.epilog = f"{_layout_help()}\n\n{parser.epilog}"


def _layout_help() -> str:
    from edgeseg.video import frames

    return "frame naming (--frames DIR):\n" + frames.__doc__.split("\n", 2)[2].rstrip()


def _steps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _synthetic_motion(frames: str) -> str | None:
    kind, sep, motion = frames.partition(":")
    if kind != "synthetic" or not sep:
        return None
    from edgeseg.video.sequences import MOTIONS

    if motion not in MOTIONS:
        raise EdgesegError(f"--frames synthetic:{motion}: choose synthetic:{' or synthetic:'.join(MOTIONS)}")
    return motion


def _synthetic_count(args, spec) -> int:
    """How many synthetic clips to make (checked before any work)."""
    from edgeseg.video.sequences import MAX_STEPS

    if args.split not in ("train", "val"):
        raise EdgesegError(f"synthetic scenes have the splits train and val, not {args.split!r}")
    if args.steps > MAX_STEPS:
        raise EdgesegError(f"synthetic sequences have {MAX_STEPS} frames each side; --steps {args.steps} is too many")
    count = spec.count or SYNTHETIC_CLIPS
    if not spec.count:
        log.info("synthetic: %d clips (synthetic:N for another number)", count)
    return min(count, args.limit or count)


def _synthetic_clips(args, count: int, motion: str):
    """(sample id, clip, label) for the synthetic sequences of the split's seeds."""
    from edgeseg.data.synthetic import DEFAULT_SIZE, TRAIN_SEED0, VAL_SEED0
    from edgeseg.video.sequences import render_sequence

    seed0 = TRAIN_SEED0 if args.split == "train" else VAL_SEED0
    size = args.size or DEFAULT_SIZE
    for i in range(count):
        clip = render_sequence(seed0 + i, size, 2 * args.steps + 1, motion)
        yield clip.name, clip, clip.true_label(0)


def _folder_clips(source, count: int, index, skipped: dict):
    """(sample id, clip, label) for the labelled frames that have a frame number and a neighbour."""
    from edgeseg.video.frames import FolderClip, frame_number

    for i in range(count):
        stem = source.sample_id(i)
        if frame_number(stem) is None:
            skipped["no frame number"] = skipped.get("no frame number", 0) + 1
            continue
        image, label = source[i]
        clip = FolderClip(index, stem, image)
        if not (clip.has(1) or clip.has(-1)):
            skipped["no neighbouring frames"] = skipped.get("no neighbouring frames", 0) + 1
            continue
        yield stem, clip, label


def main(args: argparse.Namespace) -> int:
    from edgeseg.data import open_dataset, parse_spec
    from edgeseg.fileio import check_replaceable, refuse_input_overlap, staged_dir
    from edgeseg.progress import Progress
    from edgeseg.video.flow import ConsistencyCheck, motion_estimator
    from edgeseg.video.frames import FrameIndex
    from edgeseg.video.output import PROPAGATED_KIND, FolderWriter, StepStats
    from edgeseg.video.propagate import propagate_clip

    spec = parse_spec(args.data)
    motion = _synthetic_motion(args.frames)
    if (spec.kind == "synthetic") != (motion is not None):
        raise EdgesegError("synthetic frames (--frames synthetic:pan or synthetic:dolly) go with --data synthetic[:N], "
                           "and --data synthetic has no recorded frames: give both or neither")
    if args.size is not None and motion is None:
        raise EdgesegError("--size sets the size of synthetic sequences; recorded frames keep their own")
    if args.flow == "exact" and motion is None:
        raise EdgesegError("--flow exact needs synthetic frames (their motion is known); use --flow dis")
    frames_dir = None if motion else Path(args.frames).expanduser()
    refuse_input_overlap(args.out, [p for p in (frames_dir, *spec.paths, spec.depth) if p is not None])
    check_replaceable(args.out, PROPAGATED_KIND)
    skipped: dict[str, int] = {}
    if motion is None:
        source = open_dataset(spec, args.split)
        classes, palette = source.classes, source.palette
        count = min(len(source), args.limit or len(source))
        clips = _folder_clips(source, count, FrameIndex(frames_dir), skipped)
    else:
        from edgeseg.data.synthetic import CLASSES, PALETTE

        classes, palette = list(CLASSES), list(PALETTE)
        count = _synthetic_count(args, spec)
        clips = _synthetic_clips(args, count, motion)
    estimator = motion_estimator(args.flow)
    check = None if args.no_check else ConsistencyCheck()
    stats = StepStats(len(classes))
    method = {"paper": "Zhu et al., Improving Semantic Segmentation via Video Propagation and Label Relaxation, "
                       "CVPR 2019 (arXiv 1812.01593)",
              "mode": args.mode, "steps": args.steps, "flow": estimator.params(),
              "consistency_check": None if check is None else {"alpha": check.alpha, "beta": check.beta},
              "data": str(spec), "split": args.split, "frames": args.frames if motion else str(frames_dir),
              "with_centre": args.with_centre}
    missing = 0
    bar = Progress(count, "propagate")  # labelled frames propagated (skipped ones are not counted)
    try:
        with staged_dir(args.out, PROPAGATED_KIND) as tmp:
            writer = FolderWriter(tmp, classes, palette)
            for sample, clip, label in clips:
                pairs, lost = propagate_clip(clip, label, args.steps, estimator, mode=args.mode, check=check)
                missing += lost
                if args.with_centre:
                    writer.add(sample, 0, clip.frame(0), label, _frame_name(clip, 0))
                for pair in pairs:
                    writer.add(sample, pair.offset, pair.image, pair.label, _frame_name(clip, pair.offset))
                    stats.add(pair, clip.frame(pair.offset), clip.true_label(pair.offset))
                bar.update()
            if not any(e["offset"] != 0 for e in writer.entries):
                raise EdgesegError(f"nothing to propagate: no labelled frame of {spec} has a neighbouring frame in "
                                   f"{args.frames} ({_skipped_text(skipped) or 'no labelled frames'})")
            if missing:
                skipped["steps without a frame"] = missing
            rows = stats.rows()
            writer.finish(method, rows, skipped)
            written = len(writer.entries)
    finally:
        bar.close()
    _report(args, rows, written, skipped)
    return 0


def _frame_name(clip, offset: int) -> str:
    """The frame a pair comes from: its file, relative to --frames, or the synthetic clip and offset."""
    from edgeseg.video.frames import FolderClip

    if isinstance(clip, FolderClip) and offset:
        return str(clip.path(offset).relative_to(clip.index.folder))
    return f"{clip.name}{offset:+03d}"


def _skipped_text(skipped: dict) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in skipped.items())


def _report(args, rows: list[dict], written: int, skipped: dict) -> None:
    from edgeseg.texttable import render_table

    if args.json:
        print(json.dumps({"out": str(args.out), "pairs": written, "steps": rows, "skipped": skipped}, indent=2))
        return
    truth = any("pixel_acc" in r for r in rows)
    header = ["offset", "pairs", "labelled", "dropped", "PSNR dB"] + (["pixel acc", "mIoU", "coverage"] if truth
                                                                      else [])

    def fmt(value):
        return "-" if value is None else f"{value:.4f}" if isinstance(value, float) and value <= 1 else str(value)

    table = [[f"{r['offset']:+d}", r["pairs"], fmt(r["labelled"]), fmt(r["dropped_by_check"]),
              "-" if r["psnr_db"] is None else f"{r['psnr_db']:.1f}"]
             + ([fmt(r.get("pixel_acc")), fmt(r.get("miou")), fmt(r.get("coverage"))] if truth else [])
             for r in rows]
    print(render_table(header, table, right=range(1, len(header))))
    print(f"{written} pairs written to {args.out} (train on folder:{args.out}/images,{args.out}/labels)")
    if skipped:
        print(f"skipped: {_skipped_text(skipped)}")
