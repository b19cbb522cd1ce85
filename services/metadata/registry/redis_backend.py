"""The registry in Redis (production): one Lua script per lookup, so register-and-lookup is atomic.

Key schema (P = "{<prefix>}:"; every key carries the same hash tag, so the script's keys
live in one Redis Cluster slot, as Cluster requires of a script):

  P n                      STRING  last image id (INCR)
  P xs <sha[0:2]>          HASH    sha[2:16] -> image id            (same bytes)
  P xp <pix[0:2]>          HASH    pix[2:16] -> packed ids (4 B each) (same pixels)
  P xu <uid[0:2]>          HASH    uid[2:16] -> packed ids          (same ImageUniqueID)
  P b <band> <value:2B>    STRING  packed records (id 4 B + perceptual hash 8 B), in id order
  P s <id // 128 : 4B>     HASH    id % 128 -> packed sightings (see base.encode_sighting)

Why this shape: memory. Bucketing by the first two digest bytes and by id // 128 keeps
each hash small enough for Redis' compact listpack encoding (<= 128 fields, values <= 64
bytes), so an entry costs its bytes plus a few, not a ~60-byte top-level key. Band
buckets are plain strings of fixed-width records, written with GET + SET (exact size;
APPEND would over-allocate up to 2x), and carry the candidates' hashes inline: a
near-duplicate search is ONE MGET of the 64 probed buckets inside the script, returned as
one reply, and the client verifies the distances with numpy. Measured: a bucket read
costs far more than the bytes it returns, so the layout (bands.LAYOUT) minimises reads.
All digests are binary (16 of SHA-256's 32 bytes: 128 bits).

Retention: with a TTL, every key a registration writes gets EXPIRE ttl (refreshed on each
write), and sightings older than the TTL are dropped from results and pruned whenever
their image is written again. A bucket shared with newer images lives on until it goes
idle, so memory is reclaimed per bucket, while results honour the TTL exactly.

Cluster: one hash tag means one slot per registry (prefix), because the atomic step must
touch the exact indexes, the probed buckets and the new image's keys in one script, and a
script's keys must share a slot. Several registries (prefixes) spread over nodes; one
registry does not. For one registry over every node, redis_cluster_backend.py shards the
keys and splits the step into single-slot steps (docs/registry.md: what each guarantees).
"""

from __future__ import annotations

import struct

from services.metadata.registry.base import (
    Keys,
    Raw,
    Registry,
    decode_sightings,
    encode_sighting,
    identity_digest,
    unpack_ids,
)
from services.metadata.registry.model import Sighting
from services.metadata.registry.redis_common import (
    LUA_HELPERS,
    RECORD_KEYS,
    SIGHTING_BUCKET,
    SOCKET_TIMEOUT_S,
    call,
    filled,
    lua_records,
    split_records,
)
from services.metadata.registry.redis_url import client_from_url
from services.metadata.reuse.descriptor import RECORD_BYTES

__all__ = ["SIGHTING_BUCKET", "RedisRegistry"]  # SIGHTING_BUCKET: the bench's bulk loader writes the same buckets

_SCRIPT = (
    LUA_HELPERS
    + r"""
-- KEYS: 1 counter, 2 sha bucket, 3 pixel bucket, 4 unique-id bucket, then ARGV[10] band
-- buckets this image's views are written to (the whole frame's ARGV[15] first), then
-- ARGV[14] probe centres. The probed band buckets (within the centre's radius of it)
-- are generated here rather than sent (cheaper than building and sending the names).
-- They share the hash tag, so they live in the script's slot.
-- ARGV: 1 sha field, 2 pixel field, 3 unique-id field ('' none), 4 verification record
-- ('' none), 5 register '1'/'0', 6 encoded sighting, 7 identity digest, 8 ttl s, 9 now s,
-- 10 write count, 11 key prefix, 12 probe radius of each centre (one digit 0..2 each), 13 band width (bits, <= 16),
-- 14 probe centre count, 15 writes of the whole-frame view, 16.. the view hash of each write
local nw = tonumber(ARGV[10])
local np = tonumber(ARGV[14])
local ttl = tonumber(ARGV[8])
local now = tonumber(ARGV[9])
local sha_id = redis.call('HGET', KEYS[2], ARGV[1])
local pix_ids = redis.call('HGET', KEYS[3], ARGV[2]) or ''
local uid_ids = ''
if ARGV[3] ~= '' then uid_ids = redis.call('HGET', KEYS[4], ARGV[3]) or '' end
local top = tonumber(ARGV[13]) - 1
-- Every probed bucket name, then ONE MGET: a redis.call per bucket costs far more than a
-- key inside one MGET (docs/registry.md, measured).
local names = {}
for i = 5 + nw, 4 + nw + np do
  local key = KEYS[i]
  local head = string.sub(key, 1, #key - 2)
  local value = struct.unpack('>I2', key, #key - 1)
  local radius = string.byte(ARGV[12], i - 4 - nw) - 48
  names[#names + 1] = key
  if radius >= 1 then
    for a = 0, top do
      local va = bit.bxor(value, bit.lshift(1, a))
      names[#names + 1] = head .. struct.pack('>I2', va)
      if radius >= 2 then
        for b = a + 1, top do names[#names + 1] = head .. struct.pack('>I2', bit.bxor(va, bit.lshift(1, b))) end
      end
    end
  end
end
local blobs = {}
if #names > 0 then
  local got = redis.call('MGET', unpack(names))
  for i = 1, #got do
    if got[i] then blobs[#blobs + 1] = got[i] end
  end
end
-- GET + SET rather than APPEND: APPEND over-allocates (doubles) the string, which
-- nearly doubled the band buckets' memory (measured: 432 vs 240 bytes for 180 B).
local function write_views(first, last, packed)
  for i = first, last do
    local key = KEYS[4 + i]
    redis.call('SET', key, (redis.call('GET', key) or '') .. packed .. ARGV[15 + i], 'KEEPTTL'); touch(key, ttl)
  end
end
local own = 0
local snapshot = ''
if sha_id then
  own = tonumber(sha_id)
  snapshot = redis.call('HGET', ARGV[11] .. 's' .. struct.pack('>I4', math.floor(own / 128)), tostring(own % 128)) or ''
end
if ARGV[5] == '1' then
  -- The string and slot of an image's record of `size` bytes: each record version has
  -- strings of its own ('d': version 1, 'e': version 2).
  local rkey = function(id, size)
    if size == V1B then return ARGV[11] .. 'd' .. struct.pack('>I4', math.floor(id / DPK)), id % DPK end
    return ARGV[11] .. 'e' .. struct.pack('>I4', math.floor(id / EPK)), id % EPK
  end
  if own == 0 then
    own = redis.call('INCR', KEYS[1])
    local packed = struct.pack('>I4', own)
    redis.call('HSET', KEYS[2], ARGV[1], own); touch(KEYS[2], ttl)
    redis.call('HSET', KEYS[3], ARGV[2], pix_ids .. packed); touch(KEYS[3], ttl)
    if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], ARGV[3], uid_ids .. packed); touch(KEYS[4], ttl) end
    write_views(1, nw, packed)
    if ARGV[4] ~= '' then
      local key, index = rkey(own, #ARGV[4])
      put_record(key, index, ARGV[4], ttl)
    end
  else
    touch(KEYS[2], ttl); touch(KEYS[3], ttl)
    if ARGV[3] ~= '' then touch(KEYS[4], ttl) end
    -- Registered before descriptors existed: re-fingerprinted on this sighting (the record
    -- and the views other than the whole frame, whose bands are there already). An image
    -- with a record of the older version keeps it (and its views).
    local wrote = 0
    if ARGV[4] ~= '' then
      local k1, i1 = rkey(own, V1B)
      local first = redis.call('GETRANGE', k1, i1 * V1B, i1 * V1B)
      if first == '' or string.byte(first) == 0 then
        local key, index = rkey(own, #ARGV[4])
        wrote = put_record(key, index, ARGV[4], ttl)
      end
    end
    if wrote == 1 then
      write_views(tonumber(ARGV[15]) + 1, nw, struct.pack('>I4', own))
    elseif ttl > 0 then
      touch(rkey(own, V1B), ttl); touch(rkey(own, V2B), ttl)
    end
    for i = 5, 4 + nw do touch(KEYS[i], ttl) end
  end
  add_sighting(ARGV[11] .. 's' .. struct.pack('>I4', math.floor(own / 128)), tostring(own % 128), ARGV[6], ARGV[7],
               ttl, now)
end
return {tostring(sha_id or ''), pix_ids, uid_ids, table.concat(blobs), own, snapshot}
"""
)
_SCRIPT = lua_records(_SCRIPT)


class RedisRegistry(Registry):
    backend = "redis"

    def __init__(self, url: str, prefix: str = "imagetrust", ttl_s: int = 0, **kwargs) -> None:
        super().__init__(ttl_s, **kwargs)
        self.prefix = b"{" + prefix.encode() + b"}:"
        # A node URL, or a Sentinel URL naming the primary to follow across failovers.
        self.client = client_from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=0,
        )
        self._script = self.client.register_script(_SCRIPT)
        if self.layout.width > 16 or self.layout.radius > 2:
            raise ValueError("the Redis script probes bands of <= 16 bits (2-byte values) within radius 0..2")

    def _band_key(self, band: int, value: int) -> bytes:
        return self.prefix + b"b" + bytes([band]) + struct.pack(">H", value)

    def _descriptor_key(self, image_id: int, size: int = RECORD_BYTES) -> bytes:
        """The string holding an image's record of `size` bytes (its version's strings)."""
        letter, per_key = RECORD_KEYS[size]
        return self.prefix + letter + struct.pack(">I", image_id // per_key)

    def _register_and_lookup(self, keys: Keys, sighting: Sighting, register: bool, now: float) -> Raw:
        p = self.prefix
        uid_bucket = p + b"xu" + (keys.unique_id[:2] if keys.unique_id else b"\0\0")
        writes = [self._band_key(b, v) for b, v, _h in keys.writes]
        centres = [self._band_key(b, v) for b, v, _r in keys.probes]
        reply = call(
            self._script,
            keys=[p + b"n", p + b"xs" + keys.sha[:2], p + b"xp" + keys.pixels[:2], uid_bucket, *writes, *centres],
            args=[
                keys.sha[2:],
                keys.pixels[2:],
                keys.unique_id[2:] if keys.unique_id else b"",
                keys.descriptor,
                b"1" if register else b"0",
                encode_sighting(sighting),
                identity_digest(sighting),
                self.ttl_s,
                int(now),
                len(writes),
                p,
                "".join(str(r) for _b, _v, r in keys.probes),
                self.layout.width,
                len(centres),
                keys.first_view_writes,
                *(h for _b, _v, h in keys.writes),
            ],
        )
        sha_id, pix_ids, uid_ids, blob, own, snapshot = reply
        ids, hashes = split_records(blob, len(keys.perceptual))
        return Raw(
            sha_ids=[int(sha_id)] if sha_id else [],
            pixel_ids=unpack_ids(pix_ids),
            unique_id_ids=unpack_ids(uid_ids),
            candidate_ids=ids,
            candidate_hashes=hashes,
            snapshot={int(sha_id): decode_sightings(snapshot)} if sha_id else {},
            own_id=int(own),
        )

    def _descriptors(self, ids: list[int]) -> dict[int, bytes]:
        return self._details(ids, [])[0]

    def _details(
        self, record_ids: list[int], sighting_ids: list[int]
    ) -> tuple[dict[int, bytes], dict[int, list[Sighting]]]:
        if not record_ids and not sighting_ids:
            return {}, {}
        pipe = self.client.pipeline(transaction=False)
        for image_id in record_ids:  # both versions' slots: an image has one of them filled
            for size, (_letter, per_key) in RECORD_KEYS.items():
                at = image_id % per_key * size
                pipe.getrange(self._descriptor_key(image_id, size), at, at + size - 1)
        for image_id in sighting_ids:
            pipe.hget(
                self.prefix + b"s" + struct.pack(">I", image_id // SIGHTING_BUCKET), str(image_id % SIGHTING_BUCKET)
            )
        replies = call(pipe.execute)
        n = len(RECORD_KEYS)
        records = {
            image_id: next((r for r in replies[i * n : i * n + n] if filled(r)), b"")
            for i, image_id in enumerate(record_ids)
        }
        blobs = replies[len(record_ids) * n :]
        return records, {image_id: decode_sightings(blob or b"") for image_id, blob in zip(sighting_ids, blobs)}

    def _sightings(self, ids: list[int]) -> dict[int, list[Sighting]]:
        pipe = self.client.pipeline(transaction=False)
        for image_id in ids:
            pipe.hget(
                self.prefix + b"s" + struct.pack(">I", image_id // SIGHTING_BUCKET), str(image_id % SIGHTING_BUCKET)
            )
        blobs = call(pipe.execute)
        return {image_id: decode_sightings(blob or b"") for image_id, blob in zip(ids, blobs)}

    def ping(self) -> None:
        call(self.client.ping)

    def close(self) -> None:
        self.client.close()
