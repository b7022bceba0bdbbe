"""The Ed25519 key that signs report bundles: generated on first use, kept (0600) in DATA_DIR.

Holds no bundle logic (that is app/audit/bundle.py).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.redaction_key import create_key_file
from app.settings import Settings

KEY_FILE = "report-signing.key"


def load_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The key in data_dir, created there on first use (another process's key wins a race)."""
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        create_key_file(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key
