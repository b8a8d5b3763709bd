"""Several real hosts on one machine: network namespaces joined by veth links to a bridge.

Each host is a network namespace of its own with one address on 10.213.0.0/24 and its own
hostname (every command runs under ``unshare --uts`` with ``hostname`` set first, and the
namespace's ``/etc/hosts`` names all hosts). The bridge sits in a fourth "switch" namespace,
so the root namespace has no link to them: no traffic leaves the namespaces (no route out, no
forwarding) and the hosts reach each other only. They share this machine's filesystem: a path
there is the shared filesystem every host mounts. Everything is made by the fixture and torn
down after the test, also when it fails: the processes in the namespaces are killed (by their
ids, from ``ip netns pids``), then the namespaces and their ``/etc/netns`` files removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from _sweep_helpers import kill_until_gone

SUBNET = "10.213.0"  # only ever inside the namespaces the fixture makes
ETC_NETNS = Path("/etc/netns")  # /etc/netns/<ns>/hosts: each host's /etc/hosts


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def namespaces_unavailable() -> str | None:
    """Why this machine cannot make network namespaces, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    for tool in ("ip", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command (Debian: apt-get install -y iproute2 util-linux)"
    return None


@dataclass
class Host:
    """One host: a network namespace, its address and hostname."""

    name: str  # its hostname
    netns: str
    address: str
    # A /tmp of its own (as a real host has), this folder mounted there; the shared folders
    # under /tmp stay the machine's (see Network.node_local_tmp). None: the machine's /tmp.
    local_tmp: Path | None = None
    shared: tuple[Path, ...] = ()

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run on this host: in its network namespace, under its hostname, with its
        ``/etc/hosts`` (bound in a mount namespace of its own; unlike ``ip netns exec``, which
        also mounts a fresh /sys without cgroups, which slurmd needs)."""
        steps = ['hostname "$0"', f"mount --bind {ETC_NETNS / self.netns / 'hosts'} /etc/hosts"]
        if self.local_tmp is not None:
            for path in self.shared:  # first into the host's own /tmp, then that over /tmp
                inside = self.local_tmp / path.relative_to("/tmp")
                steps += [f"mkdir -p {inside}", f"mount --bind {path} {inside}"]
            steps.append(f"mount --rbind {self.local_tmp} /tmp")
        script = " && ".join([*steps, 'exec "$@"'])
        enter = ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--uts", "--mount"]
        return [*enter, "sh", "-c", script, self.name, *argv]

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), **kwargs)

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.command(argv), **kwargs)

    def pids(self) -> list[int]:
        """The processes in this host's namespace (all of them started by the test)."""
        done = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True,
                              timeout=30)
        return [int(p) for p in done.stdout.split() if p.isdigit() and int(p) != os.getpid()]

    def kill_all(self, *, timeout: float = 30) -> None:
        """SIGKILL every process on this host (a host that lost power); wait until none is left."""
        kill_until_gone(self.pids, f"host {self.name}", timeout=timeout)

    def listening(self, address: str, port: int) -> bool:
        """Whether ``address:port`` accepts a TCP connection from this host."""
        probe = f"exec 3<>/dev/tcp/{address}/{port}"
        return self.run(["bash", "-c", probe], timeout=30).returncode == 0


@dataclass
class Network:
    """The hosts and the switch namespace holding their bridge."""

    tag: str
    hosts: list[Host] = field(default_factory=list)
    made_etc: bool = False  # whether /etc/netns was made here (and goes when empty)

    @property
    def switch(self) -> str:
        return f"{self.tag}-sw"

    def build(self, n: int) -> None:
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i in range(n):
            host = Host(f"{self.tag}-h{i}", f"{self.tag}-h{i}", f"{SUBNET}.{i + 1}")
            self.hosts.append(host)
            _ip("netns", "add", host.netns)
            port = f"p{i}"
            _ip("-n", host.netns, "link", "add", "eth0", "type", "veth",
                "peer", "name", port, "netns", self.switch)
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
        self.made_etc = not ETC_NETNS.exists()
        hosts = "127.0.0.1 localhost\n" + "".join(f"{h.address} {h.name}\n" for h in self.hosts)
        for host in self.hosts:
            (ETC_NETNS / host.netns).mkdir(parents=True, exist_ok=True)
            (ETC_NETNS / host.netns / "hosts").write_text(hosts)

    def node_local_tmp(self, root: Path, shared: list[Path]) -> None:
        """Give every host a /tmp of its own (``root/<host>``), as on a real cluster where Ray's
        temporary folders and sockets are node-local, keeping the folders under /tmp that hold
        what all hosts share (``shared``: the test's storage, data, Slurm's files) the machine's."""
        under = [p.relative_to("/tmp") for p in shared if p.is_relative_to("/tmp")]
        tops = sorted({Path("/tmp", p.parts[0]) for p in under})
        for host in self.hosts:
            host.local_tmp, host.shared = root / host.name, tuple(tops)
            host.local_tmp.mkdir(parents=True, exist_ok=True)
            host.local_tmp.chmod(0o1777)

    def teardown(self) -> None:
        """Kill what runs on the hosts, delete the namespaces and their /etc/netns files."""
        for host in self.hosts:
            try:
                host.kill_all()
            except AssertionError:
                pass
        for netns in [h.netns for h in self.hosts] + [self.switch]:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)
            shutil.rmtree(ETC_NETNS / netns, ignore_errors=True)
        if self.made_etc:
            with contextlib.suppress(OSError):  # not empty: another test's hosts use it
                ETC_NETNS.rmdir()


@pytest.fixture
def three_hosts():
    """Three hosts (``Network.hosts``) on a bridge; skipped with the reason where namespaces
    cannot be made here."""
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    network = Network(f"am{os.getpid() % 100000}")
    try:
        try:
            network.build(3)
        except subprocess.CalledProcessError as exc:
            command = " ".join(exc.cmd)
            pytest.skip(f"cannot make network namespaces here: {command}: {exc.stderr.strip()}")
        yield network
    finally:
        network.teardown()
