#!/usr/bin/env python3
"""solc for Slither: the project's compiler shim with the settings ape compiles with.

crytic-compile's `--solc-standard-json` path builds a standard-JSON input with the optimizer
off, no `viaIR` and no EVM version; InferenceHub is stack-too-deep without viaIR. This script
sits where crytic-compile expects a solc binary (`slither --solc tools/slither/solc_viair.py`),
sets viaIR, the optimizer (200 runs) and the EVM version (cancun) as in ape-config.yaml, and
runs tools/solc-shim.sh (the npm WebAssembly compiler) with the same arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SHIM = Path(__file__).resolve().parent.parent / "solc-shim.sh"
SETTINGS = {
    "viaIR": True,
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
}


def main(argv: list[str]) -> int:
    if "--standard-json" not in argv:  # --version and friends: pass through untouched
        os.execv(SHIM, [str(SHIM), *argv])
    request = json.loads(sys.stdin.read())
    request.setdefault("settings", {}).update(SETTINGS)
    done = subprocess.run([str(SHIM), *argv], input=json.dumps(request).encode(), check=False)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
