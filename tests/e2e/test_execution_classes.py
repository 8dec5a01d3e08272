"""Execution classes with real relayers, one of them on another CPU class (qemu-user emulating an
AVX2+FMA3 x86-64 without AVX-512 on this AVX-512 machine): draws stay within a version's class, a
portable version is served by every class, and a relayer refuses a machine or a registration it cannot
honour."""

import dataclasses
import shutil
from typing import Any

from verinfer.chain.contracts import Status
from verinfer.models.execution import NO_CLASS, CpuClass, ExecutionClass

from tests.conftest import next_epoch
from tests.e2e.conftest import direct_output, exact_features, features_input, settled, wait_for

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
    )
    return int(registry.publishVersion(model_id, params, sender=model_owner).return_value)


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


def test_registered_for_another_class__relayer_refuses_to_start(
    staking: Any, sample: Any, publish: Any, crew: Any, relayers: Any
) -> None:
    model = publish(sample)
    op = crew(model[0], 1, class_id=OTHER.class_id)[0]
    proc = relayers(op, start=False).start()
    assert proc.proc is not None
    assert proc.proc.wait(timeout=60) == 2
    assert f"but this machine is {HERE.machine}: deregister it" in proc.log_text()
    staking.deregister(model[0], OTHER.class_id, sender=op.account)  # the fix it names
    proc.start().wait_ready()
    assert proc.stop() == 0
