"""How the sharded registry talks to Redis: batches of commands, each routed to the node that
owns its key, on a Redis Cluster or on one plain redis-server.

Measured (bench_registry_cluster; a lookup sends ~67 single-key commands): redis-py's
cluster pipeline spends ~25 us of client CPU per command finding its node, 1.8 ms a
lookup, where grouping the commands by node ourselves (the client's own slot table) and
sending one plain pipeline per node costs ~0.55 ms. When a node answers with a redirect
(MOVED/ASK during resharding or after a failover) or refuses the connection, the batch is
sent again through redis-py's cluster pipeline, which follows redirects and re-reads the
topology; every batch the registry sends may run twice (each step is idempotent).
"""

from __future__ import annotations

import hashlib
import threading

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from services.metadata.registry.base import RegistryUnavailable
from services.metadata.registry.redis_common import SOCKET_TIMEOUT_S, call

# Retries of a cluster call after a connection error, each after re-reading the topology
# (how a failover is followed); one, so an outage costs a lookup ~2 socket timeouts, not 4.
CLUSTER_RETRIES = 1
# Errors after which the topology may have changed: resend through the cluster pipeline.
# Not timeouts: a node that does not answer is down, and waiting again would double the
# time an Analyze spends on an unavailable registry.
_MOVED = (
    redis.exceptions.MovedError,
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ConnectionError,
)

Command = tuple  # ("GET", key), ("HGET", key, field), ("EXPIRE", key, s), ("EVALSHA", sha, nkeys, key, ...)


class Script:
    """A Lua script run by EVALSHA (by content hash: no script body on the wire)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys: list[bytes], args: list) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


def _key_of(command: Command) -> bytes:
    return command[3] if command[0] == "EVALSHA" else command[1]


class ShardedClient:
    def __init__(self, url: str, cluster: bool, scripts: list[Script]) -> None:
        self.url, self.cluster, self.scripts = url, cluster, scripts
        self._client: redis.Redis | RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> redis.Redis | RedisCluster:
        """Connected on first use: a cluster client reads the topology when it is made, and
        the service must start (registry NOT_SERVING) while Redis is down."""
        with self._lock:
            if self._client is None:
                options = dict(socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S)
                self._client = (
                    call(RedisCluster.from_url, self.url, retry=Retry(NoBackoff(), CLUSTER_RETRIES), **options)
                    if self.cluster
                    else redis.Redis.from_url(self.url, **options)
                )
            return self._client

    def run(self, commands: list[Command]) -> list:
        """The replies, in order; RegistryUnavailable when Redis cannot answer."""
        return call(self._run, commands, None) if commands else []

    def run_replicated(self, commands: list[Command], replicas: int, timeout_ms: int) -> tuple[list, int]:
        """run(), then `WAIT replicas timeout_ms` on each node's connection right after that
        node's commands, in the same pipeline (no extra round trip): (the replies, the fewest
        replicas that acknowledged them on any node). WAIT counts the replicas that have
        every write sent on ITS connection, so it must follow the writes on the same one."""
        if not commands:
            return [], replicas
        replies = call(self._run, commands, (replicas, timeout_ms))
        return replies[:-1], replies[-1]

    def _run(self, commands: list[Command], wait: tuple[int, int] | None) -> list:
        try:
            return self._send(commands, wait)
        except redis.exceptions.NoScriptError:
            # A node without the scripts: restarted, or a promoted replica (the script cache
            # is not replicated). Load them on every primary and run the batch again.
            for script in self.scripts:
                self.client.script_load(script.source)
            return self._send(commands, wait)

    def _send(self, commands: list[Command], wait: tuple[int, int] | None) -> list:
        """The replies, then (with wait) the fewest acknowledging replicas."""
        if not self.cluster:
            return _pipelined(self.client, commands, wait)
        try:
            return self._send_by_node(commands, wait)
        except _MOVED:
            replies = _pipelined(self.client, commands)  # redis-py's cluster pipeline
            if wait is None:
                return replies
            # Its pipeline may use any connection of a node, and a keyless WAIT has no node:
            # now that it has followed the redirect (and so updated the slot table), send the
            # batch again by node with its WAIT (every step is idempotent).
            return self._send_by_node(commands, wait)

    def _send_by_node(self, commands: list[Command], wait: tuple[int, int] | None) -> list:
        by_node: dict[str, tuple] = {}
        for position, command in enumerate(commands):
            node = self.client.get_node_from_key(_key_of(command))
            by_node.setdefault(node.name, (node, []))[1].append(position)
        replies = [None] * len(commands)
        acked = []
        for node, positions in by_node.values():
            got = _pipelined(self.client.get_redis_connection(node), [commands[p] for p in positions], wait)
            if wait is not None:
                acked.append(got.pop())
            for position, reply in zip(positions, got):
                replies[position] = reply
        return replies + [min(acked)] if wait is not None else replies

    def _per_primary(self, method: str, *args, marker: str) -> dict[str, dict]:
        """`method` (cluster_info, info) on every primary, as {node: reply}. redis-py returns
        the bare reply, not a dict per node, when there is one primary; `marker` is a field
        of that reply, which tells the two shapes apart."""
        replies = call(getattr(self.client, method), *args, target_nodes=RedisCluster.PRIMARIES)
        return {"the only primary": replies} if marker in replies else replies

    def ping(self) -> None:
        """Every primary must answer and see the cluster as ok: a registration writes to
        buckets on all of them, so one missing node fails registrations."""
        if not self.cluster:
            call(self.client.ping)
            return
        states = self._per_primary("cluster_info", marker="cluster_state")
        bad = [node for node, info in states.items() if info.get("cluster_state") != "ok"]
        if bad:
            raise RegistryUnavailable(f"redis cluster state not ok on {', '.join(sorted(bad))}")

    def require_replicas(self, count: int) -> None:
        """Every primary must have `count` connected replicas (INFO replication): with fewer,
        a WAIT for them cannot succeed and new images would answer unavailable one by one,
        so health says so up front instead of flapping with each refused registration."""
        infos = (
            {"the primary": call(self.client.info, "replication")}
            if not self.cluster
            else self._per_primary("info", "replication", marker="connected_slaves")
        )
        have = {node: int(info.get("connected_slaves", 0)) for node, info in infos.items()}
        short = ", ".join(f"{node} has {n}" for node, n in sorted(have.items()) if n < count)
        if short:
            raise RegistryUnavailable(f"registry_wait_replicas={count} but {short} connected replica(s)")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()


def _pipelined(client: redis.Redis, commands: list[Command], wait: tuple[int, int] | None = None) -> list:
    """One pipeline (one connection of a plain client); with wait, `WAIT replicas timeout_ms`
    goes last on that connection and its reply (replicas that acknowledged) ends the list."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    if wait is not None:
        pipe.execute_command("WAIT", *wait)
    return pipe.execute()
