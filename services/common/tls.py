"""TLS files that follow certificate rotation, without a restart.

cert-manager renews a certificate well before it expires and rewrites the mounted Secret;
Kubernetes swaps a Secret volume atomically (a symlink flip), so certificate, key and CA
change together. `WatchedFiles.changed` looks at the files at most every
`tls_reload_interval_s` and returns their new bytes only when they changed; a rotation
caught half-written (a file missing or empty) keeps the previous bytes and is retried at
the next look.

- Servers (`CertificateFiles`): gRPC asks for the current configuration at each new
  handshake (`grpc.dynamic_ssl_server_credentials`); new connections get the new
  certificate, open ones keep their session until max_connection_age_s recycles them.
- The gateway's channels to its backends (services/gateway/backends.py) open a new channel
  with the new client certificate and let the old one finish its calls.
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time

import grpc

log = logging.getLogger("imagetrust.tls")

# Seconds between looks at the files (ServerConfig.tls_reload_interval_s): a handshake
# must not read three files every time, and a renewal (hours to days before expiry) has no hurry.
RELOAD_CHECK_INTERVAL_S = 5.0


class WatchedFiles:
    """A set of PEM files read together; `changed()` reports new complete contents."""

    def __init__(self, *paths: str, check_interval_s: float = RELOAD_CHECK_INTERVAL_S) -> None:
        self.paths = tuple(pathlib.Path(p) for p in paths if p)
        self.check_interval_s = check_interval_s
        self.reloads = 0  # changes reported after the first read
        self._lock = threading.Lock()  # gRPC calls a server's fetcher from its own threads
        self._next_check = time.monotonic() + check_interval_s
        contents = self._read()  # start-up: a missing file is an error (OSError)
        if contents is None:
            raise ValueError(f"TLS files are empty: {', '.join(map(str, self.paths))}")
        self.contents = contents

    def _read(self) -> tuple[bytes, ...] | None:
        contents = tuple(p.read_bytes() for p in self.paths)
        return contents if all(contents) else None

    def changed(self) -> tuple[bytes, ...] | None:
        """The files' new bytes if they changed since the last report, else None."""
        with self._lock:
            now = time.monotonic()
            if now < self._next_check:
                return None
            self._next_check = now + self.check_interval_s
            try:
                contents = self._read()
            except OSError as exc:
                log.warning("TLS files unreadable, keeping the current certificate: %s", exc)
                return None
            if contents is None or contents == self.contents:
                return None
            self.contents = contents
            self.reloads += 1
        log.info("TLS files changed: %s", ", ".join(map(str, self.paths)))
        return contents


class CertificateFiles:
    """A server's certificate chain, key and optional client CA, re-read when they change."""

    def __init__(
        self, cert: str, key: str, client_ca: str = "", check_interval_s: float = RELOAD_CHECK_INTERVAL_S
    ) -> None:
        self.files = WatchedFiles(cert, key, client_ca, check_interval_s=check_interval_s)
        self.require_client_auth = bool(client_ca)

    @staticmethod
    def _configuration(contents: tuple[bytes, ...]) -> grpc.ServerCertificateConfiguration:
        cert, key, *ca = contents
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca[0] if ca else None)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's fetcher: a new configuration when the files changed, else None (keep)."""
        contents = self.files.changed()
        return None if contents is None else self._configuration(contents)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(self.files.contents),
            self.fetch,
            require_client_authentication=self.require_client_auth,
        )
