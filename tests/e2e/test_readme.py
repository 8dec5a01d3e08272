"""The README's shell blocks, run as written against the session devnet (docs that drift fail here).

Only the Devnet, Dapp guide, Model owners and Deploying sections are run. A block's lines can be
excluded only by an HTML comment right above its fence, `<!-- readme-test: not-run "PREFIX" ...: why -->`,
and the test checks every such prefix still matches a line, so the list cannot go stale or grow silently.
"""

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from verinfer.devnet.network import tool_env
from verinfer.models.samples import iris_mlp

from tests.conftest import ROOT
from tests.e2e.conftest import Devnet

SECTIONS = ("Devnet", "Dapp guide", "Model owners", "Deploying")
MAX_NOT_RUN = 6  # lines excluded in all; raise it only with a reason in the README comment
# What a successful run of each command prints, beyond exit code 0.
EXPECT = {
    ("verinfer", "models", "list"): "iris-mlp",
    ("verinfer", "infer"): "FINALIZED",
    ("verinfer", "devnet", "status"): "devnet up",
    ("verinfer", "models", "publish"): "my-model v1",
    ("verinfer", "operator", "register"): "registered for my-model",
    ("ape", "run", "lending_gate"): "LendingGate 0x",
}


@dataclass(frozen=True)
class Block:
    section: str
    lines: tuple[str, ...]
    not_run: tuple[str, ...]


def readme_blocks(text: str) -> list[Block]:
    """The ```sh blocks of SECTIONS, with the not-run prefixes of the comment right above each."""
    blocks, section = [], ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        heading = re.match(r"^## (.+)$", lines[i])  # ### subsections stay in their section
        if heading:
            section = heading.group(1)
        if lines[i].strip() == "```sh" and section in SECTIONS:
            comment = lines[i - 1] if i and lines[i - 1].startswith("<!-- readme-test:") else ""
            not_run = tuple(re.findall(r'"([^"]+)"', comment.split(":", 2)[1])) if comment else ()
            end = lines.index("```", i + 1)
            body = tuple(line for line in lines[i + 1 : end] if line.strip())
            blocks.append(Block(section, body, not_run))
            i = end
        i += 1
    return blocks


BLOCKS = readme_blocks((ROOT / "README.md").read_text())


def test_readme__blocks_found_and_exclusions_short_and_current() -> None:
    assert {b.section for b in BLOCKS} == {"Devnet", "Model owners", "Deploying"}
    excluded = [line for b in BLOCKS for line in b.lines if line.startswith(b.not_run or ("\0",))]
    assert len(excluded) <= MAX_NOT_RUN, excluded
    for block in BLOCKS:
        for prefix in block.not_run:
            assert any(line.startswith(prefix) for line in block.lines), f"stale not-run {prefix!r}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.section for b in BLOCKS])
def test_readme__shell_block__runs_as_written(devnet: Devnet, tmp_path: Path, block: Block) -> None:
    (tmp_path / "model.onnx").write_bytes(iris_mlp().onnx)
    substitutions = {
        "URL": devnet.state.rpc_url,  # the one placeholder: the node's address is the devnet's
        "deployments/devnet.json": str(devnet.state.deployment),
        "gate.json": str(tmp_path / "gate.json"),
        "model.onnx": str(tmp_path / "model.onnx"),
    }
    env = {**tool_env(ROOT), **devnet.env}
    for line in block.lines:
        if block.not_run and line.startswith(block.not_run):
            continue
        argv = [substitutions.get(word, word) for word in shlex.split(line, comments=True)]
        if not argv:
            continue  # a comment line
        command = tuple(argv)
        if argv[0] == "verinfer":
            argv = [sys.executable, "-m", "verinfer", *argv[1:]]
        elif argv[0] == "ape":
            argv = [str(Path(sys.executable).parent / "ape"), *argv[1:]]
        elif argv[0] != "curl":
            pytest.fail(f"README line {line!r} is not verinfer, ape or curl: run it or mark it not-run")
        done = subprocess.run(
            argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
        expected = next((text for key, text in EXPECT.items() if command[: len(key)] == key), None)
        assert expected is None or expected in done.stdout, (line, done.stdout[-2000:])
