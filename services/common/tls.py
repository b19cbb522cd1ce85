"""Server TLS credentials that follow certificate rotation, without a restart.

cert-manager renews a certificate well before it expires and rewrites the mounted Secret;
Kubernetes swaps a Secret volume atomically (a symlink flip), so certificate, key and CA
change together. gRPC asks for the current configuration at each new handshake
(`grpc.dynamic_ssl_server_credentials`); `CertificateFiles.fetch` looks at the files at
most every `tls_reload_interval_s` and hands gRPC a new configuration only when their
bytes changed. Connections already open keep their session (and are recycled within
max_connection_age_s anyway); new connections get the new certificate. A rotation caught
half-written (a file missing or empty) keeps the previous configuration and is retried
at the next check.
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


class CertificateFiles:
    """The server's certificate chain, key and optional client CA, re-read when they change."""

    def __init__(self, cert: str, key: str, client_ca: str = "", check_interval_s: float = RELOAD_CHECK_INTERVAL_S) -> None:
        self.paths = tuple(pathlib.Path(p) for p in (cert, key, client_ca) if p)
        self.require_client_auth = bool(client_ca)
        self.check_interval_s = check_interval_s
        self.reloads = 0  # configurations handed to gRPC after the first
        self._lock = threading.Lock()
        self._next_check = 0.0
        self._current = self._read()  # start-up: a missing or unreadable file is an error
        if self._current is None:
            raise ValueError(f"TLS files are empty: {', '.join(map(str, self.paths))}")

    def _read(self) -> tuple[bytes, ...] | None:
        contents = tuple(p.read_bytes() for p in self.paths)
        return contents if all(contents) else None

    def _configuration(self, contents: tuple[bytes, ...]) -> grpc.ServerCertificateConfiguration:
        cert, key, *ca = contents
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca[0] if ca else None)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's fetcher: a new configuration when the files changed, else None (keep)."""
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
            if contents is None or contents == self._current:
                return None
            self._current = contents
            self.reloads += 1
        log.info("TLS certificate files changed: new handshakes use the new certificate")
        return self._configuration(contents)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(self._current), self.fetch, require_client_authentication=self.require_client_auth,
        )
