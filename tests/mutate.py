"""Break each promise once and watch a test fail: the mutation check behind ``tests/mutations.md``.

Each mutation replaces one exact snippet of the source (it must occur exactly once), runs the tests that guard
the promise, and restores the file. A mutation that no test catches is a test that cannot fail.

    python tests/mutate.py              # every mutation
    python tests/mutate.py -k sink      # those whose id contains "sink"
    python tests/mutate.py --list       # ids and the tests each runs
    python tests/mutate.py --markdown   # the table of tests/mutations.md
    python tests/mutate.py --shard 1/2  # every other mutation (run 2/2 in a second checkout)

Not collected by pytest (no ``test_`` prefix); it runs pytest itself, one mutation at a time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTATIONS_FILE = Path(__file__).with_name("mutations.json")


def load_mutations() -> list[dict]:
    return json.loads(MUTATIONS_FILE.read_text(encoding="utf-8"))


def apply(mutation: dict) -> str:
    """Apply ``mutation``; returns the original text of its file (to restore)."""
    path = ROOT / mutation["file"]
    original = path.read_text(encoding="utf-8")
    count = original.count(mutation["old"])
    if count != 1:
        raise SystemExit(f"{mutation['id']}: the snippet occurs {count} times in {mutation['file']}, expected once")
    path.write_text(original.replace(mutation["old"], mutation["new"]), encoding="utf-8")
    return original


def check(mutation: dict) -> tuple[bool, float, str]:
    """(caught, seconds, last line of pytest's output) for one mutation."""
    original = apply(mutation)
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-n", "0",
                               *mutation["tests"]], cwd=ROOT, capture_output=True, text=True, timeout=900)
    finally:
        (ROOT / mutation["file"]).write_text(original, encoding="utf-8")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode == 1, time.perf_counter() - t0, lines[-1] if lines else done.stderr.strip()[-200:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only mutations whose id contains this")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--markdown", action="store_true", help="print the mutations as a Markdown table and exit")
    parser.add_argument("--shard", default="1/1", metavar="K/N",
                        help="run every N-th mutation from the K-th (two checkouts, one shard each: twice as fast)")
    args = parser.parse_args()
    k, n = (int(v) for v in args.shard.split("/"))
    chosen = [m for m in load_mutations() if args.k in m["id"]]
    if not args.markdown:
        chosen = chosen[k - 1::n]
    if args.markdown:
        print("| id | promise | file | tests that fail |\n|---|---|---|---|")
        for m in chosen:
            tests = ", ".join(f"`{t.split('::')[-1]}`" for t in m["tests"])
            print(f"| `{m['id']}` | {m['promise']} | `{m['file']}` | {tests} |")
        return 0
    if args.list:
        for m in chosen:
            print(f"{m['id']}: {m['file']} -> {' '.join(m['tests'])}")
        return 0
    survivors = []
    for m in chosen:
        caught, seconds, last = check(m)
        print(f"{'caught ' if caught else 'SURVIVED'} {m['id']:<40} {seconds:6.1f} s  {last}", flush=True)
        if not caught:
            survivors.append(m["id"])
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutations caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
