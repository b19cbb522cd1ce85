"""The registry in an embedded SQLite file: single-machine use (`imagetrust up`, `serve
metadata` without a Redis URL), the same semantics as Redis.

Register-and-lookup runs in one `BEGIN IMMEDIATE` transaction, which takes SQLite's write
lock first, so two processes (or threads) registering the same photo cannot both create
it. Bands live in an indexed table (band, value) -> image, the same multi-index hashing as
in Redis (one band per view namespace and band, reuse/views.py). WAL mode lets lookups from
other processes read while one writes.

A file made before near-copy verification (no `views`/`descriptor` columns) is upgraded in
place when opened (ALTER TABLE ADD COLUMN: its images keep working, unverifiable); an
image without a descriptor gets one, and its other views, the next time the same file is
registered.
"""

from __future__ import annotations

import pathlib
import sqlite3
import threading

import numpy as np

from services.metadata.registry import bands
from services.metadata.registry.base import Keys, Raw, Registry, RegistryUnavailable
from services.metadata.registry.model import Sighting

DEFAULT_PATH = pathlib.Path.home() / ".local" / "share" / "imagetrust" / "registry.sqlite3"
BUSY_TIMEOUT_S = 5.0  # seconds to wait for another process' write lock before giving up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
  id INTEGER PRIMARY KEY, sha BLOB NOT NULL UNIQUE, pixels BLOB NOT NULL, unique_id BLOB,
  perceptual BLOB NOT NULL, views BLOB, descriptor BLOB);
CREATE INDEX IF NOT EXISTS images_pixels ON images(pixels);
CREATE INDEX IF NOT EXISTS images_unique_id ON images(unique_id) WHERE unique_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS bands (band INTEGER NOT NULL, value INTEGER NOT NULL, image INTEGER NOT NULL,
  PRIMARY KEY (band, value, image)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sightings (
  image INTEGER NOT NULL, seller_id TEXT NOT NULL, listing_id TEXT NOT NULL,
  conversation_id TEXT NOT NULL, platform TEXT NOT NULL, seen_at REAL NOT NULL,
  PRIMARY KEY (image, seller_id, listing_id, conversation_id, platform));
CREATE INDEX IF NOT EXISTS sightings_seen_at ON sightings(seen_at);
"""


class SqliteRegistry(Registry):
    backend = "sqlite"

    def __init__(self, path: str | pathlib.Path = "", ttl_s: int = 0, **kwargs) -> None:
        super().__init__(ttl_s, **kwargs)
        self.path = pathlib.Path(path) if path else DEFAULT_PATH
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection per registry, serialised by a lock: SQLite writes are serial anyway.
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(images)")}
            for column in ("views", "descriptor"):  # a registry file from before these columns
                if column not in columns:
                    self._db.execute(f"ALTER TABLE images ADD COLUMN {column} BLOB")

    def _register_and_lookup(self, keys: Keys, sighting: Sighting, register: bool, now: float) -> Raw:
        db = self._db
        try:
            with self._lock:
                db.execute("BEGIN IMMEDIATE" if register else "BEGIN")
                try:
                    raw = self._lookup(keys)
                    if raw.sha_ids:
                        raw.snapshot = self._read_sightings(raw.sha_ids)
                    if register:
                        self._register(keys, sighting, raw, now)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise RegistryUnavailable(f"sqlite registry {self.path}: {exc}") from exc
        return raw

    def _lookup(self, keys: Keys) -> Raw:
        db = self._db
        sha_ids = [r[0] for r in db.execute("SELECT id FROM images WHERE sha = ?", (keys.sha,))]
        pixel_ids = [r[0] for r in db.execute("SELECT id FROM images WHERE pixels = ?", (keys.pixels,))]
        uid_ids = (
            [r[0] for r in db.execute("SELECT id FROM images WHERE unique_id = ?", (keys.unique_id,))]
            if keys.unique_id
            else []
        )
        ids, hashes = [], []
        width = len(keys.perceptual)
        for band, value, radius in keys.probes:
            probes = bands.probes(value, self.layout, radius)
            marks = ",".join("?" * len(probes))
            for image_id, perceptual, views in db.execute(
                f"SELECT i.id, i.perceptual, i.views FROM bands b JOIN images i ON i.id = b.image "
                f"WHERE b.band = ? AND b.value IN ({marks})",
                (band, *probes),
            ):
                for start in range(0, len(views), width) if views else (0,):
                    ids.append(image_id)
                    hashes.append(views[start : start + width] if views else perceptual)
        return Raw(
            sha_ids,
            pixel_ids,
            uid_ids,
            np.array(ids, np.uint32),
            np.frombuffer(b"".join(hashes), np.uint8).reshape(-1, width) if hashes else np.zeros((0, width), np.uint8),
        )

    def _register(self, keys: Keys, sighting: Sighting, raw: Raw, now: float) -> None:
        db = self._db
        views = b"".join(dict.fromkeys(h for _b, _v, h in keys.writes)) or None
        if raw.sha_ids:
            image_id = raw.sha_ids[0]
            raw.own_id = image_id
            has = db.execute("SELECT descriptor IS NOT NULL FROM images WHERE id = ?", (image_id,)).fetchone()
            if keys.descriptor and has is not None and not has[0]:
                # Registered before descriptors: re-fingerprinted now, on its next sighting.
                db.execute(
                    "UPDATE images SET views = ?, descriptor = ? WHERE id = ?", (views, keys.descriptor, image_id)
                )
                db.executemany(
                    "INSERT OR IGNORE INTO bands VALUES (?, ?, ?)",
                    [(band, value, image_id) for band, value, _h in keys.writes],
                )
        else:
            image_id = db.execute(
                "INSERT INTO images (sha, pixels, unique_id, perceptual, views, descriptor) VALUES (?, ?, ?, ?, ?, ?)",
                (keys.sha, keys.pixels, keys.unique_id or None, keys.perceptual, views, keys.descriptor or None),
            ).lastrowid
            raw.own_id = image_id
            db.executemany(
                "INSERT OR IGNORE INTO bands VALUES (?, ?, ?)",
                [(band, value, image_id) for band, value, _h in keys.writes],
            )
        if self.ttl_s > 0:  # retention: drop what expired, as Redis' EXPIRE would
            db.execute("DELETE FROM sightings WHERE seen_at < ?", (now - self.ttl_s,))
        db.execute(
            "INSERT OR IGNORE INTO sightings VALUES (?, ?, ?, ?, ?, ?)",
            (image_id, *sighting.identity, sighting.seen_at),
        )

    def _sightings(self, ids: list[int]) -> dict[int, list[Sighting]]:
        try:
            with self._lock:
                return self._read_sightings(ids)
        except sqlite3.Error as exc:
            raise RegistryUnavailable(f"sqlite registry {self.path}: {exc}") from exc

    def _read_sightings(self, ids: list[int]) -> dict[int, list[Sighting]]:
        out: dict[int, list[Sighting]] = {}
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f"SELECT image, seller_id, listing_id, conversation_id, platform, seen_at "
            f"FROM sightings WHERE image IN ({marks})",
            ids,
        ).fetchall()
        for image_id, *parts, seen_at in rows:
            out.setdefault(image_id, []).append(Sighting(*parts, seen_at=seen_at))
        return out

    def _descriptors(self, ids: list[int]) -> dict[int, bytes]:
        try:
            with self._lock:
                marks = ",".join("?" * len(ids))
                rows = self._db.execute(f"SELECT id, descriptor FROM images WHERE id IN ({marks})", ids).fetchall()
        except sqlite3.Error as exc:
            raise RegistryUnavailable(f"sqlite registry {self.path}: {exc}") from exc
        return {image_id: record or b"" for image_id, record in rows}

    def ping(self) -> None:
        try:
            with self._lock:
                self._db.execute("SELECT 1")
        except sqlite3.Error as exc:
            raise RegistryUnavailable(f"sqlite registry {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
