"""python -m verinfer.bench [--quick] [--out DIR] [--only PART,...]"""

import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import onnxruntime

from verinfer.bench import determinism, gas, load, overhead, report
from verinfer.bench.harness import devnet
from verinfer.chain.contracts import MODE_ATTESTED
from verinfer.devnet.network import project_root
from verinfer.devnet.processes import DevnetError

PARTS = ("overhead", "determinism", "gas", "latency", "throughput")


def _commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _progress(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)


@click.command()
@click.option("--quick", is_flag=True, help="Tiny sizes: checks the harness end to end in about a minute.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("bench"),
    show_default=True,
    help="Where results.json, results.md and results.png go.",
)
@click.option(
    "--work",
    type=click.Path(path_type=Path),
    default=None,
    help="Devnet homes and their logs (default: OUT/out).",
)
@click.option("--only", default=",".join(PARTS), show_default=True, help="Comma-separated parts to run.")
def main(quick: bool, out: Path, work: Path | None, only: str) -> None:
    """Measures gas, latency, throughput, determinism and relayer overhead; writes the results and marks
    each target."""
    # A terminated run still takes its devnets down (the `finally` of each devnet context).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parts = [p.strip() for p in only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise click.UsageError(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    work = work or out / "out"
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    root = project_root()
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _commit(root),
            "quick": quick,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
        }
    }
    try:
        if "overhead" in parts:
            _progress("relayer overhead against bare ONNX Runtime")
            results["overhead"] = overhead.run(quick=quick)
        if "determinism" in parts:
            _progress("determinism: sample models under every setting (and CPU class) this machine can run")
            results["determinism"] = determinism.run(quick=quick)
        if "gas" in parts:
            _progress("gas: devnet without relayers")
            with devnet(work, "gas", relayers=0) as stack:
                results["gas"] = gas.run(stack, quick=quick, progress=_progress)
        # The quick run (the test suite's) checks the harness end to end, not the numbers: one warm-up.
        warm = 1 if quick else 3
        if "latency" in parts:
            _progress("automine devnet with three relayers")
            with devnet(work, "automine") as stack:
                n = 3 if quick else 100
                results["latency"] = {
                    "automine": load.latency(stack, n, _progress, "automine", warmup=warm),
                    "automine_attested": load.latency(
                        stack, n, _progress, "automine, attested", MODE_ATTESTED, warm
                    ),
                }
        if "latency" in parts or "throughput" in parts:
            # Windows are counted in blocks: under automine every transaction is a block, so load would
            # close them in well under a second. Throughput runs where blocks keep time.
            _progress("1 s block-time devnet with three relayers")
            with devnet(work, "blocktime", block_time=1) as stack:
                if "latency" in parts:
                    results.setdefault("latency", {})["block_time_1s"] = load.latency(
                        stack, 1 if quick else 20, _progress, "1 s blocks", warmup=warm
                    )
                if "throughput" in parts:
                    rates = [5.0] if quick else [10.0, 20.0, 40.0, 80.0, 160.0]
                    seconds = 2.0 if quick else 10.0
                    results["throughput"] = load.throughput(stack, rates, seconds, _progress, warmup=warm)
                    attested_rates = [5.0] if quick else [20.0, 40.0, 80.0, 160.0, 320.0]
                    results["throughput_attested"] = load.throughput(
                        stack, attested_rates, seconds, _progress, MODE_ATTESTED, warm
                    )
    except (DevnetError, RuntimeError) as exc:
        click.echo(f"error: {exc} (logs under {work})", err=True)
        sys.exit(1)
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    report.write(results, out)
    click.echo(report.markdown(results))
    click.echo(
        f"\nwrote {out}/results.json, results.md, results.png in {results['meta']['seconds']} s", err=True
    )


if __name__ == "__main__":
    main()
