"""ModelRegistry: registration, immutable versions, deprecation, ownership and every revert."""

import ape
import pytest
from eth_utils import keccak

from tests.conftest import SPEC

ZERO = ape.utils.ZERO_ADDRESS


def version_params(sha: bytes = b"\x01" * 32, **over):
    p = {
        "sha": sha,
        "uris": ["file:///m.onnx", "https://models.example/m.onnx"],
        "spec": SPEC.encode(),
        "decimals": 6,
        "modes": 1,
        "fee": 5,
        "max_output_bytes": 4_096,
        "verifier": ZERO,
        "execution_class": "",
        "tolerance_units": 0,
        "tolerance_ppm": 0,
    }
    p.update(over)
    return (
        p["sha"],
        p["uris"],
        p["spec"],
        p["decimals"],
        p["modes"],
        p["fee"],
        p["max_output_bytes"],
        p["verifier"],
        p["execution_class"],
        p["tolerance_units"],
        p["tolerance_ppm"],
    )


@pytest.fixture
def model_id(registry, model_owner):
    registry.registerModel("iris", sender=model_owner)
    return registry.modelIdOf("iris")


def test_register_model__emits_and_records_owner(registry, model_owner):
    receipt = registry.registerModel("credit", sender=model_owner)
    model_id = registry.modelIdOf("credit")
    assert receipt.events == [registry.ModelRegistered(model_id, model_owner, "credit")]
    owner, name, count = registry.getModel(model_id)
    assert (owner, name, count) == (model_owner.address, "credit", 0)
    assert registry.exists(model_id)


@pytest.mark.parametrize("name", ["a", "0", "credit-v2", "risk_model", "iris.v1", "a-._9", "x" * 64])
def test_register_model__lowercase_digits_dash_dot_underscore__accepted(registry, model_owner, name):
    registry.registerModel(name, sender=model_owner)
    assert registry.getModel(registry.modelIdOf(name))[1] == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 65,
        "vad@2",
        "Bad Name!!",
        "Risk",
        "RISK",
        "-risk",
        ".risk",
        "_risk",
        "risk model",
        "risk/1",
        "rïsk",
    ],
)
def test_register_model__name_outside_the_rule__reverts(registry, model_owner, name):
    with ape.reverts(registry.InvalidModelName):
        registry.registerModel(name, sender=model_owner)


def test_register_model__taken_name__reverts(registry, model_id, dapp):
    with ape.reverts(registry.ModelExists):
        registry.registerModel("iris", sender=dapp)


def test_publish_version__stores_everything_and_emits(registry, model_id, model_owner):
    receipt = registry.publishVersion(model_id, version_params(), sender=model_owner)
    assert receipt.return_value == 1
    event = receipt.decode_logs(registry.VersionPublished)[0]
    assert event.version == 1 and event.artifactSha256 == b"\x01" * 32
    assert event.params[5] == 5  # VersionParams.fee
    v = registry.getVersion(model_id, 1)
    assert v.artifactSha256 == b"\x01" * 32
    assert v.uris == ["file:///m.onnx", "https://models.example/m.onnx"]
    assert bytes(v.tensorSpec) == SPEC.encode()
    assert (v.decimals, v.modes, v.fee, v.maxOutputBytes, v.deprecated) == (6, 1, 5, 4_096, False)
    assert event.params[6] == 4_096 and tuple(event.params[9:]) == (0, 0)  # output cap; exact agreement
    terms = registry.terms(model_id, 1)
    assert terms.owner == model_owner.address and terms.fee == 5 and terms.maxOutputBytes == 4_096
    assert (
        registry.publishVersion(model_id, version_params(b"\x02" * 32), sender=model_owner).return_value == 2
    )


CLASS = "onnxruntime==1.32.0/x86-64-fma3/t1-seq-opt_basic-prepack"


def test_publish_version__execution_class__id_of_machine_part_and_once_per_class(
    registry, model_id, model_owner
):
    receipt = registry.publishVersion(model_id, version_params(execution_class=CLASS), sender=model_owner)
    class_id = keccak(b"onnxruntime==1.32.0/x86-64-fma3")  # settings are not part of the pool
    event = receipt.decode_logs(registry.VersionPublished)[0]
    assert (event.classId, event.params[8]) == (class_id, CLASS)  # VersionParams.executionClass
    v = registry.getVersion(model_id, 1)
    assert (v.classId, v.executionClass) == (class_id, CLASS)
    assert registry.terms(model_id, 1).classId == class_id == registry.classOf(model_id, 1)
    # The same artifact is another promise in another class, and portable once more; twice is refused.
    other = CLASS.replace("fma3", "avx512")
    assert (
        registry.publishVersion(
            model_id, version_params(execution_class=other), sender=model_owner
        ).return_value
        == 2
    )
    assert registry.publishVersion(model_id, version_params(), sender=model_owner).return_value == 3
    assert (
        registry.classOf(model_id, 3) == bytes(32) and registry.getVersion(model_id, 3).executionClass == ""
    )
    with ape.reverts(registry.DuplicateArtifact):
        registry.publishVersion(model_id, version_params(execution_class=CLASS), sender=model_owner)
    # Other settings on the same machine are another promise too, drawn from the same pool.
    threads = CLASS.replace("t1-", "t2-")
    receipt = registry.publishVersion(model_id, version_params(execution_class=threads), sender=model_owner)
    assert registry.classOf(model_id, receipt.return_value) == class_id
    with ape.reverts(registry.UnknownVersion):
        registry.classOf(model_id, 5)


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"sha": b"\x00" * 32}, "InvalidArtifactHash"),
        ({"uris": []}, "InvalidUris"),
        ({"uris": ["file:///a", ""]}, "InvalidUris"),
        ({"decimals": 19}, "InvalidDecimals"),
        ({"modes": 0}, "InvalidModes"),
        ({"modes": 0x10}, "InvalidModes"),
        ({"modes": 0x03}, "VerifierRequired"),
        ({"spec": b""}, "InvalidTensorSpec"),
        ({"max_output_bytes": 0}, "InvalidMaxOutputBytes"),
        ({"max_output_bytes": 415}, "InvalidMaxOutputBytes"),
        ({"max_output_bytes": (1 << 20) + 1}, "InvalidMaxOutputBytes"),
        ({"max_output_bytes": 2**32 - 1}, "InvalidMaxOutputBytes"),
        ({"execution_class": "onnxruntime==1.32.0"}, "InvalidExecutionClass"),  # no settings part
        ({"execution_class": "/t1-seq"}, "InvalidExecutionClass"),  # no machine part
        ({"execution_class": "onnxruntime==1.32.0/x86-64-fma3/"}, "InvalidExecutionClass"),
        ({"execution_class": "onnxruntime==1.32.0/x86 64/t1"}, "InvalidExecutionClass"),  # a space
        ({"execution_class": "a/" + "b" * 127}, "InvalidExecutionClass"),  # 129 bytes
    ],
)
def test_publish_version__invalid__reverts(registry, model_id, model_owner, over, error):
    with ape.reverts(getattr(registry, error)):
        registry.publishVersion(model_id, version_params(**over), sender=model_owner)


@pytest.mark.parametrize("max_output_bytes", [416, 1 << 20])
def test_publish_version__max_output_bytes_at_bounds__accepted(
    registry, model_id, model_owner, max_output_bytes
):
    receipt = registry.publishVersion(
        model_id, version_params(max_output_bytes=max_output_bytes), sender=model_owner
    )
    assert registry.terms(model_id, receipt.return_value).maxOutputBytes == max_output_bytes
    assert (registry.MIN_OUTPUT_BYTES(), registry.MAX_OUTPUT_BYTES()) == (416, 1 << 20)


def test_publish_version__max_output_bytes_out_of_range__reverts_with_bounds(registry, model_id, model_owner):
    with ape.reverts(registry.InvalidMaxOutputBytes, maxOutputBytes=415, min=416, max=1 << 20):
        registry.publishVersion(model_id, version_params(max_output_bytes=415), sender=model_owner)


def test_publish_version__empty_spec_lists__reverts(registry, model_id, model_owner):
    from verinfer.models.codec import TensorSpec

    with ape.reverts(registry.InvalidTensorSpec):
        registry.publishVersion(
            model_id, version_params(spec=TensorSpec((), SPEC.outputs).encode()), sender=model_owner
        )


def test_publish_version__duplicate_artifact__reverts(registry, model_id, model_owner):
    registry.publishVersion(model_id, version_params(), sender=model_owner)
    with ape.reverts(registry.DuplicateArtifact):
        registry.publishVersion(model_id, version_params(), sender=model_owner)


def test_publish_version__not_owner__reverts(registry, model_id, dapp):
    with ape.reverts(registry.NotModelOwner):
        registry.publishVersion(model_id, version_params(), sender=dapp)


def test_publish_version__unknown_model__reverts(registry, model_owner):
    with ape.reverts(registry.UnknownModel):
        registry.publishVersion(b"\x09" * 32, version_params(), sender=model_owner)


def test_deprecate_version__flags_and_emits(registry, model_id, model_owner):
    registry.publishVersion(model_id, version_params(), sender=model_owner)
    receipt = registry.deprecateVersion(model_id, 1, sender=model_owner)
    assert receipt.events == [registry.VersionDeprecated(model_id, 1)]
    assert registry.getVersion(model_id, 1).deprecated
    with ape.reverts(registry.AlreadyDeprecated):
        registry.deprecateVersion(model_id, 1, sender=model_owner)


def test_deprecate_version__not_owner_or_unknown__reverts(registry, model_id, model_owner, dapp):
    registry.publishVersion(model_id, version_params(), sender=model_owner)
    with ape.reverts(registry.NotModelOwner):
        registry.deprecateVersion(model_id, 1, sender=dapp)
    with ape.reverts(registry.UnknownVersion):
        registry.deprecateVersion(model_id, 2, sender=model_owner)


def test_views__unknown__revert(registry, model_id):
    with ape.reverts(registry.UnknownModel):
        registry.getModel(b"\x07" * 32)
    with ape.reverts(registry.UnknownVersion):
        registry.getVersion(model_id, 0)
    with ape.reverts(registry.UnknownVersion):
        registry.terms(model_id, 1)
    assert registry.ownerOf(b"\x07" * 32) == ZERO


def test_ownership__two_step_transfer(registry, model_id, model_owner, dapp, challenger):
    with ape.reverts(registry.InvalidOwner):
        registry.transferModelOwnership(model_id, ZERO, sender=model_owner)
    with ape.reverts(registry.NotModelOwner):
        registry.transferModelOwnership(model_id, dapp, sender=dapp)
    registry.transferModelOwnership(model_id, dapp, sender=model_owner)
    with ape.reverts(registry.NotPendingOwner):
        registry.acceptModelOwnership(model_id, sender=challenger)
    with ape.reverts(registry.UnknownModel):
        registry.acceptModelOwnership(b"\x07" * 32, sender=dapp)
    receipt = registry.acceptModelOwnership(model_id, sender=dapp)
    assert receipt.events == [registry.ModelOwnershipTransferred(model_id, model_owner, dapp)]
    assert registry.ownerOf(model_id) == dapp.address
    with ape.reverts(registry.NotModelOwner):
        registry.publishVersion(model_id, version_params(), sender=model_owner)
