"""The benchmark harness: `--quick` runs every part end to end and writes well-formed results.

This checks the harness, not the numbers: the numbers are `make bench`'s to report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from verinfer.bench.determinism import QUICK_MODELS
from verinfer.bench.report import targets

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "verinfer.bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_quick__writes_json_markdown_and_png(quick: Path) -> None:
    results = json.loads((quick / "results.json").read_text())
    assert results["meta"]["quick"] is True and results["meta"]["seconds"] > 0
    assert set(results) >= {"gas", "latency", "throughput", "overhead", "determinism", "targets"}
    assert (quick / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (quick / "results.md").read_text()
    for heading in (
        "## Targets",
        "## Gas per operation",
        "## Committee draw",
        "## End-to-end latency",
        "## Throughput",
        "## Relayer execution overhead",
        "## Determinism",
    ):
        assert heading in markdown


def test_quick__gas_parts_add_up(quick: Path) -> None:
    gas = json.loads((quick / "results.json").read_text())["gas"]
    assert set(gas["per_operation"]) == {"1", "3", "5"}
    for k, g in gas["per_operation"].items():
        n = int(k)
        steps = g["request"] + g["first_commit"] + g["settle"]
        if n > 1:
            steps += (n - 1) * g["commit"] + g["first_reveal"] + (n - 2) * g.get("reveal", 0)
        # One request each in --quick, but k-1 commits (and k-2 middle reveals) differ by a few gas each:
        # the per-step medians times their counts come within a fraction of the measured sum.
        assert g["total"] == (steps if n == 1 else pytest.approx(steps, rel=0.005))
        assert 0 < g["callback"] < g["settle"]
        assert 0 < g["draw"] < g["first_commit"]  # the first commit draws the committee
        assert n == 1 or g["commit"] < g["first_commit"]
    assert gas["finalize_after_silence"]["slash"] > 0
    for b in gas["batched"].values():
        assert b["total_per_request"] == pytest.approx(b["request"] + 3 * b["operator_per_request"], abs=3)
    assert all(0 < d["draw"] < d["draw_tx"] for d in gas["draw"].values())
    # Attested: one settle transaction carries the draw and the callback, and the sum is the two txs.
    for a in gas["attested"].values():
        assert a["total"] == a["request"] + a["settle"]
        assert 0 < a["draw"] < a["settle"] and 0 < a["callback"] < a["settle"]
    stored, digest_only = gas["attested"]["3 stored"], gas["attested"]["3 digest-only"]
    assert digest_only["settle"] < stored["settle"]  # storing the output costs gas
    many = gas["attested_batched"]
    assert many["5"]["settle_per_request"] < many["1"]["settle_per_request"]  # one transaction shared
    inputs = gas["inputs"]
    assert inputs["100 KB"]["inline"] is None  # over the inline cap: by reference only
    assert inputs["1 KB"]["reference"] < inputs["1 KB"]["inline"] < inputs["16 KB"]["inline"]
    assert inputs["1 KB"]["reference_bytes"] == inputs["100 KB"]["reference_bytes"]
    pay = gas["payment"]
    assert 0 < pay["credit"] < pay["transfer"] and pay["saved"] == pay["transfer"] - pay["credit"]
    plain, fought = gas["optimistic"]["unchallenged"], gas["optimistic"]["challenged"]
    assert plain["total"] == plain["request"] + plain["post"] + plain["finalize"]
    parts = ("request", "post", "challenge", "escalation_round", "resolve")
    assert all(fought[p] > 0 for p in parts) and fought["total"] == sum(fought[p] for p in parts)
    assert fought["blocks_to_resolution"] > 0
    tolerance = gas["tolerance"]
    assert 0 < tolerance["10"]["extra"] < tolerance["100"]["extra"]  # the comparison grows with the output
    assert tolerance["marginal_per_element"] > 0
    [real] = tolerance["samples"].values()  # a sample model's real output, compared
    assert real["elements"] > 0 and real["extra"] > 0


def test_quick__latency_throughput_and_overhead_measured(quick: Path) -> None:
    results = json.loads((quick / "results.json").read_text())
    for chain in ("automine", "automine_attested", "block_time_1s"):
        lat = results["latency"][chain]
        assert lat["n"] > 0 and 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"]
    for part in ("throughput", "throughput_attested"):
        steps = results[part]["steps"]
        assert steps and all(s["settled"] == s["sent"] for s in steps)
    assert results["throughput"]["peak_drain_per_s"] >= results["throughput"]["sustained_per_s"]
    assert results["throughput"]["profile"]["transactions"] > 0
    assert all(m["ratio"] > 0 for m in results["overhead"]["models"])
    determinism = results["determinism"]["models"]
    assert sorted(m["model"] for m in determinism) == sorted(QUICK_MODELS)  # the long softmax among them
    for m in determinism:  # shares and units agree with each other, and the pinned run is the reference
        assert all(
            (v["differing_share"] == 0) == (v["worst_units"] == 0)
            for v in m["variations"]
            if not v["skipped"]
        )
        assert m["worst_units"] == max(v["worst_units"] or 0 for v in m["variations"])
    assert [t["name"] for t in results["targets"]] == [t.name for t in targets(results)]


def test_targets__met_missed_and_not_measured() -> None:
    results = {
        "gas": {
            "per_operation": {"3": {"total": 250_000}},
            "batched": {"50": {"total_per_request": 90_000}},
            "draw_growth": {"step_ratio": 1.1},
        },
        "latency": {"automine": {"p50_ms": 450.0}},
        "overhead": {"worst_ratio": 0.95},
    }
    marks = {t.name.split(",")[0]: t.met for t in targets(results)}
    # gas k=3, batches, four attested targets and the optimistic one (not measured), draw growth, latency,
    # attested latency and throughput (not measured), throughput, overhead
    assert [t.met for t in targets(results)] == [
        True,
        False,
        None,
        None,
        None,
        None,
        None,
        True,
        False,
        None,
        None,
        None,
        True,
    ]
    assert marks["settled requests per second"] is None


def test_unknown_part__usage_error_and_nothing_written(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "verinfer.bench", "--only", "gas,speed", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown part(s) ['speed']" in done.stderr
    assert list(tmp_path.iterdir()) == []
