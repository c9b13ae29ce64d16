"""A generic ``folder:IMAGES,LABELS[,CLASSES]`` dataset: images and same-stem label PNGs holding class
indices (255 = ignore), with a classes file: one class per line, ``name`` or ``name R G B``. The classes file
defaults to ``classes.txt`` in the labels folder or its parent."""

from __future__ import annotations

from pathlib import Path

from edgeseg.data.base import IMAGE_SUFFIXES, FilePairSource, pair_by_stem, require_dir
from edgeseg.errors import EdgesegError
from edgeseg.meta import default_palette


def read_classes_file(path: Path) -> tuple[list[str], list[tuple[int, int, int]]]:
    names, colours = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EdgesegError(f"{path}: not UTF-8 text (byte {exc.start}); save the classes file as UTF-8") from None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=3)
        if len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
            names.append(parts[0])
            colours.append(tuple(int(p) for p in parts[1:]))
        else:
            names.append(line)
            colours.append(None)
    if not names:
        raise EdgesegError(f"{path}: no class names")
    if any(c is not None and max(c) > 255 for c in colours):
        raise EdgesegError(f"{path}: colours must be 0-255")
    fallback = default_palette(len(names))
    return names, [c if c is not None else fallback[i] for i, c in enumerate(colours)]


def open_folder(images: Path, labels: Path, classes_file: Path | None = None) -> FilePairSource:
    require_dir(images, "folder", "a folder of images")
    require_dir(labels, "folder", "a folder of label PNGs")
    if classes_file is None:
        candidates = [labels / "classes.txt", labels.parent / "classes.txt"]
        classes_file = next((c for c in candidates if c.is_file()), None)
        if classes_file is None:
            raise EdgesegError(f"folder: no classes file; put classes.txt in {labels} or {labels.parent}, or give "
                               f"it as folder:IMAGES,LABELS,CLASSES")
    elif not classes_file.is_file():
        raise EdgesegError(f"folder: classes file {classes_file} not found")
    names, palette = read_classes_file(classes_file)
    image_files = [p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    pairs = pair_by_stem(image_files, list(labels.glob("*.png")), "folder")
    return FilePairSource(pairs, names, name=f"folder/{images.name}", palette=palette)


def sample_file_stem(sample_id: str, index: int, taken: set[str]) -> str:
    """The file stem a written ``folder:`` dataset gives a sample: its id, or its index where the id holds a path
    separator, starts with a dot or repeats one already ``taken`` (which this adds to)."""
    name = sample_id if sample_id and "/" not in sample_id and "\\" not in sample_id and not sample_id.startswith(
        ".") else f"{index:06d}"
    if name in taken:
        name = f"{name}_{index:06d}"
    taken.add(name)
    return name
