"""A self-signed CA and server certificate under DATA_DIR/tls/ for `tls init` and `serve`.

Creates them once and reuses them; a server certificate missing a requested name is reissued
from the same CA, so a webhook kubeconfig that trusts the CA keeps working. Real certificates
are configured with TLS_CERTFILE/TLS_KEYFILE instead and never touched here.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=825)
# A certificate this close to its end is replaced rather than reused.
RENEW_BEFORE = timedelta(days=30)
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME_RE = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


class TlsError(ValueError):
    """The TLS directory or a requested host name cannot be used; the message says why."""


@dataclass(frozen=True)
class SelfSignedTls:
    """Where the files are, which names the server certificate covers, and what was done."""

    directory: Path
    hosts: tuple[str, ...]
    ca: Literal["created", "reused"]
    server: Literal["created", "reissued", "reused"]

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"


def tls_directory(data_dir: Path) -> Path:
    """DATA_DIR/tls: where the self-signed CA and server certificate live."""
    return data_dir / "tls"


def check_host(value: str) -> str:
    """Return value when it is an IP address or a DNS name a certificate can carry."""
    host = value.strip()
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    if len(host) > 253 or not _DNS_NAME_RE.match(host):
        raise TlsError(f"{value[:80]!r} is neither an IP address nor a DNS name")
    return host.lower()


def ensure_self_signed(directory: Path, hosts: Sequence[str]) -> SelfSignedTls:
    """Create or reuse the CA and a server certificate covering hosts, localhost and the
    loopback addresses (and the names the current one already covers). Keys are written 0600,
    the directory 0700."""
    wanted = list(dict.fromkeys([*(check_host(h) for h in hosts), *DEFAULT_HOSTS]))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    # Replicas sharing DATA_DIR may start at once: one creates, the others then reuse.
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = datetime.now(UTC)
        ca_key, ca_cert, ca_state = _load_or_create_ca(directory, now)
        current = _load_server(directory, ca_cert, now)
        if current is not None and set(wanted) <= set(current):
            return SelfSignedTls(directory, tuple(current), ca_state, "reused")
        names = list(dict.fromkeys([*(current or []), *wanted]))
        existed = (directory / "server.crt").exists()
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _server_certificate(key, ca_key, ca_cert, names, now)
        _write(directory / "server.key", _key_pem(key), private=True)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        _write(directory / "server.crt", pem, private=False)
    return SelfSignedTls(directory, tuple(names), ca_state, "reissued" if existed else "created")


def _load_or_create_ca(
    directory: Path, now: datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Literal["created", "reused"]]:
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if cert_path.exists() or key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            # Never replace a CA silently: every kubeconfig that trusts it would stop working.
            raise TlsError(
                f"{directory} holds an unusable CA ({type(exc).__name__}); move ca.crt and"
                " ca.key away to create a new one (webhook kubeconfigs must then get the new"
                " ca.crt)"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise TlsError(f"{directory}: ca.key does not belong to ca.crt")
        if cert.not_valid_after_utc - now < RENEW_BEFORE:
            raise TlsError(
                f"{directory}: the CA expires on {cert.not_valid_after_utc:%Y-%m-%d}; move ca.crt"
                " and ca.key away to create a new one"
            )
        return key, cert, "reused"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "audit-timeline self-signed CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: a ca.crt without its key would make the next run refuse.
    _write(key_path, _key_pem(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return key, cert, "created"


def _load_server(directory: Path, ca_cert: x509.Certificate, now: datetime) -> list[str] | None:
    """The names of the current server certificate, or None when it must be (re)issued."""
    try:
        cert = x509.load_pem_x509_certificate((directory / "server.crt").read_bytes())
        key = serialization.load_pem_private_key(
            (directory / "server.key").read_bytes(), password=None
        )
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return None
    if key.public_key() != cert.public_key() or cert.not_valid_after_utc - now < RENEW_BEFORE:
        return None
    names = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return [*san.get_values_for_type(x509.DNSName), *names]


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: Sequence[str],
    now: datetime,
) -> x509.Certificate:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(entries), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write atomically (temp file + rename); a private file is 0600 from its first byte."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
