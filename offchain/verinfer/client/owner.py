"""Model owners: publish an ONNX artifact to the model store and register it as a new version."""

from verinfer.chain.contracts import MODES, ModelVersion
from verinfer.client.client import (
    DEFAULT_MAX_OUTPUT_BYTES,
    MAX_OUTPUT_BYTES,
    MIN_OUTPUT_BYTES,
    ZERO_ADDRESS,
    Client,
)
from verinfer.client.errors import InvalidArgument, InvalidModelName, VerinferError
from verinfer.models.agreement import EXACT, Tolerance
from verinfer.models.artifacts import ArtifactStore
from verinfer.models.execution import MAX_CLASS_BYTES, PORTABLE, ExecutionClass, ExecutionClassError
from verinfer.models.names import model_name_problem
from verinfer.models.spec import spec_from_onnx

TOLERANCE_MODES = MODES["consensus"] | MODES["attested"]  # the registry's: modes that compare outputs


def artifact_uris(store: ArtifactStore, sha256: bytes, base_url: str | None) -> list[str]:
    """Where relayers may fetch the artifact: the store's HTTP URL first (if served), then its file."""
    uris = [f"{base_url.rstrip('/')}/{sha256.hex()}.onnx"] if base_url else []
    return [*uris, store.path(sha256).resolve().as_uri()]


def publish_model(
    client: Client,
    store: ArtifactStore,
    onnx: bytes,
    *,
    name: str,
    decimals: int,
    fee: int,
    base_url: str | None = None,
    modes: int = MODES["consensus"],
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    execution_class: str = PORTABLE,
    tolerance: Tolerance = EXACT,
) -> ModelVersion:
    """Stores the artifact, reads its tensor spec, registers the name if new and publishes a version.

    An output longer than `max_output_bytes` (encoded) settles as the canonical OUTPUT_TOO_LARGE error.
    `execution_class` is canonical text (`ExecutionClass`) or PORTABLE ("": outputs agree everywhere).
    `tolerance` is the agreement rule (exact by default); consensus and attested modes can settle one."""
    if execution_class != PORTABLE:
        execution_class = str(ExecutionClass.parse(execution_class))  # ExecutionClassError when not canonical
        if len(execution_class) > MAX_CLASS_BYTES:
            raise ExecutionClassError(f"execution class is over {MAX_CLASS_BYTES} bytes: {execution_class!r}")
    if modes & MODES["optimistic"] and not modes & MODES["consensus"]:
        raise InvalidArgument(
            "optimistic mode needs consensus mode too: a challenge escalates to a consensus round"
        )
    if not tolerance.exact and modes & ~TOLERANCE_MODES:
        raise InvalidArgument(f"tolerance {tolerance} allows consensus and attested modes only")
    if problem := model_name_problem(name):
        raise InvalidModelName(problem)
    if not MIN_OUTPUT_BYTES <= max_output_bytes <= MAX_OUTPUT_BYTES:
        raise InvalidArgument(
            f"max output bytes must be between {MIN_OUTPUT_BYTES} (an error output) and {MAX_OUTPUT_BYTES}, "
            f"not {max_output_bytes}"
        )
    spec = spec_from_onnx(onnx)  # SpecError before anything is written or sent
    model_id = client.contracts.model_id_of(name)
    info = client.contracts.model(model_id)
    if info is not None and info.owner != client.address:
        raise VerinferError(f"model {name!r} belongs to {info.owner}, not {client.address}")
    sha256 = store.put(onnx)
    if info is None:
        client.transact("registry", "registerModel", name)
    params = (
        sha256,
        artifact_uris(store, sha256, base_url),
        spec.encode(),
        decimals,
        modes,
        fee,
        max_output_bytes,
        ZERO_ADDRESS,
        execution_class,
        tolerance.units,
        tolerance.ppm,
    )
    client.transact("registry", "publishVersion", model_id, params)
    published = client.contracts.model(model_id)
    assert published is not None
    return client.contracts.model_version(model_id, published.version_count)
