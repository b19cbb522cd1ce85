"""A Redis client from a registry URL: one node, or the primary a Sentinel group names.

    redis://[[user]:password@]host:port/db            one node (redis-py's from_url; also
    rediss://...  unix:///path.sock?db=0              TLS and a local socket)
    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db][?options]
    rediss+sentinel://...                             the same, TLS to the primary

A Sentinel URL lists the sentinels to ask (any one that answers will do) and the name of
the monitored primary (`sentinel monitor <service_name> ...`). The client asks a sentinel
for the primary's address, connects to it, and asks again when a connection fails: after
a failover, registrations go to the promoted replica, with the calls in between answering
registry-unavailable (Analyze keeps answering, without the registry part). The userinfo
password is the data nodes'; options: `sentinel_password` (and `sentinel_username`) when
the sentinels require their own `requirepass`.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import redis
from redis.sentinel import Sentinel

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379  # Redis Sentinel's registered port


def is_sentinel(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme in SENTINEL_SCHEMES


def parse_sentinel(url: str) -> dict[str, Any]:
    """The parts of a Sentinel URL: sentinels [(host, port)], service_name, db, username,
    password, sentinel_username, sentinel_password, ssl. Raises ValueError naming what is wrong."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL (scheme {parts.scheme!r}; expected redis+sentinel://)")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    sentinels = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep:
            host, port = item.strip(), str(DEFAULT_SENTINEL_PORT)
        if not host or not port.isdigit():
            raise ValueError(f"Sentinel URL: {item!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("Sentinel URL: the path must be /service_name or /service_name/db")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"Sentinel URL: db {path[1]!r} is not a number")
    query = urllib.parse.parse_qs(parts.query)
    unknown = set(query) - {"sentinel_password", "sentinel_username"}
    if unknown:
        raise ValueError(f"Sentinel URL: unknown options {sorted(unknown)}")
    return {
        "sentinels": sentinels,
        "service_name": urllib.parse.unquote(path[0]),
        "db": int(path[1]) if len(path) == 2 else 0,
        "username": urllib.parse.unquote(username) or None,
        "password": urllib.parse.unquote(password) or None,
        "sentinel_username": query.get("sentinel_username", [None])[0],
        "sentinel_password": query.get("sentinel_password", [None])[0],
        "ssl": parts.scheme == "rediss+sentinel",
    }


def client_from_url(url: str, **kwargs: Any) -> redis.Redis:
    """redis.Redis for url; kwargs (timeouts, health checks) apply to the data connections
    and, for Sentinel, to the sentinel connections too."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    spec = parse_sentinel(url)
    sentinel_kwargs = {k: v for k, v in kwargs.items() if k in ("socket_timeout", "socket_connect_timeout")}
    if spec["sentinel_password"]:
        sentinel_kwargs["password"] = spec["sentinel_password"]
    if spec["sentinel_username"]:
        sentinel_kwargs["username"] = spec["sentinel_username"]
    sentinel = Sentinel(spec["sentinels"], sentinel_kwargs=sentinel_kwargs, **kwargs)
    return sentinel.master_for(
        spec["service_name"],
        db=spec["db"],
        username=spec["username"],
        password=spec["password"],
        ssl=spec["ssl"],
        **kwargs,
    )
