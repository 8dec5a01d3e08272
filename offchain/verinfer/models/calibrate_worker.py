"""Calibration worker: runs rows under the pinned settings (under qemu, on an emulated CPU class).

Usage: python -m verinfer.models.calibrate_worker MODEL.onnx ROWS.npz OUT.npz; prints one JSON line.
"""

import json
import sys
from pathlib import Path

import onnxruntime as ort

from verinfer.models.calibrate import read_rows, run_rows, write_outputs
from verinfer.models.execution import PINNED


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    model, rows, out = (Path(a) for a in argv)
    write_outputs(out, run_rows(model.read_bytes(), read_rows(rows), PINNED))
    print(json.dumps({"runtime_version": ort.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
