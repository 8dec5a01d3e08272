"""Execution classes with real relayers, one of them on another CPU class (qemu-user emulating an
AVX2+FMA3 x86-64 without AVX-512 on this AVX-512 machine): draws stay within a version's class, a
portable version is served by every class, and a relayer refuses a machine or a registration it cannot
honour."""

import dataclasses
import shutil
from typing import Any

import numpy as np
import pytest
from verinfer.chain.contracts import Status
from verinfer.models.agreement import Tolerance
from verinfer.models.calibrate import run_rows, run_under_qemu
from verinfer.models.codec import Tensor, encode_tensors
from verinfer.models.execution import NO_CLASS, PINNED, CpuClass, ExecutionClass
from verinfer.models.samples import digits_attention
from verinfer.models.spec import spec_from_onnx

from tests.conftest import next_epoch
from tests.e2e.conftest import direct_output, exact_features, features_input, settled, wait_for

CONSENSUS, ATTESTED = 1, 8
QEMU = shutil.which("qemu-x86_64") or "qemu-x86_64"  # `make test` installs Debian's qemu-user
EMULATED = (QEMU, "-cpu", "max")  # TCG's max x86-64: AVX2 and FMA3, no AVX-512
NO_FMA = (QEMU, "-cpu", "max,-fma")
HERE = ExecutionClass.current()
OTHER = dataclasses.replace(HERE, cpu=CpuClass.X86_64_FMA3)  # the emulated relayer's class


def test_emulated_cpu__relayer_reports_it_and_only_its_classes_draw_it(
    hub: Any,
    staking: Any,
    registry: Any,
    model_owner: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    relayers: Any,
    request_inference: Any,
) -> None:
    assert HERE.cpu == CpuClass.X86_64_AVX512, "this test needs an AVX-512 host to emulate another class"
    classed = publish(sample, execution_class=str(HERE))
    portable = (classed[0], _publish_portable(registry, model_owner, classed[0]))
    native = crew(classed[0], 2, class_id=HERE.class_id)
    emulated = crew(classed[0], 1, class_id=OTHER.class_id)[0]
    for op in [*native, emulated]:
        staking.register(classed[0], NO_CLASS, sender=op.account)
    next_epoch(staking)
    procs = [relayers(op) for op in native]
    slow = relayers(emulated, emulator=EMULATED, start=False).start()
    slow.wait_ready(timeout=180)
    assert f'"execution_class": "{OTHER}"' in slow.log_text()  # CPUID under qemu, not the host's flags

    x = sample.examples[:1]
    mine = [request_inference(classed, features_input(x), k=2) for _ in range(3)]
    everyone = request_inference(portable, features_input(x), k=3)
    wait_for(lambda: all(settled(hub, i) for i in [*mine, everyone]), 240, "settlement")
    expected = direct_output(sample.onnx, sample.decimals, exact_features(x))
    natives = sorted(op.account.address for op in native)
    for rid in mine:  # the class version: only this machine's class is drawn
        result = hub.getResult(rid)
        assert int(result.status) == Status.FINALIZED and bytes(result.output) == expected
        assert sorted(result.agreeing) == natives
    result = hub.getResult(everyone)  # the portable version: all three, the emulated CPU agreeing
    assert int(result.status) == Status.FINALIZED and bytes(result.output) == expected
    assert sorted(result.agreeing) == sorted([*natives, emulated.account.address])
    assert [slow.state(rid) for rid in mine] == ["not_member"] * 3
    for proc in [*procs, slow]:
        assert proc.stop() == 0


def _publish_portable(registry: Any, model_owner: Any, model_id: bytes) -> int:
    """Version 2 of the model: the same artifact, portable (the registry takes it once per class)."""
    v = registry.getVersion(model_id, 1)
    params = (
        v.artifactSha256,
        v.uris,
        v.tensorSpec,
        v.decimals,
        v.modes,
        v.fee,
        v.maxOutputBytes,
        v.verifier,
        "",
        v.toleranceUnits,
        v.tolerancePpm,
    )
    return int(registry.publishVersion(model_id, params, sender=model_owner).return_value)


def test_long_softmax_across_cpu_classes__tolerance_pays_everyone__exact_slashes_the_minority(
    hub: Any, staking: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    """digits-attention at 8 decimals, portable, on a committee of two AVX-512 relayers and one emulated
    AVX2+FMA3 relayer, on inputs where the classes compute different bytes: under a tolerance version
    the request settles and everyone is paid, nobody slashed, in consensus mode and in attested mode
    (where the emulated member shows its output after the settlement left its signature out); under an
    exact version the same disagreement is detected and the honest emulated member is slashed. With one
    member of each class (k = 2) there is no exact quorum: the two exchange outputs and settle with both."""
    assert HERE.cpu == CpuClass.X86_64_AVX512, "this test needs an AVX-512 host to emulate another class"
    sample = dataclasses.replace(digits_attention(), decimals=8)
    feeds = [{"features": exact_features(x[None])} for x in sample.examples]  # as relayers decode inputs
    names = [o.name for o in spec_from_onnx(sample.onnx).outputs]
    native_outputs = [_encoded(o, names) for o in run_rows(sample.onnx, feeds, PINNED)]
    _, emulated = run_under_qemu(QEMU, sample.onnx, feeds)
    differing = [i for i, o in enumerate(emulated) if _encoded(o, names) != native_outputs[i]]
    assert differing, "expected the CPU classes to differ at 8 decimals on some example"
    chosen = differing[:2]
    rule = Tolerance(200, 100)  # |a - b| <= 2e-6 + 1e-4 * |value| at 8 decimals
    tolerant = publish(sample, tolerance=(rule.units, rule.ppm), modes=CONSENSUS | ATTESTED)
    exact = publish(sample)
    pair = publish(sample, tolerance=(rule.units, rule.ppm), modes=ATTESTED)  # one native, the emulated
    native = crew(tolerant[0], 2)
    slow_op = crew(tolerant[0], 1)[0]
    members = [*native, slow_op]
    for op in members:
        staking.register(exact[0], NO_CLASS, sender=op.account)
    for op in (native[0], slow_op):
        staking.register(pair[0], NO_CLASS, sender=op.account)
    next_epoch(staking)
    # The natives wait for every signature before settling, so the emulated one is always in the settlement.
    for op in native:
        relayers(op, peers={"full_wait": 60.0})
    slow = relayers(slow_op, emulator=EMULATED, start=False, peers={}).start()
    slow.wait_ready(timeout=180)
    stakes = {op.account.address: int(staking.operatorInfo(op.account).stake) for op in members}

    def run(model: tuple[bytes, int], mode: int = CONSENSUS, k: int = 3) -> list[int]:
        rows = [features_input(sample.examples[i : i + 1]) for i in chosen]
        ids = [request_inference(model, row, k=k, mode=mode) for row in rows]
        wait_for(lambda: all(settled(hub, i) for i in ids), 300, "settlement")
        return ids

    for mode in (CONSENSUS, ATTESTED):
        ids = run(tolerant, mode)
        # The emulated member agrees within the rule: at settlement in consensus mode, by showing its
        # output in the late window (attestLateWithOutput) in attested mode.
        wait_for(lambda ids=ids: all(len(hub.getResult(i).agreeing) == 3 for i in ids), 120, "all agreeing")
        for rid, i in zip(ids, chosen, strict=True):
            result = hub.getResult(rid)
            assert int(result.status) == Status.FINALIZED
            assert bytes(result.output) == native_outputs[i]  # the two AVX-512 members' exact quorum
            assert sorted(result.agreeing) == sorted(stakes)
    # k = 2, one member per class: no two members signed one digest, so no exact quorum. The members
    # fetch each other's outputs and settle with both (settleWithOutputs): both paid.
    for rid, i in zip(run(pair, ATTESTED, k=2), chosen, strict=True):
        result = hub.getResult(rid)
        assert int(result.status) == Status.FINALIZED
        assert bytes(result.output) in (native_outputs[i], _encoded(emulated[i], names))
        assert sorted(result.agreeing) == sorted([native[0].account.address, slow_op.account.address])
    assert {a: int(staking.operatorInfo(a).stake) for a in stakes} == stakes

    for rid in run(exact):
        result = hub.getResult(rid)
        assert int(result.status) == Status.FINALIZED
        assert sorted(result.agreeing) == sorted(op.account.address for op in native)
    after = {a: int(staking.operatorInfo(a).stake) for a in stakes}
    assert after[slow_op.account.address] < stakes[slow_op.account.address]
    assert all(after[op.account.address] == stakes[op.account.address] for op in native)


def _encoded(outputs: dict[str, Any], names: list[str], decimals: int = 8) -> bytes:
    """One row's outputs as the protocol encodes them, in the model's output order."""
    return encode_tensors([Tensor.from_array(n, np.asarray(outputs[n]), decimals) for n in names])


def test_cpu_without_fma3__relayer_refuses_in_one_line(
    sample: Any, publish: Any, crew: Any, relayers: Any
) -> None:
    model = publish(sample)
    proc = relayers(crew(model[0], 1)[0], emulator=NO_FMA, start=False).start()
    assert proc.proc is not None
    assert proc.proc.wait(timeout=180) == 2
    proc.proc = None  # refused as it should: nothing left to stop
    errors = [line for line in proc.log_text().splitlines() if line.startswith("error:")]
    assert errors == [
        "error: unsupported x86-64 CPU: no FMA3; ONNX Runtime would use kernels that give other bits than "
        "every execution class (x86-64-fma3, x86-64-avx512)"
    ]


OLD_RUNTIME = dataclasses.replace(HERE, version="1.31.1")  # this CPU class on another ONNX Runtime


@pytest.mark.parametrize("other", [OTHER, OLD_RUNTIME], ids=["another-cpu-class", "another-runtime-version"])
def test_registered_for_another_class__relayer_refuses_to_start(
    staking: Any, deployer: Any, sample: Any, publish: Any, crew: Any, relayers: Any, other: ExecutionClass
) -> None:
    if not staking.classAllowed(other.class_id):  # the deployment lists only the pinned runtime's classes
        staking.setClassAllowed(other.machine, True, sender=deployer)
    model = publish(sample)
    op = crew(model[0], 1, class_id=other.class_id)[0]
    proc = relayers(op, start=False).start()
    assert proc.proc is not None
    assert proc.proc.wait(timeout=60) == 2
    assert f"but this machine is {HERE.machine}: deregister it" in proc.log_text()
    staking.deregister(model[0], other.class_id, sender=op.account)  # the fix it names
    proc.start().wait_ready()
    assert proc.stop() == 0
