"""The registry sharded over Redis Cluster: one registry spread over every node.

The single-slot RedisRegistry does a registration in one Lua script, which needs every key
in one slot, so a registry lives on one node. Here every bucket has a hash tag of its own
(redis_cluster_layout.py) and a registration is a few small steps, each atomic in ONE slot:

  1. CLAIM, in the image's shard (by SHA-256): get-or-create the image id (per-shard INCR),
     store its verification record, and append the sighting (dedupe by identity, TTL
     prune), returning the prior sightings.
  2. new (or pending) image only: ADD its id to the pixel and unique-id buckets and its
     record to the band buckets of each of its views (reuse/views.py); each ADD returns that
     bucket's prior content. Wait for every ack. (A known image whose record CLAIM just
     stored, i.e. one registered before descriptors, ADDs its views other than the whole frame.)
  3. read every probed band bucket (and, for a known image, the exact buckets); confirm
     the new image (DONE).
  4. read the verification records of the near-duplicate candidates, then the sightings of
     the matches.
A lookup without registration is steps 3 and 4.

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

Failover: replication is asynchronous, so a failover can lose the tail of one node's writes
and not another's. Losing a shard counter's last INCR (and CLAIM's sighting) while index
entries naming that id survive on other nodes would let a re-issued id inherit them: a
possible WRONG match. So with wait_replicas (MetadataConfig.registry_wait_replicas) step 1
ends with `WAIT wait_replicas wait_timeout_ms` on the connection that ran CLAIM, in the
same pipeline (no extra round trip), and a pending id goes on to step 2 only once that
many replicas hold it, i.e. hold the counter and the sighting; a failover to one of them
keeps both. Not acknowledged in time: the lookup answers unavailable, the id stays pending
with no index entry, and the next registration of the file repairs it (as above). WAIT
narrows the hole but does not close it: Redis may still promote a replica that had not
acknowledged (Sentinel and Cluster prefer the most up to date one; ask for every replica
to make any of them safe). The single-slot layout needs no WAIT: one node loses a
consistent tail, never an id without the index entries written after it.
"""

from __future__ import annotations

import logging

from services.metadata.registry import bands
from services.metadata.registry.base import (
    Keys,
    Raw,
    Registry,
    RegistryUnavailable,
    decode_sightings,
    encode_sighting,
    identity_digest,
    unpack_ids,
)
from services.metadata.registry.model import Sighting
from services.metadata.registry.redis_cluster_client import Command, Script, ShardedClient
from services.metadata.registry.redis_cluster_layout import ADD, CLAIM, DONE, MAX_LOCAL, Layout, image_id, pack_id
from services.metadata.registry.redis_common import RECORD_KEYS, SOCKET_TIMEOUT_S, filled, split_records

log = logging.getLogger("imagetrust.metadata.registry")
# ms: how late a WAIT that runs out may answer. Redis expires blocked commands from its event
# loop, which wakes at least every 1000/hz ms (hz 10 by default): a 50 ms WAIT with the
# replica stopped answered after ~100 ms, a 100 ms one after ~230 ms (measured, Redis 7.0,
# a loaded 2-core machine); 200 ms covers two wake-ups.
WAIT_SLACK_MS = 200
_CLAIM, _ADD, _DONE = Script(CLAIM), Script(ADD), Script(DONE)


class RedisClusterRegistry(Registry):
    backend = "redis-cluster"

    def __init__(
        self,
        url: str,
        prefix: str = "imagetrust",
        ttl_s: int = 0,
        cluster: bool = True,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 50,
        **kwargs,
    ) -> None:
        """cluster=False: the same keys on one non-cluster redis-server (tests, migration).
        wait_replicas, wait_timeout_ms: see MetadataConfig.registry_wait_*; 0 replicas: no WAIT."""
        super().__init__(ttl_s, **kwargs)
        if wait_replicas < 0:
            raise ValueError("wait_replicas must be >= 0")
        longest = SOCKET_TIMEOUT_S * 1000 - WAIT_SLACK_MS
        if wait_replicas and not 0 < wait_timeout_ms < longest:
            # 0 would block while a replica is down; past the socket timeout the client gives up first.
            raise ValueError(
                f"wait_timeout_ms must be between 1 and {longest:.0f} ms: the WAIT, late by up to "
                f"{WAIT_SLACK_MS} ms, must end before the {SOCKET_TIMEOUT_S * 1000:.0f} ms socket timeout"
            )
        self.keys = Layout(prefix)
        self.redis = ShardedClient(url, cluster, [_CLAIM, _ADD, _DONE])
        self.wait_replicas, self.wait_timeout_ms = wait_replicas, wait_timeout_ms
        # Registrations refused because a new id was not replicated in time (read by tests
        # and by an operator's debugger; each one is also logged).
        self.unreplicated = 0

    @property
    def client(self):
        """The redis-py client (cluster or plain), for tools such as the bench's loader."""
        return self.redis.client

    def _register_and_lookup(self, keys: Keys, sighting: Sighting, register: bool, now: float) -> Raw:
        probes = [self.keys.band_key(b, v) for b, value, r in keys.probes for v in bands.probes(value, self.layout, r)]
        if not register:
            return self._read(keys, probes, own_id=0, known=None, confirm=None)
        value, prior, upgraded = self._claim(keys, sighting, now)
        own = image_id(self.keys.shard(keys.sha), abs(value))
        if value < 0:
            known = self._add_to_indexes(keys, own)
        else:
            known = None
            if upgraded:  # registered before descriptors: its other views, now (ADD is idempotent)
                self._add_views(keys, own, keys.first_view_writes)
        raw = self._read(keys, probes, own, known, confirm=value if value < 0 else None)
        raw.snapshot = {own: decode_sightings(prior)}
        raw.own_id = own
        return raw

    def _claim(self, keys: Keys, sighting: Sighting, now: float) -> tuple[int, bytes, int]:
        """Step 1: (signed local id, prior sightings, 1 if it stored the record of an image
        that had none). With wait_replicas, a pending id (new,
        or left pending by an earlier failure) is only returned once that many replicas hold
        it: else RegistryUnavailable, and the id stays pending for the next registration."""
        shard = self.keys.shard(keys.sha)
        claim = _CLAIM(
            [self.keys.sha_key(keys.sha), self.keys.counter(shard)],
            [
                keys.sha[2:],
                encode_sighting(sighting),
                identity_digest(sighting),
                self.ttl_s,
                int(now),
                self.keys.sightings_head(shard),
                MAX_LOCAL,
                keys.descriptor,
                self.keys.shard_head(shard),
            ],
        )
        if not self.wait_replicas:
            (reply,) = self.redis.run([claim])
            return int(reply[0]), reply[1], int(reply[2])
        # WAIT after every CLAIM, in its pipeline: no extra round trip, and CLAIM always writes
        # (at least the sighting), so WAIT covers it. Only a pending id needs the ack: step 2
        # is about to name it in indexes on other nodes. A known id was acknowledged when it
        # was created; losing this sighting in a failover is a missed match, not a wrong one.
        (reply,), acked = self.redis.run_replicated([claim], self.wait_replicas, self.wait_timeout_ms)
        value = int(reply[0])
        if value < 0 and acked < self.wait_replicas:
            self.unreplicated += 1
            error = (
                f"replication to {self.wait_replicas} replica(s) not acknowledged within "
                f"{self.wait_timeout_ms} ms ({acked} did)"
            )
            log.warning("registry id not replicated: left pending", extra={"error": error})
            raise RegistryUnavailable(error)
        return value, reply[1], int(reply[2])

    def _add_to_indexes(self, keys: Keys, own: int) -> dict[str, object]:
        """Step 2: the new image's exact and band entries, each returning what was there."""
        packed = pack_id(own)
        commands = [_ADD([self.keys.pixel_key(keys.pixels)], [packed, self.ttl_s, keys.pixels[2:]])]
        if keys.unique_id:
            commands.append(_ADD([self.keys.unique_id_key(keys.unique_id)], [packed, self.ttl_s, keys.unique_id[2:]]))
        commands += self._view_commands(keys, packed, 0)
        replies = self.redis.run(commands)
        uid = replies[1] if keys.unique_id else b""
        return {"pixels": replies[0], "unique_id": uid}

    def _view_commands(self, keys: Keys, packed: bytes, first: int) -> list[Command]:
        return [
            _ADD([self.keys.band_key(b, value)], [packed + view, self.ttl_s, b""])
            for b, value, view in keys.writes[first:]
        ]

    def _add_views(self, keys: Keys, own: int, first: int) -> None:
        self.redis.run(self._view_commands(keys, pack_id(own), first))

    def _read(self, keys: Keys, probes: list[bytes], own_id: int, known: dict | None, confirm: int | None) -> Raw:
        """Step 3: every probed band bucket (after step 2's writes, so the store-buffer
        argument above holds; this image's own records are dropped as candidates). known:
        what step 2 returned (it read the exact buckets); None reads them here too.
        confirm: the pending value to confirm."""
        exact = known is None
        wanted = probes
        commands: list[Command] = []
        if exact:
            commands += [
                ("HGET", self.keys.sha_key(keys.sha), keys.sha[2:]),
                ("HGET", self.keys.pixel_key(keys.pixels), keys.pixels[2:]),
            ]
            if keys.unique_id:
                commands.append(("HGET", self.keys.unique_id_key(keys.unique_id), keys.unique_id[2:]))
        first_probe = len(commands)
        commands += [("GET", k) for k in wanted]
        if confirm is not None:
            commands.append(_DONE([self.keys.sha_key(keys.sha)], [keys.sha[2:], str(confirm).encode()]))
        elif own_id and self.ttl_s > 0:  # a known image registered again: keep its entries alive
            commands += self._refresh(keys)
        replies = self.redis.run(commands)
        blobs = replies[first_probe : first_probe + len(wanted)]
        if exact:
            pixels, uid = replies[1], (replies[2] if keys.unique_id else b"")
            if replies[0] and not own_id:  # a local id, negative while pending
                own_id = image_id(self.keys.shard(keys.sha), abs(int(replies[0])))
        else:
            pixels, uid = known["pixels"], known["unique_id"]
        ids, hashes = split_records(b"".join(b for b in blobs if b), len(keys.perceptual))
        return Raw(
            sha_ids=[own_id] if own_id else [],
            pixel_ids=unpack_ids(pixels),
            unique_id_ids=unpack_ids(uid),
            candidate_ids=ids,
            candidate_hashes=hashes,
        )

    def _refresh(self, keys: Keys) -> list[Command]:
        buckets = [self.keys.pixel_key(keys.pixels), *(self.keys.band_key(b, v) for b, v, _h in keys.writes)]
        if keys.unique_id:
            buckets.append(self.keys.unique_id_key(keys.unique_id))
        return [("EXPIRE", key, self.ttl_s) for key in buckets]

    def _sightings(self, ids: list[int]) -> dict[int, list[Sighting]]:
        """Step 4."""
        blobs = self.redis.run([("HGET", *self.keys.sightings_slot(i)) for i in ids])
        return {image_id_: decode_sightings(blob or b"") for image_id_, blob in zip(ids, blobs)}

    def _descriptors(self, ids: list[int]) -> dict[int, bytes]:
        return self._details(ids, [])[0]

    def _details(
        self, record_ids: list[int], sighting_ids: list[int]
    ) -> tuple[dict[int, bytes], dict[int, list[Sighting]]]:
        """Step 4: records and sightings in one pipeline per node."""
        commands: list[Command] = []
        for image_id_ in record_ids:  # both versions' slots: an image has one of them filled
            for size in RECORD_KEYS:
                key, index = self.keys.descriptor_slot(image_id_, size)
                commands.append(("GETRANGE", key, index * size, (index + 1) * size - 1))
        commands += [("HGET", *self.keys.sightings_slot(i)) for i in sighting_ids]
        replies = self.redis.run(commands)
        n = len(RECORD_KEYS)
        blobs = replies[len(record_ids) * n :]
        return (
            {
                image_id_: next((r for r in replies[i * n : i * n + n] if filled(r)), b"")
                for i, image_id_ in enumerate(record_ids)
            },
            {image_id_: decode_sightings(blob or b"") for image_id_, blob in zip(sighting_ids, blobs)},
        )

    def ping(self) -> None:
        self.redis.ping()
        if self.wait_replicas:
            self.redis.require_replicas(self.wait_replicas)

    def close(self) -> None:
        self.redis.close()
