"""What the two Redis backends share: client settings, error mapping, the Lua that appends
a sighting, and the decoding of band-bucket records.

RedisRegistry (one slot per registry, redis_backend.py) and RedisClusterRegistry (sharded
over slots, redis_cluster_backend.py) store sightings, band records and id lists in the
same binary formats, so a record written by either reads the same, and the sightings
append (dedupe by identity, TTL prune) is one piece of Lua pasted into both scripts.
"""

from __future__ import annotations

import numpy as np
import redis

from services.metadata.registry.base import ID_BYTES, RegistryUnavailable
from services.metadata.reuse.descriptor import record_bytes

SIGHTING_BUCKET = 128  # image ids per sightings hash: the listpack limit of hash-max-listpack-entries
# Verification records (reuse/descriptor.py) per record string, each at offset
# (id % per key) * size: just under jemalloc's 32 KiB size class (2 % slack); one key per
# image would cost a ~60-byte key and an allocation each. Each record version has strings
# of its own (key letter), so records of both sizes sit at computed offsets: version 1
# (684 B, 20 keypoints) 47 per 'd' string (32,148 B), version 2 (548 B, 16 keypoints, what
# registrations write now) 59 per 'e' string (32,332 B). An image has a record of one
# version at most: a lookup reads both of its slots and uses the one that is filled.
DESCRIPTORS_PER_KEY = 47  # version 1
RECORD_KEYS: dict[int, tuple[bytes, int]] = {  # record size -> (key letter, records per string), newest first
    record_bytes(2): (b"e", 59),
    record_bytes(1): (b"d", DESCRIPTORS_PER_KEY),
}
V1_BYTES, V2_BYTES = record_bytes(1), record_bytes(2)


def filled(record: bytes | None) -> bool:
    """Whether a record slot read back holds a record (absent or zero bytes: none)."""
    return bool(record) and record[0] != 0  # type: ignore[index]


def lua_records(source: str) -> str:
    """The record constants of a script: V1B/V2B sizes, DPK/EPK records per string."""
    return (
        source.replace("V1B", str(V1_BYTES))
        .replace("V2B", str(V2_BYTES))
        .replace("DPK", str(RECORD_KEYS[V1_BYTES][1]))
        .replace("EPK", str(RECORD_KEYS[V2_BYTES][1]))
    )


SOCKET_TIMEOUT_S = 0.5  # seconds; a dead Redis must not stall Analyze past its budget

# Lua shared by every script: `touch` refreshes the retention TTL of a written key, and
# `add_sighting` appends a sighting record (see base.encode_sighting: identity digest 8 B,
# time u32, length u16, payload) to a hash field unless a record with the same identity
# digest is there, dropping records older than the TTL. It returns the field as it was
# before, i.e. the prior sightings this registration is compared with.
LUA_HELPERS = r"""
local function touch(key, ttl)
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
-- Writes a fixed-size record at slot `index` of a string of such records (zero-padded up to
-- it), unless a record is there already (first byte non-zero). Returns 1 when it wrote.
local function put_record(key, index, record, ttl)
  local old = redis.call('GET', key) or ''
  local size = #record
  local at = index * size
  if #old > at and string.byte(old, at + 1) ~= 0 then return 0 end
  if #old < at then old = old .. string.rep('\0', at - #old) end
  redis.call('SET', key, string.sub(old, 1, at) .. record .. string.sub(old, at + size + 1), 'KEEPTTL')
  touch(key, ttl)
  return 1
end
local function add_sighting(skey, field, record, digest, ttl, now)
  local old = redis.call('HGET', skey, field) or ''
  local kept, pos, present = {}, 1, false
  while pos + 13 <= #old do
    local seen = struct.unpack('>I4', old, pos + 8)
    local len = struct.unpack('>I2', old, pos + 12)
    local rec = string.sub(old, pos, pos + 13 + len)
    if ttl <= 0 or seen >= now - ttl then
      kept[#kept + 1] = rec
      if string.sub(rec, 1, 8) == digest then present = true end
    end
    pos = pos + 14 + len
  end
  if not present then kept[#kept + 1] = record end
  redis.call('HSET', skey, field, table.concat(kept)); touch(skey, ttl)
  return old
end
"""


def call(fn, *args, **kwargs):
    """Runs a Redis call; any Redis failure becomes RegistryUnavailable (the analysis then
    answers without the registry part instead of failing)."""
    try:
        return fn(*args, **kwargs)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RegistryUnavailable(f"redis unreachable: {exc}") from exc
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:  # the latter: no node reachable
        raise RegistryUnavailable(f"redis error: {exc}") from exc


def split_records(blob: bytes, hash_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Band-bucket records (id 4 B big-endian + perceptual hash), concatenated, as
    (ids uint32, hashes uint8 rows)."""
    record = ID_BYTES + hash_bytes
    rows = np.frombuffer(blob, np.uint8).reshape(-1, record) if blob else np.zeros((0, record), np.uint8)
    return rows[:, :ID_BYTES].copy().view(">u4").ravel().astype(np.uint32), rows[:, ID_BYTES:]
