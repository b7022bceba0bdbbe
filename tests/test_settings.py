"""Settings: token forms, and combinations refused at start-up with the setting's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_inline_tokens_may_end_in_base64_padding() -> None:
    parsed = settings(ingest_tokens="abc+/1==prod-eu-1, xyz=lab").ingest_token_map()
    assert parsed == {"abc+/1=": "prod-eu-1", "xyz": "lab"}


def test_token_file_relative_or_with_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tokens.txt").write_text("# comment\nt1==a\n\nt2=b\n")
    monkeypatch.chdir(tmp_path)
    expected = {"t1=": "a", "t2": "b"}
    assert settings(ingest_tokens="tokens.txt").ingest_token_map() == expected
    assert settings(ingest_tokens=f"@{tmp_path / 'tokens.txt'}").ingest_token_map() == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ingest_tokens": "/nonexistent/tokens"}, "cannot read the token file"),
        ({"ingest_tokens": "tok=../etc"}, "invalid cluster name"),
        ({"ingest_tokens": "=cluster"}, "each entry must be token=value"),
        ({"access_tokens": "tok=root"}, "is not viewer, exporter or admin"),
        ({"auth_proxy_addresses": "10.0.0.0/8,proxy.local"}, "is no IP or network"),
        ({"tls_client_ca": "/ca.pem"}, "need AUDIT_TIMELINE_TLS_CERTFILE"),
        ({"database_url": "mysql://x"}, "must be a postgresql:// URL"),
        ({"es_poll_interval": "soon"}, "es_poll_interval"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**values)


def test_durations_accept_plain_seconds() -> None:
    assert settings(es_poll_interval="2.5").es_poll_interval.total_seconds() == 2.5


def test_cli_reports_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import main

    monkeypatch.setenv("AUDIT_TIMELINE_INGEST_TOKENS", "/nonexistent/tokens")
    assert main(["migrate"]) == 2
