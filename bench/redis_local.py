"""A throw-away local Redis Cluster on free loopback ports, for the tests and the benchmarks.

`start_cluster` starts NODES `redis-server --cluster-enabled yes` processes (no persistence,
files in a work directory), joins them with `redis-cli --cluster create` (no replicas) and
waits until every node reports cluster_state:ok. `start_replica` adds a plain replica to a
plain redis-server (the sharded registry's WAIT). Missing tools or a cluster that does not
form raise RuntimeError with the reason; the caller decides how to fail.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import socket
import subprocess
import time

NODES = 3  # primaries: the smallest cluster `redis-cli --cluster create` accepts
NODE_TIMEOUT_MS = 2000  # cluster-node-timeout, ms: a dead node is marked failed after this
START_TIMEOUT_S = 20.0  # seconds for the nodes to answer and the cluster to report ok
POLL_S = 0.05  # seconds between readiness checks
ACK_PROBE_MS = 200  # ms each write-and-WAIT probe of a new replica may block
BUS_OFFSET = 10000  # a cluster node also listens on port + 10000 (the cluster bus)


@dataclasses.dataclass
class LocalCluster:
    ports: list[int]
    processes: list[subprocess.Popen | None]
    workdir: pathlib.Path
    server: str  # the redis-server binary

    @property
    def url(self) -> str:
        """A seed node; the cluster client discovers the others."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, index: int) -> None:
        """Starts node `index` (again): same port and directory, so it keeps its cluster
        identity and slots from nodes.conf (its data is gone: no persistence)."""
        node_dir = self.workdir / f"node-{self.ports[index]}"
        node_dir.mkdir(parents=True, exist_ok=True)
        self.processes[index] = subprocess.Popen(
            _node_command(self.server, self.ports[index], node_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop_node(self, index: int) -> None:
        proc = self.processes[index]
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def wait_ok(self, deadline: float) -> None:
        if not all(_wait(port, b"CLUSTER INFO", b"cluster_state:ok", deadline) for port in self.ports):
            raise RuntimeError("the local Redis Cluster did not reach cluster_state:ok")

    def move_slot(self, slot: int) -> int:
        """Moves a hash slot, with its keys, to the next node (as resharding does), telling
        only the two nodes involved: clients with the old slot table get MOVED. Returns the
        new owner's port."""
        import redis

        nodes = {port: redis.Redis(port=port) for port in self.ports}
        ids = {port: node.execute_command("CLUSTER MYID").decode() for port, node in nodes.items()}
        source = next(
            port
            for port, node in nodes.items()
            if node.execute_command("CLUSTER COUNTKEYSINSLOT", slot) or slot in _owned(node, ids[port])
        )
        target = self.ports[(self.ports.index(source) + 1) % len(self.ports)]
        nodes[target].execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source])
        nodes[source].execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target])
        keys = nodes[source].execute_command("CLUSTER GETKEYSINSLOT", slot, 1000)
        if keys:
            nodes[source].execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
        for port in (target, source):
            nodes[port].execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target])
        return target

    def stop(self) -> None:
        for index in range(len(self.processes)):
            self.stop_node(index)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_node_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too and below 65536."""
    while True:
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port


def _ask(port: int, command: bytes) -> bytes:
    """One inline command over a raw socket (no client library: this runs before any)."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        s.sendall(command + b"\r\n")
        return s.recv(65536)


def _wait(port: int, command: bytes, want: bytes, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            if want in _ask(port, command):
                return True
        except OSError:
            pass
        time.sleep(POLL_S)
    return False


def _acknowledges(primary_port: int, deadline: float) -> bool:
    """Whether a write on the primary gets acknowledged by a replica (WAIT 1) before the
    deadline: a link that is up is not always enough (start_replica)."""
    probe = b"SET __replica_probe__ 1\r\nDEL __replica_probe__\r\nWAIT 1 %d\r\n" % ACK_PROBE_MS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", primary_port), timeout=1.0) as s:
                s.sendall(probe)  # one connection: WAIT counts acks of ITS writes
                reply = b""
                while reply.count(b"\r\n") < 3:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            if reply.split(b"\r\n")[2:3] == [b":1"]:
                return True
        except OSError:
            time.sleep(POLL_S)
    return False


def _owned(node, node_id: str) -> set[int]:
    """The slots a node serves, from its CLUSTER SLOTS view."""
    return {
        slot
        for start, end, primary, *_ in node.execute_command("CLUSTER SLOTS")
        if primary[2].decode() == node_id
        for slot in range(start, end + 1)
    }


def _node_command(server: str, port: int, node_dir: pathlib.Path) -> list[str]:
    return [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        str(NODE_TIMEOUT_MS),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(node_dir),
    ]


def start_replica(primary_port: int, workdir: pathlib.Path) -> tuple[subprocess.Popen, int]:
    """A plain (non-cluster) redis-server replicating 127.0.0.1:primary_port, returned once
    its link is up (INFO replication: master_link_status:up) and it acknowledges writes
    (WAIT), with its port. RuntimeError when it does not come up.

    The primary is switched to disk-based sync (its files go to its own --dir): after a
    diskless sync (the default) the primary streams writes to the replica, and counts it
    for WAIT, only from the replica's first ACK, which its once-a-second cron sends; WAIT
    then failed for up to ~1 s after the link was up (measured: 0.96 s in 1 of 4 starts;
    disk-based: 12 of 12 acknowledged at once)."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is required: apt-get install redis-server")
    _ask(primary_port, b"CONFIG SET repl-diskless-sync no")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--replicaof",
            "127.0.0.1",
            str(primary_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    if not (
        _wait(port, b"INFO replication", b"master_link_status:up", deadline) and _acknowledges(primary_port, deadline)
    ):
        process.kill()
        process.wait(10)
        raise RuntimeError(f"the replica on port {port} did not sync with 127.0.0.1:{primary_port}")
    return process, port


def start_cluster(workdir: pathlib.Path, nodes: int = NODES) -> LocalCluster:
    """nodes >= 3: joined by redis-cli --cluster create; 1: one node given every slot (a
    cluster of one, for tests that stop and restart it)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise RuntimeError("redis-server and redis-cli are required: apt-get install redis-server redis-tools")
    cluster = LocalCluster([free_node_port() for _ in range(nodes)], [], workdir, server)
    try:
        for index in range(nodes):
            cluster.processes.append(None)
            cluster.start_node(index)
        deadline = time.monotonic() + START_TIMEOUT_S
        if not all(_wait(port, b"PING", b"+PONG", deadline) for port in cluster.ports):
            raise RuntimeError(f"redis-server did not start on ports {cluster.ports}")
        if nodes == 1:
            _ask(cluster.ports[0], b"CLUSTER ADDSLOTSRANGE 0 16383")
        else:
            created = subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in cluster.ports),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_S,
            )
            if created.returncode != 0:
                raise RuntimeError(
                    f"redis-cli --cluster create failed: {created.stdout[-500:]} {created.stderr[-500:]}"
                )
        cluster.wait_ok(deadline)
    except BaseException:
        cluster.stop()
        raise
    return cluster
