"""Background processes the devnet owns: started detached, recorded by pid, stopped as a group."""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


class DevnetError(RuntimeError):
    """The devnet cannot be brought up, reached or taken down."""


@dataclass(frozen=True)
class Process:
    """A process the devnet started, in its own session so its whole group can be stopped."""

    name: str
    pid: int
    argv: tuple[str, ...]
    log: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "argv": list(self.argv)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Process":
        return cls(data["name"], int(data["pid"]), tuple(data["argv"]), data["log"])

    @property
    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _zombie(self.pid)


def _zombie(pid: int) -> bool:
    """True for an exited child not yet reaped (it still answers kill(pid, 0))."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: read its state from /proc
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
        except (OSError, IndexError):
            return False
    return waited == pid


def spawn(name: str, argv: Sequence[str], log: Path, env: dict[str, str], cwd: Path) -> Process:
    """Starts `argv` detached (new session), stdout and stderr to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise DevnetError(f"cannot start {name} ({argv[0]}): {exc.strerror}") from None
    return Process(name, proc.pid, tuple(argv), str(log))


def stop(process: Process, timeout: float = 15.0) -> bool:
    """SIGTERM to the process group, SIGKILL after `timeout`; True if it had to be killed."""
    if not process.alive:
        return False
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive:
            return False
        time.sleep(0.05)
    _signal_group(process.pid, signal.SIGKILL)
    while process.alive:
        time.sleep(0.05)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the session leader's pid is its group id
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def wait_http(url: str, process: Process, timeout: float, *, body: bytes | None = None) -> None:
    """Waits until `url` answers 200 (POSTing `body` if given); DevnetError if the process dies first."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not process.alive:
            raise DevnetError(f"{process.name} exited during start-up; see {process.log}")
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise DevnetError(
        f"{process.name} did not answer on {url} within {timeout:.0f}s ({last}); see {process.log}"
    )
