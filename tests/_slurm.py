"""A real single-node Slurm for tests: munged, slurmctld and slurmd on 127.0.0.1, in a temp dir.

Installs nothing (``.ci/run`` installs Debian's ``slurm-wlm`` and ``munge``). The daemons run as
this user's children with a generated ``slurm.conf`` (cgroup-free: ``proctrack/linuxproc``,
``task/none``; ``select/cons_tres``; this machine's CPUs and memory) on free ports, a munge
socket and key of their own, so nothing of a system Slurm is touched. Tests that need it get
``SLURM_CONF`` set and are skipped, with the reason, where it cannot start (not installed, not
root, a daemon that does not come up).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _memory_mb() -> int:
    with open("/proc/meminfo", encoding="ascii") as fh:
        kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    return max(kb // 1024 - 1024, 512)


def slurm_conf(root: Path, node: str) -> str:
    ctld_port, slurmd_port = _free_ports(2)
    cpus = os.cpu_count() or 1
    return f"""\
ClusterName=hpotest
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SwitchType=switch/none
KillWait=3
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_memory_mb()} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def why_not() -> str | None:
    """Why a local Slurm cannot be started here, or None."""
    missing = [d for d in _DAEMONS if shutil.which(d) is None]
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} missing); install Debian's "
            "slurm-wlm and munge (apt-get install slurm-wlm munge), as .ci/run does"
        )
    if os.geteuid() != 0:
        return "the local Slurm for tests runs its daemons as root; run the tests as root"
    return None


class LocalSlurm:
    """The running daemons; ``env`` holds ``SLURM_CONF`` for the Slurm commands."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, timeout_s: float = 30.0) -> None:
        root = self.root
        for d in ("state", "spool", "log"):
            (root / d).mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # munged wants the socket's directory searchable by all
        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text(slurm_conf(root, self.node))
        self._spawn(
            [
                *("munged", "-F", "-f", f"--socket={root}/munge.sock", f"--key-file={key}"),
                *(f"--pid-file={root}/munged.pid", f"--seed-file={root}/munged.seed"),
                f"--log-file={root}/log/munged.log",
            ]
        )
        self._wait(lambda: (root / "munge.sock").exists(), 10, "munged")
        self._spawn(["slurmctld", "-D", "-c", "-f", str(self.conf)])
        self._spawn(["slurmd", "-D", "-f", str(self.conf)])
        self._wait(self.idle, timeout_s, "slurmctld/slurmd (the node never became idle)")

    def _spawn(self, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{cmd[0]}.out", "wb")  # noqa: SIM115 -- kept with the process
        self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def _wait(self, ready: object, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():  # type: ignore[operator]
            dead = [p.args[0] for p in self.procs if p.poll() is not None]  # type: ignore[index]
            if dead or time.monotonic() > deadline:
                logs = sorted((self.root / "log").glob("*"))
                tail = " | ".join(
                    f.name + ": " + " / ".join(f.read_text(errors="replace").splitlines()[-3:])
                    for f in logs
                )
                raise RuntimeError(f"{what} did not start ({dead or 'timeout'}): {tail}")
            time.sleep(0.2)

    def idle(self) -> bool:
        out = self.run("sinfo", "-h", "-o", "%t", check=False)
        return out.strip() == "idle"

    def run(self, *cmd: str, check: bool = True) -> str:
        """Run a Slurm command against this cluster; its stdout."""
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def stop(self) -> None:
        if self.procs:
            self.run("scancel", "--user=root", check=False)  # jobs first, then the daemons
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()


@contextmanager
def local_slurm() -> Iterator[LocalSlurm]:
    """Start a local Slurm for the block (skips the test where it cannot).

    Its files live in a short temp dir (a munge socket path must stay under 108 bytes).
    """
    reason = why_not()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="hpo-slurm-"))
    cluster = LocalSlurm(root)
    try:
        cluster.start()
    except RuntimeError as exc:
        cluster.stop()
        pytest.skip(f"the local Slurm did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
