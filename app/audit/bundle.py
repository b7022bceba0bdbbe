"""Signed report bundles: a zip of data files, a manifest (query, window, version, row count,
SHA-256 per file, time produced) and an Ed25519 signature over the manifest's exact bytes.

No database and no key storage here (app/report_key.py keeps the key); verification needs only
the zip and, to prove who signed, the signer's public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public-key.pem"
FORMAT = "audit-timeline-report-bundle/1"
_CONTROL = (MANIFEST, SIGNATURE, PUBLIC_KEY)
_CHUNK = 1 << 16


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


class _Member:
    """One file being written: text lines in, bytes hashed and counted."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0
        self.rows = 0

    def write(self, text: str, *, is_row: bool = True) -> None:
        data = text.encode()
        self.digest.update(data)
        self.size += len(data)
        self.rows += is_row
        self._handle.write(data)


class BundleWriter:
    """Write data files into a zip one line at a time (hashing as it goes), then sign."""

    def __init__(self, target: IO[bytes] | Path) -> None:
        self._zip = zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED)
        self._files: dict[str, dict[str, Any]] = {}

    @contextmanager
    def file(self, name: str) -> Iterator[_Member]:
        """A data file to write text into; its SHA-256 and size go into the manifest."""
        if name in _CONTROL or name in self._files:
            raise ValueError(f"{name}: reserved or already added")
        with self._zip.open(name, "w") as handle:
            member = _Member(handle)
            yield member
        self._files[name] = {
            "sha256": member.digest.hexdigest(),
            "bytes": member.size,
            "rows": member.rows,
        }

    def finish(
        self, key: Ed25519PrivateKey, *, query: dict[str, Any], row_count: int, version: str
    ) -> dict[str, Any]:
        """Write manifest, signature and public key; return the manifest."""
        manifest = {
            "format": FORMAT,
            "software": {"name": "audit-timeline", "version": version},
            "query": query,
            "window": {"since": query.get("since"), "until": query.get("until")},
            "row_count": row_count,
            "files": self._files,
            "produced_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "public_key_sha256": fingerprint(key.public_key()),
            "signature": {"algorithm": "Ed25519", "file": SIGNATURE, "over": MANIFEST},
        }
        body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        self._zip.writestr(MANIFEST, body)
        self._zip.writestr(SIGNATURE, base64.b64encode(key.sign(body)) + b"\n")
        self._zip.writestr(PUBLIC_KEY, public_pem(key.public_key()))
        self._zip.close()
        return manifest


@dataclass(frozen=True)
class Verification:
    problems: list[str]
    notes: list[str]

    @property
    def is_valid(self) -> bool:
        return not self.problems


class BundleUnreadable(ValueError):
    """The file is not a bundle at all (not a zip, no manifest, bad key file)."""


def load_public_key(pem: bytes, *, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise BundleUnreadable(f"{source}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleUnreadable(f"{source}: not an Ed25519 public key")
    return key


def verify_bundle(path: Path, *, public_key: Ed25519PublicKey | None = None) -> Verification:
    """Check the signature over the manifest and every file's SHA-256; list each failure."""
    problems: list[str] = []
    notes: list[str] = []
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleUnreadable(f"{path}: not a readable zip file ({exc})") from None
    with archive:
        names = set(archive.namelist())
        if MANIFEST not in names:
            raise BundleUnreadable(f"{path}: no {MANIFEST}: not a report bundle")
        body = archive.read(MANIFEST)
        bundled = (
            load_public_key(archive.read(PUBLIC_KEY), source=PUBLIC_KEY)
            if PUBLIC_KEY in names
            else None
        )
        key = public_key or bundled
        if key is None:
            problems.append(f"no {PUBLIC_KEY} in the bundle: give --public-key")
        elif SIGNATURE not in names:
            problems.append(f"{SIGNATURE} is missing: the manifest is not signed")
        else:
            try:
                signature = base64.b64decode(archive.read(SIGNATURE).strip(), validate=True)
                key.verify(signature, body)
                notes.append(f"signature valid (Ed25519, key {fingerprint(key)[:16]}…)")
            except (InvalidSignature, ValueError):
                who = "the given public key" if public_key else "the key in the bundle"
                problems.append(
                    f"signature does not verify with {who}: {MANIFEST} was changed after"
                    " signing, or it was signed by another key"
                )
            if public_key is not None and bundled is not None:
                if fingerprint(bundled) != fingerprint(public_key):
                    problems.append(
                        f"the bundle carries another key ({fingerprint(bundled)[:16]}…) than the"
                        f" one given ({fingerprint(public_key)[:16]}…)"
                    )
            elif public_key is None:
                notes.append(
                    "checked with the key inside the bundle: that proves integrity, not who"
                    " signed; pass --public-key (GET /api/v1/reports/public-key) for that"
                )
        try:
            manifest = json.loads(body)
        except ValueError:
            manifest = None
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, dict):
            problems.append(f"{MANIFEST}: not a manifest (no 'files' map)")
            return Verification(problems, notes)
        for name, meta in sorted(files.items()):
            if name not in names:
                problems.append(f"{name}: listed in the manifest but missing from the bundle")
                continue
            digest = hashlib.sha256()
            with archive.open(name) as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            expected = meta.get("sha256") if isinstance(meta, dict) else None
            if digest.hexdigest() != expected:
                problems.append(
                    f"{name}: SHA-256 mismatch: the manifest says {expected}, the file is"
                    f" {digest.hexdigest()} (the file was changed)"
                )
            else:
                notes.append(f"{name}: SHA-256 ok")
        for extra in sorted(names - set(files) - set(_CONTROL)):
            problems.append(f"{extra}: in the bundle but not in the manifest (added later)")
    return Verification(problems, notes)
