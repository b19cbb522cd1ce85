"""The registry sharded over Redis Cluster: one registry spread over every node.

The single-slot RedisRegistry does a registration in one Lua script, which needs every key
in one slot, so a registry lives on one node. Here every bucket has a hash tag of its own
(redis_cluster_layout.py) and a registration is a few small steps, each atomic in ONE slot:

  1. CLAIM, in the image's shard (by SHA-256): get-or-create the image id (per-shard INCR)
     and append the sighting (dedupe by identity, TTL prune), returning the prior sightings.
  2. new image only: ADD its id to the pixel and unique-id buckets and its record to its 4
     own band buckets; each ADD returns that bucket's prior content. Wait for every ack.
  3. read the other 60 probed band buckets (and, for a known image, the exact buckets);
     confirm the new image (DONE).
  4. read the sightings of the verified matches.
A lookup without registration is steps 3 and 4 (every exact bucket and all 64 probes).

Why this is enough (each Redis key is linearizable: one primary orders its commands, and
an acknowledged write is seen by every later read of that key):
- Same bytes: two replicas registering the same file run CLAIM on the same key, which
  Redis serialises: ONE image id, and each sees exactly the sightings committed before its
  own (the single-slot guarantee; tests/registry/test_contract.py checks it).
- Same pixels or ImageUniqueID with other bytes (two images): both ADD to the same bucket
  field, serialised: the later one sees the earlier one's id.
- Near duplicates A and B with a band within the probe radius: A writes its band record
  (key kA) and waits for the ack before it reads kB; B likewise. If A's read of kB missed
  B's write, then write_A(kA) < read_A(kB) < write_B(kB) < read_B(kA), so B sees A: at
  least one of them sees the other (the store-buffer argument; when kA = kB the ADD itself
  serialises them). Unlike the single-slot script, BOTH may see each other when they
  overlap in time, so both may be flagged (each the other's prior seller).
- A match is only ever shown with a sighting: step 1 writes the sighting before step 2
  publishes the id in any index, so whoever finds the id through an index finds its
  sighting too.

Failure between steps (Redis or the replica dies, a timeout): the lookup answers
available=false, and what is left is:
- after 1: the sighting and a PENDING same-bytes entry, no index entries. Same-bytes
  lookups find it; near copies, same pixels and same unique id do not (a missed match,
  never a false one) until the same file is registered again: CLAIM returns the pending
  entry and that registration writes the index entries (ADD is idempotent) and confirms.
- during 2: some index entries; the rest follows as above.
- an id in an index with no sighting (its sightings expired, or lost in a failover, as
  Redis replication is asynchronous): it yields no match.
A failover that loses the tail of one node's writes can also roll back a shard counter
while index entries naming the lost ids survive on other nodes; a re-issued id would then
inherit them (a possible wrong match, the replication lag wide). The single-slot layout
cannot split like that: one node loses a consistent tail.
"""

from __future__ import annotations

import hashlib
import threading

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from services.metadata.registry import bands
from services.metadata.registry.base import (
    Keys, Raw, Registry, RegistryUnavailable, decode_sightings, encode_sighting, identity_digest, unpack_ids,
)
from services.metadata.registry.model import Sighting
from services.metadata.registry.redis_cluster_layout import ADD, CLAIM, DONE, MAX_LOCAL, Layout, image_id, pack_id
from services.metadata.registry.redis_common import SOCKET_TIMEOUT_S, call, split_records

# Retries of a cluster call after a connection error, each after re-reading the topology
# (how a failover is followed); one, so an outage costs a lookup ~2 socket timeouts, not 4.
CLUSTER_RETRIES = 1
_SCRIPTS = {name: (src, hashlib.sha1(src.encode()).hexdigest()) for name, src in
            (("claim", CLAIM), ("add", ADD), ("done", DONE))}


class RedisClusterRegistry(Registry):
    backend = "redis-cluster"

    def __init__(self, url: str, prefix: str = "imagetrust", ttl_s: int = 0, cluster: bool = True, **kwargs) -> None:
        """cluster=False: the same keys on one non-cluster redis-server (tests, migration)."""
        super().__init__(ttl_s, **kwargs)
        self.url, self.cluster = url, cluster
        self.keys = Layout(prefix)
        self._client: redis.Redis | RedisCluster | None = None
        self._lock = threading.Lock()

    # --- connection ------------------------------------------------------------------------
    @property
    def client(self) -> redis.Redis | RedisCluster:
        """Connected on first use: a cluster client reads the topology when it is made, and
        the service must start (registry NOT_SERVING) while Redis is down."""
        with self._lock:
            if self._client is None:
                options = dict(socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S)
                self._client = call(RedisCluster.from_url, self.url, retry=Retry(NoBackoff(), CLUSTER_RETRIES),
                                    **options) if self.cluster else redis.Redis.from_url(self.url, **options)
            return self._client

    def _run(self, fill) -> list:
        """Runs the commands fill(pipeline) queues, in one round trip per node."""
        return call(self._execute, fill)

    def _execute(self, fill) -> list:
        """Scripts go by EVALSHA; a node that lacks them (restarted, or a promoted replica:
        the script cache is not replicated) gets them loaded and the step runs again, which
        every step allows (each is idempotent)."""
        try:
            return self._filled(fill).execute()
        except redis.exceptions.NoScriptError:
            for src, _sha in _SCRIPTS.values():
                self.client.script_load(src)  # to every primary in a cluster
            return self._filled(fill).execute()

    def _filled(self, fill):
        pipe = self.client.pipeline(transaction=False)
        fill(pipe)
        return pipe

    @staticmethod
    def _eval(pipe, name: str, keys: list[bytes], args: list) -> None:
        # execute_command, not pipe.evalsha: redis-py blocks the evalsha method in cluster
        # pipelines (it cannot load scripts there); the command itself routes by its keys,
        # and _execute loads missing scripts.
        pipe.execute_command("EVALSHA", _SCRIPTS[name][1], len(keys), *keys, *args)

    # --- the steps -------------------------------------------------------------------------
    def _register_and_lookup(self, keys: Keys, sighting: Sighting, register: bool, now: float) -> Raw:
        probes = [[self.keys.band_key(b, v) for v in bands.probes(value, self.layout)]
                  for b, value in enumerate(keys.bands)]
        if not register:
            return self._read(keys, probes, own_id=0, known=None, confirm=None)
        value, prior = self._claim(keys, sighting, now)
        own = image_id(self.keys.shard(keys.sha), abs(value))
        known = self._add_to_indexes(keys, own) if value < 0 else None
        raw = self._read(keys, probes, own, known, confirm=value if value < 0 else None)
        raw.snapshot = {own: decode_sightings(prior)}
        return raw

    def _claim(self, keys: Keys, sighting: Sighting, now: float) -> tuple[int, bytes]:
        shard = self.keys.shard(keys.sha)
        reply = self._run(lambda p: self._eval(p, "claim", [self.keys.sha_key(keys.sha), self.keys.counter(shard)], [
            keys.sha[2:], encode_sighting(sighting), identity_digest(sighting), self.ttl_s, int(now),
            self.keys.sightings_head(shard), MAX_LOCAL]))[0]
        return int(reply[0]), reply[1]

    def _add_to_indexes(self, keys: Keys, own: int) -> dict[str, object]:
        """Step 2: the new image's exact and band entries, each returning what was there."""
        packed = pack_id(own)

        def fill(p) -> None:
            self._eval(p, "add", [self.keys.pixel_key(keys.pixels)], [packed, self.ttl_s, keys.pixels[2:]])
            if keys.unique_id:
                self._eval(p, "add", [self.keys.unique_id_key(keys.unique_id)], [packed, self.ttl_s, keys.unique_id[2:]])
            for b, value in enumerate(keys.bands):
                self._eval(p, "add", [self.keys.band_key(b, value)], [packed + keys.perceptual, self.ttl_s, b""])

        replies = self._run(fill)
        uid = [replies[1]] if keys.unique_id else []
        return {"pixels": replies[0], "unique_id": uid[0] if uid else b"", "own_bands": replies[1 + len(uid):]}

    def _read(self, keys: Keys, probes: list[list[bytes]], own_id: int, known: dict | None, confirm: int | None) -> Raw:
        """Step 3. known: what step 2 returned (the exact buckets and own band buckets were
        read by it); None reads them here too. confirm: the pending value to confirm."""
        wanted = [k for band in probes for k in (band[1:] if known is not None else band)]
        exact = known is None

        def fill(p) -> None:
            if exact:
                p.hget(self.keys.sha_key(keys.sha), keys.sha[2:])
                p.hget(self.keys.pixel_key(keys.pixels), keys.pixels[2:])
                if keys.unique_id:
                    p.hget(self.keys.unique_id_key(keys.unique_id), keys.unique_id[2:])
            for k in wanted:
                p.get(k)
            if confirm is not None:
                self._eval(p, "done", [self.keys.sha_key(keys.sha)], [keys.sha[2:], str(confirm).encode()])
            elif own_id and self.ttl_s > 0:  # a known image registered again: keep its entries alive
                self._refresh(p, keys)

        replies = self._run(fill)
        if exact:
            sha_value, pixels = replies[0], replies[1]
            uid = replies[2] if keys.unique_id else b""
            blobs = replies[2 + bool(keys.unique_id):][:len(wanted)]
            if sha_value and not own_id:  # a local id, negative while pending
                own_id = image_id(self.keys.shard(keys.sha), abs(int(sha_value)))
        else:
            pixels, uid = known["pixels"], known["unique_id"]
            blobs = [*known["own_bands"], *replies[:len(wanted)]]
        ids, hashes = split_records(b"".join(b for b in blobs if b), len(keys.perceptual))
        return Raw(sha_ids=[own_id] if own_id else [], pixel_ids=unpack_ids(pixels), unique_id_ids=unpack_ids(uid),
                   candidate_ids=ids, candidate_hashes=hashes)

    def _refresh(self, p, keys: Keys) -> None:
        p.expire(self.keys.pixel_key(keys.pixels), self.ttl_s)
        if keys.unique_id:
            p.expire(self.keys.unique_id_key(keys.unique_id), self.ttl_s)
        for b, value in enumerate(keys.bands):
            p.expire(self.keys.band_key(b, value), self.ttl_s)

    def _sightings(self, ids: list[int]) -> dict[int, list[Sighting]]:
        slots = [self.keys.sightings_slot(i) for i in ids]
        blobs = self._run(lambda p: [p.hget(key, field) for key, field in slots])
        return {image_id_: decode_sightings(blob or b"") for image_id_, blob in zip(ids, blobs)}

    # --- health ----------------------------------------------------------------------------
    def ping(self) -> None:
        """Every primary must answer and see the cluster as ok: a registration writes to
        buckets on all of them, so one missing node fails registrations."""
        if not self.cluster:
            call(self.client.ping)
            return
        states = call(self.client.cluster_info, target_nodes=RedisCluster.PRIMARIES)
        if "cluster_state" in states:  # one primary: redis-py returns its reply, not a dict per node
            states = {"the only primary": states}
        bad = [node for node, info in states.items() if info.get("cluster_state") != "ok"]
        if bad:
            raise RegistryUnavailable(f"redis cluster state not ok on {', '.join(sorted(bad))}")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
