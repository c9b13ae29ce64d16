"""Copy the installed tensorrt-stubs into OUT with their few syntax errors fixed, for mypy.

tensorrt-stubs (installed with --no-deps) has no py.typed marker and a handful of lines Python cannot parse:
parameters named ``in`` (a keyword) and one non-default parameter after defaults. mypy then skips the whole
package and every TensorRT call type-checks as Any. The fixed copy under OUT (mypy_path in pyproject) makes
the calls checked for real.
"""

import re
import sys
from importlib.util import find_spec
from pathlib import Path


def main(out: Path) -> int:
    spec = find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        print("tensorrt-stubs is not installed (pip install --no-deps tensorrt-stubs)", file=sys.stderr)
        return 1
    site = Path(next(iter(spec.submodule_search_locations))).parent
    for package in ("tensorrt", "tensorrt_bindings"):
        for stub in (site / package).glob("*.pyi"):
            text = stub.read_text(encoding="utf-8")
            text = re.sub(r"(?<=[(,\s])in: ", "in_: ", text)
            text = re.sub(r"(power: Weights = None, channel_axis: int)(\))", r"\1 = 0\2", text)
            target = out / package / stub.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    (out / "tensorrt" / "py.typed").write_text("")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/stubs")))
