"""Where the redaction HMAC key comes from: settings, else a key file kept in DATA_DIR.

Holds no redaction logic (that is app/audit/redact.py).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from app.audit.redact import Redactor
from app.settings import Settings

KEY_FILE = "redaction.key"


def create_key_file(path: Path, content: bytes) -> None:
    """Write a key file (0600) unless it exists; when processes race, the first one's wins."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    # link() fails if another process won the race: then its key is the key.
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def load_redaction_key(settings: Settings) -> bytes:
    """The configured key, or the one generated on first use and kept (0600) in data_dir."""
    if settings.redaction_key is not None:
        return settings.redaction_key.get_secret_value().encode()
    path = settings.data_dir / KEY_FILE
    create_key_file(path, secrets.token_hex(32).encode())
    return path.read_text().strip().encode()


def make_redactor(settings: Settings) -> Redactor:
    """The Redactor every ingest path uses."""
    return Redactor(load_redaction_key(settings), settings.redact_paths)
