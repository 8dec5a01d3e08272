"""What the SDK returns: settlement records, results with numpy outputs, model summaries."""

from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from verinfer.chain.contracts import ModelVersion, Status
from verinfer.models.codec import ErrorCode


@dataclass(frozen=True)
class PendingRequest:
    """A request accepted by the hub, not yet settled."""

    request_id: int
    model: str
    version: int
    k: int
    fee: int
    tx_hash: bytes
    block: int
    seed_block: int  # the committee is drawn from this block's hash (`Client.committee` once it exists)
    commit_deadline: int  # attested mode: the round's deadline, like reveal_deadline
    reveal_deadline: int
    digest_only: bool
    mode: int = 1  # the verification mode bit


@dataclass(frozen=True)
class Provisional:
    """An optimistic request's posted output while it is not final: it stands unless challenged by
    `challenge_deadline`, and a challenge may overturn it. Not a result: act on it at your own risk."""

    request_id: int
    poster: str
    output_digest: bytes
    output: bytes
    challenge_deadline: int
    challenged: bool
    escalation_id: int  # the consensus request deciding a challenge (0 while unchallenged)

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "final": False,
            "poster": self.poster,
            "output_digest": "0x" + self.output_digest.hex(),
            "output": "0x" + self.output.hex(),
            "challenge_deadline": self.challenge_deadline,
            "challenged": self.challenged,
            "escalation_id": self.escalation_id or None,
        }


@dataclass(frozen=True)
class Settlement:
    """How a request ended on-chain, with the transactions that got it there."""

    request_id: int
    status: Status
    model_id: bytes
    version: int
    k: int
    committee: tuple[str, ...]  # empty if it was never drawn (the request expired)
    agreeing: tuple[str, ...]
    output_digest: bytes
    error_code: int
    settled_block: int
    request_tx: bytes | None
    draw_tx: bytes | None  # the transaction that drew the committee (usually the first commit)
    commit_txs: tuple[bytes, ...]
    reveal_txs: tuple[bytes, ...]
    settle_tx: bytes | None

    @property
    def error(self) -> str | None:
        """The canonical error's name for Failed requests."""
        if self.status != Status.FAILED:
            return None
        try:
            return ErrorCode(self.error_code).name
        except ValueError:
            return f"code {self.error_code}"

    def to_json(self) -> dict[str, Any]:
        def hx(value: bytes | None) -> str | None:
            return None if value is None else "0x" + value.hex()

        return {
            "request_id": self.request_id,
            "status": self.status.name,
            "model_id": hx(self.model_id),
            "version": self.version,
            "k": self.k,
            "committee": list(self.committee),
            "agreeing": list(self.agreeing),
            "output_digest": hx(self.output_digest),
            "error_code": self.error_code,
            "error": self.error,
            "settled_block": self.settled_block,
            "request_tx": hx(self.request_tx),
            "draw_tx": hx(self.draw_tx),
            "commit_txs": [hx(t) for t in self.commit_txs],
            "reveal_txs": [hx(t) for t in self.reveal_txs],
            "settle_tx": hx(self.settle_tx),
        }


@dataclass(frozen=True)
class InferenceResult:
    """A finalized request's outputs as arrays, keyed by output name, with its settlement."""

    outputs: dict[str, npt.NDArray[Any]]
    output_bytes: bytes
    settlement: Settlement

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.outputs[name]

    def to_json(self) -> dict[str, Any]:
        return {
            "outputs": {name: array.tolist() for name, array in self.outputs.items()},
            "settlement": self.settlement.to_json(),
        }


@dataclass(frozen=True)
class ModelSummary:
    """A registered model with its newest version (None until one is published)."""

    name: str
    model_id: bytes
    owner: str
    version_count: int
    latest: ModelVersion | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_id": "0x" + self.model_id.hex(),
            "owner": self.owner,
            "versions": self.version_count,
            "latest": None if self.latest is None else version_json(self.latest),
        }


def version_json(version: ModelVersion) -> dict[str, Any]:
    def io(specs: Any) -> list[dict[str, Any]]:
        return [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in specs]

    return {
        "version": version.version,
        "artifact_sha256": version.artifact_sha256.hex(),
        "fee": str(version.fee),
        "decimals": version.decimals,
        "modes": version.modes,
        "max_output_bytes": version.max_output_bytes,
        "deprecated": version.deprecated,
        "execution_class": version.execution_class or "portable",
        "tolerance": str(version.tolerance),
        "uris": list(version.uris),
        "inputs": io(version.spec.inputs),
        "outputs": io(version.spec.outputs),
    }
