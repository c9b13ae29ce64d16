"""The stages composed: export, then add the precision variants. ``edgeseg.export`` and ``edgeseg.calibration``
never import each other; the CLI and the demo put them together here."""

from __future__ import annotations

import os
from pathlib import Path

from edgeseg.calibration.pipeline import CalibrationOptions, calibrate_bundle
from edgeseg.calibration.readers import check_calibration_source
from edgeseg.errors import EdgesegError
from edgeseg.export.pipeline import ExportOptions, export_bundle
from edgeseg.runtime.bundle import Bundle


def export_with_variants(out: str | os.PathLike, *, model_name: str | None = None, checkpoint: str | None = None,
                         options: ExportOptions | None = None,
                         calibration: CalibrationOptions | None = None) -> Bundle:
    """Export a bundle and, with ``calibration``, add its FP16/INT8 variants behind the accuracy gate before the
    bundle replaces ``out``: it appears whole, variants included, or not at all."""
    if calibration is not None and calibration.int8 and not calibration.calib_data:
        raise EdgesegError("--int8 needs --calib-data (a data spec, an image folder or a video)")
    if calibration is not None and calibration.calib_data:
        check_calibration_source(calibration.calib_data)  # before the export, not after it

    def add_variants(folder: Path) -> None:
        assert calibration is not None
        calibrate_bundle(folder, calibration)

    return export_bundle(out, model_name=model_name, checkpoint=checkpoint, options=options,
                         then=add_variants if calibration is not None else None)
