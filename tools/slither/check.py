#!/usr/bin/env python3
"""Slither over contracts/, checked against the reviewed triage file (tools/slither/triage.toml).

Every finding in the project's own contracts (contracts/test/ and node_modules excluded) is printed
on one line, marked `ok` when a triage entry accepts it. Exit status 1 when a High or Medium finding
is not triaged (or the triage file is malformed); Low, Informational and Optimization findings that
are not triaged, and triage entries that no longer match anything, are warnings only.

A finding is identified by its detector and the element it is about, named without line numbers:
`Contract.function` (overloads share a name), `Contract.function.local`, `Contract.stateVariable`,
`Contract`, or the pragma text. One entry accepts every finding of its detector on that element.

    python tools/slither/check.py            # lint
    python tools/slither/check.py --update   # also print triage stubs for the untriaged findings

Slither's JSON is cached under .toolchain/slither/, keyed by the Solidity sources, the compiler
and these scripts, so a lint with unchanged contracts does not compile again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TRIAGE = HERE / "triage.toml"
SOLC = HERE / "solc_viair.py"
VENV = ROOT / ".toolchain" / "slither-venv"
CACHE = ROOT / ".toolchain" / "slither" / "results.json"
AGGREGATE = ROOT / ".toolchain" / "slither"
REMAPS = "@openzeppelin/contracts=node_modules/@openzeppelin/contracts"
EXCLUDED = ("node_modules/", "contracts/test/", ".toolchain/")
FAILING = ("High", "Medium")
IMPACT_ORDER = {"High": 0, "Medium": 1, "Low": 2, "Informational": 3, "Optimization": 4}
PLACEHOLDER = "TODO"


@dataclass(frozen=True)
class Finding:
    detector: str
    element: str
    impact: str
    confidence: str
    location: str
    summary: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.detector, self.element)


@dataclass(frozen=True)
class Entry:
    detector: str
    element: str
    reason: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.detector, self.element)


def _element_name(element: dict[str, Any]) -> str:
    """`Contract.function[.variable]` from the element and its parents; nodes by their function."""
    names: list[str] = [] if element.get("type") == "node" else [str(element.get("name", "?"))]
    parent = element.get("type_specific_fields", {}).get("parent")
    while parent:
        names.insert(0, str(parent.get("name", "?")))
        parent = parent.get("type_specific_fields", {}).get("parent")
    return ".".join(names)


def parse_findings(report: dict[str, Any]) -> tuple[list[Finding], int]:
    """The findings in project contracts, and how many were left out as dependencies or tests."""
    findings: list[Finding] = []
    skipped = 0
    for result in report.get("results", {}).get("detectors", []):
        elements = result.get("elements") or [{}]
        first = elements[0]
        mapping = first.get("source_mapping", {})
        path = str(mapping.get("filename_relative", ""))
        if path.startswith(EXCLUDED) or mapping.get("is_dependency"):
            skipped += 1
            continue
        # Where: the first statement the finding points at, else the element itself.
        node = next((e for e in elements if e.get("type") == "node"), first)
        at = node.get("source_mapping") or mapping
        lines = at.get("lines") or [0]
        where = f"{at.get('filename_relative', path)}#{lines[0]}" + (
            f"-{lines[-1]}" if len(lines) > 1 else ""
        )
        summary = " ".join(str(result.get("description", "")).split())
        findings.append(
            Finding(
                detector=str(result["check"]),
                element=_element_name(first),
                impact=str(result["impact"]),
                confidence=str(result["confidence"]),
                location=where,
                summary=summary,
            )
        )
    findings.sort(key=lambda f: (IMPACT_ORDER.get(f.impact, 9), f.detector, f.element, f.location))
    return findings, skipped


def load_triage(path: Path) -> tuple[list[Entry], list[str]]:
    """The entries of the triage file, and what is wrong with it."""
    if not path.exists():
        return [], []
    data = tomllib.loads(path.read_text())
    entries: list[Entry] = []
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(data.get("accepted", []), start=1):
        detector = str(raw.get("detector", "")).strip()
        element = str(raw.get("element", "")).strip()
        reason = " ".join(str(raw.get("reason", "")).split())
        label = f"entry {i} ({detector or '?'} {element or '?'})"
        if not detector or not element:
            problems.append(f"{label}: needs both `detector` and `element`")
            continue
        if not reason or PLACEHOLDER in reason:
            problems.append(f"{label}: needs a written `reason`")
            continue
        if (detector, element) in seen:
            problems.append(f"{label}: duplicate entry")
            continue
        seen.add((detector, element))
        entries.append(Entry(detector, element, reason))
    return entries, problems


def _cache_key(slither: Path) -> str:
    digest = hashlib.sha256()
    inputs = sorted((ROOT / "contracts").rglob("*.sol"))
    inputs += [
        SOLC,
        Path(__file__).resolve(),
        ROOT / "tools" / "solc-shim.sh",
        ROOT / "tools" / "solc-wrapper.js",
    ]
    inputs += [ROOT / "node_modules" / p / "package.json" for p in ("solc", "@openzeppelin/contracts")]
    inputs += [HERE / "requirements.txt"]
    for path in inputs:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
    digest.update(str(slither).encode())
    return digest.hexdigest()


def _aggregate() -> Path:
    """A directory holding one file that imports every contract under contracts/: crytic-compile takes
    only a directory's top-level files, and the contracts live in subdirectories (core/, modes/...)."""
    folder = AGGREGATE / "all"
    folder.mkdir(parents=True, exist_ok=True)
    imports = [
        f'import "{Path("..", "..", "..", path.relative_to(ROOT)).as_posix()}";'
        for path in sorted((ROOT / "contracts").rglob("*.sol"))
        if ".cache" not in path.parts
    ]
    header = "// SPDX-License-Identifier: Apache-2.0\n// Generated by tools/slither/check.py.\n"
    header += "pragma solidity ^0.8.24;\n"
    (folder / "All.sol").write_text(header + "\n".join(imports) + "\n")
    return folder


def run_slither(slither: Path, use_cache: bool) -> dict[str, Any]:
    """Slither's JSON report over contracts/, from the cache when the inputs have not changed."""
    key = _cache_key(slither)
    if use_cache and CACHE.exists():
        cached: dict[str, Any] = json.loads(CACHE.read_text())
        if cached.get("key") == key:
            print("slither: sources unchanged, using the cached report", file=sys.stderr)
            report: dict[str, Any] = cached["report"]
            return report
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "slither.json"
        cmd = [
            str(slither),
            str(_aggregate().relative_to(ROOT)),
            "--solc", str(SOLC),
            "--solc-standard-json",
            "--solc-remaps", REMAPS,
            "--json", str(out),
        ]  # fmt: skip
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        report = json.loads(out.read_text()) if out.exists() else {}
    if not report.get("success"):
        sys.stderr.write(done.stdout + done.stderr)
        error = report.get("error") or f"slither exited with {done.returncode} and no JSON report"
        raise SystemExit(f"slither failed: {error}")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps({"key": key, "report": report}))
    return report


def stub(finding: Finding) -> str:
    """A triage entry to paste into triage.toml once its reason is written."""
    return (
        f"# {finding.impact}, confidence {finding.confidence}, {finding.location}: {finding.summary[:160]}\n"
        f"[[accepted]]\n"
        f"detector = {json.dumps(finding.detector)}\n"
        f"element = {json.dumps(finding.element)}\n"
        f'reason = "{PLACEHOLDER}: why this is not a bug"\n'
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slither", type=Path, default=VENV / "bin" / "slither", help="slither executable")
    parser.add_argument("--triage", type=Path, default=TRIAGE, help="triage file (TOML)")
    parser.add_argument(
        "--report", type=Path, help="read this slither --json report instead of running slither"
    )
    parser.add_argument("--no-cache", action="store_true", help="always run slither")
    parser.add_argument("--update", action="store_true", help="print triage stubs for untriaged findings")
    args = parser.parse_args(argv)

    report = (
        json.loads(args.report.read_text()) if args.report else run_slither(args.slither, not args.no_cache)
    )
    findings, skipped = parse_findings(report)
    entries, problems = load_triage(args.triage)
    accepted = {entry.key for entry in entries}

    failing: list[Finding] = []
    warnings = 0
    lines: dict[str, int] = {}  # the same statement reached along several call paths: one line
    for f in findings:
        if f.key in accepted:
            mark = "ok"
        elif f.impact in FAILING:
            mark = "FAIL"
            failing.append(f)
        else:
            mark = "warn"
            warnings += 1
        line = f"{mark:4} {f.impact:13} {f.detector:26} {f.element:40} {f.location}"
        lines[line] = lines.get(line, 0) + 1
    for line, count in lines.items():
        print(line + (f" (x{count})" if count > 1 else ""))

    matched = {f.key for f in findings}
    stale = [entry for entry in entries if entry.key not in matched]
    for entry in stale:
        print(f"warning: stale triage entry, matches no finding: {entry.detector} {entry.element}")
    for problem in problems:
        print(f"error: {args.triage.name}: {problem}")

    print(
        f"slither: {len(findings)} findings ({len(findings) - len(failing) - warnings} triaged, "
        f"{len(failing)} untriaged High/Medium, {warnings} untriaged Low/Informational/Optimization), "
        f"{skipped} in dependencies and contracts/test/ ignored, {len(stale)} stale triage entries"
    )
    if args.update:
        untriaged = [f for f in findings if f.key not in accepted]
        seen: set[tuple[str, str]] = set()
        print(f"\n# Stubs for {args.triage}: write each reason, or fix the contract instead.\n")
        for f in untriaged:
            if f.key not in seen:
                seen.add(f.key)
                print(stub(f))
    if failing:
        print("slither: untriaged High/Medium findings: fix them, or triage them with a reason (--update)")
    return 1 if failing or problems else 0


if __name__ == "__main__":
    sys.exit(main())
