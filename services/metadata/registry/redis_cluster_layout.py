"""Key layout, image ids and the per-slot Lua scripts of the sharded (Redis Cluster) registry.

Every key carries a hash tag of its own bucket, so one registry spreads over all 16,384
slots and so over every node; each script touches the keys of ONE tag (one slot), as
Redis Cluster requires. Tags are ASCII (hex), so no digest byte can end a tag early.

  P = the registry prefix (no braces)

  {P:i:<s>}n              STRING  last local id of shard s (INCR; never expires)
  {P:i:<s>}x<d>           HASH    sha[2:16] -> local id (negative while its index entries are
                                  not confirmed, see below); d = low 4 bits of sha[1]
  {P:i:<s>}s<local//128>  HASH    local % 128 -> packed sightings (base.encode_sighting)
  {P:i:<s>}e<local//59>   STRING  verification records (reuse/descriptor.py), version 2: 548 B at (local % 59) * 548
  {P:i:<s>}d<local//47>   STRING  version 1 records (registered before version 2): 684 B at (local % 47) * 684
  {P:p:<pix[0:2] hex>}    HASH    pix[2:16] -> packed ids (4 B each)        (same pixels)
  {P:u:<uid[0:2] hex>}    HASH    uid[2:16] -> packed ids                   (same ImageUniqueID)
  {P:b:<band><value hex>} STRING  packed records (id 4 B + view hash 8 B); band = namespace * 4 + band

  s = the top 12 bits of the file's SHA-256 (3 hex digits): 4,096 shards.
  image id = s << 20 | local (4 bytes, as in the single-slot layout)

Why a per-shard id space instead of one INCR counter: the image's id, its same-bytes entry
and its sightings then live in one slot, so get-or-create and the sightings append are ONE
script (same-bytes registrations are serialised as in the single-slot layout); no single
counter key sits on one node that every new image must reach. The cost: ids are not
chronological and a shard holds at most 2^20 - 1 images (4,096 x 1,048,575 = 4.3 billion
ids per registry, the same 4-byte id space as the single-slot INCR); SHA-256 spreads images
evenly over shards, so they fill together. Why 12 bits: 4,096 tags spread evenly over the
16,384 slots of any realistic cluster, and at 1M images a shard's sightings fit one
128-entry listpack hash (~244 images: two), where 16-bit shards would need 65,536
sightings keys (one key costs ~60-100 bytes whatever it holds).
"""

from __future__ import annotations

import struct

from services.metadata.registry.redis_common import LUA_HELPERS, RECORD_KEYS, SIGHTING_BUCKET, lua_records

SHARD_BITS = 12  # bits of the SHA-256 that pick an image's shard: 4,096 shards
LOCAL_BITS = 20  # bits of the id numbering images inside a shard
MAX_LOCAL = (1 << LOCAL_BITS) - 1  # images per shard: 1,048,575
SUB_BUCKETS_BITS = 4  # sha index hashes per shard (16): ~15 images each at 1M, listpack-sized


class Layout:
    """Key names of one registry (prefix) in the sharded layout."""

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("registry_prefix must not contain braces: it goes inside hash tags")
        self.p = prefix.encode()

    @staticmethod
    def shard(sha: bytes) -> int:
        return int.from_bytes(sha[:2], "big") >> (16 - SHARD_BITS)

    def shard_head(self, shard: int) -> bytes:
        return b"{%s:i:%03x}" % (self.p, shard)

    def counter(self, shard: int) -> bytes:
        return self.shard_head(shard) + b"n"

    def sha_key(self, sha: bytes) -> bytes:
        return self.shard_head(self.shard(sha)) + b"x%x" % (sha[1] & ((1 << SUB_BUCKETS_BITS) - 1))

    def sightings_head(self, shard: int) -> bytes:
        """The sightings key of local id L is this + str(L // SIGHTING_BUCKET)."""
        return self.shard_head(shard) + b"s"

    def sightings_slot(self, image_id: int) -> tuple[bytes, bytes]:
        """(key, field) holding the sightings of an image id."""
        local = image_id & MAX_LOCAL
        return (
            self.sightings_head(image_id >> LOCAL_BITS) + str(local // SIGHTING_BUCKET).encode(),
            str(local % SIGHTING_BUCKET).encode(),
        )

    def descriptor_slot(self, image_id: int, size: int) -> tuple[bytes, int]:
        """(key, record index) of an image id's verification record of `size` bytes (each
        record version has strings of its own)."""
        local = image_id & MAX_LOCAL
        letter, per_key = RECORD_KEYS[size]
        return self.shard_head(image_id >> LOCAL_BITS) + letter + str(local // per_key).encode(), local % per_key

    def pixel_key(self, pixels: bytes) -> bytes:
        return b"{%s:p:%s}" % (self.p, pixels[:2].hex().encode())

    def unique_id_key(self, uid: bytes) -> bytes:
        return b"{%s:u:%s}" % (self.p, uid[:2].hex().encode())

    def band_key(self, band: int, value: int) -> bytes:
        return b"{%s:b:%x%04x}" % (self.p, band, value)


def image_id(shard: int, local: int) -> int:
    return shard << LOCAL_BITS | local


def pack_id(image_id_: int) -> bytes:
    return struct.pack(">I", image_id_)


# get-or-create, the verification record and the sightings append, in the image's shard
# (one slot). Returns {signed local id, prior sightings, 1 when it stored the record of an
# image that had none (registered before descriptors: the client then adds its other views)}.
# A new image's entry is stored negative ("pending") until the client has written its index
# entries and confirmed them with _DONE; a pending entry seen later (the writer died in
# between) makes that registration write them again. The record is written before the id
# is published in any index, so whoever finds the id finds its record.
CLAIM = (
    LUA_HELPERS
    + r"""
-- KEYS: 1 sha index hash, 2 shard counter. ARGV: 1 sha field, 2 sighting record,
-- 3 identity digest, 4 ttl s, 5 now s, 6 sightings key head, 7 max local id,
-- 8 verification record ('' none), 9 shard key head (record strings: 'd' version 1, 'e' version 2)
local ttl, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  v = tonumber(v)
else
  local n = redis.call('INCR', KEYS[2])
  if n > tonumber(ARGV[7]) then return redis.error_reply('ERR registry shard full') end
  v = -n
  redis.call('HSET', KEYS[1], ARGV[1], v)
end
touch(KEYS[1], ttl)
local loc = math.abs(v)
local upgraded = 0
local function rkey(size)
  if size == V1B then return ARGV[9] .. 'd' .. math.floor(loc / DPK), loc % DPK end
  return ARGV[9] .. 'e' .. math.floor(loc / EPK), loc % EPK
end
local wrote = 0
if ARGV[8] ~= '' then
  -- an image with a record of the older version keeps it (and its views)
  local k1, i1 = rkey(V1B)
  local first = redis.call('GETRANGE', k1, i1 * V1B, i1 * V1B)
  if first == '' or string.byte(first) == 0 then
    local key, index = rkey(#ARGV[8])
    wrote = put_record(key, index, ARGV[8], ttl)
  end
  if wrote == 1 and v > 0 then upgraded = 1 end
end
if wrote == 0 and ttl > 0 then
  touch(rkey(V1B), ttl); touch(rkey(V2B), ttl)
end
local prior = add_sighting(ARGV[6] .. math.floor(loc / 128), tostring(loc % 128), ARGV[2], ARGV[3], ttl, now)
return {v, prior, upgraded}
"""
)
CLAIM = lua_records(CLAIM)

# Adds a fixed-width record (its first 4 bytes are the image id) to a string or a hash field
# unless that id is there already (so a repeated write after a failure adds nothing), and
# returns the value as it was before: the pixel/unique-id ids or band records this
# registration compares with, read in the same atomic step as its own write.
ADD = (
    LUA_HELPERS
    + r"""
-- KEYS: 1 the bucket. ARGV: 1 record, 2 ttl s, 3 hash field ('' for a band string)
local ttl, field = tonumber(ARGV[2]), ARGV[3]
local old
if field == '' then old = redis.call('GET', KEYS[1]) or '' else old = redis.call('HGET', KEYS[1], field) or '' end
local id, width, present = string.sub(ARGV[1], 1, 4), #ARGV[1], false
for pos = 1, #old - width + 1, width do
  if string.sub(old, pos, pos + 3) == id then present = true; break end
end
if not present then
  -- GET + SET rather than APPEND: APPEND over-allocates (measured: 432 vs 240 bytes for 180 B).
  if field == '' then redis.call('SET', KEYS[1], old .. ARGV[1], 'KEEPTTL')
  else redis.call('HSET', KEYS[1], field, old .. ARGV[1]) end
end
touch(KEYS[1], ttl)
return old
"""
)

# Confirms a pending entry once its index entries are written (only if it is still the
# same pending entry: it may have expired and been re-created meanwhile).
DONE = r"""
-- KEYS: 1 sha index hash. ARGV: 1 sha field, 2 the pending (negative) value
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], string.sub(ARGV[2], 2))
end
return 1
"""
