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
        ({"ingest_tokens": "/nonexistent/tokens"}, "read as a token file, which failed"),
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


def test_empty_token_variables_mean_unset() -> None:
    assert settings(ingest_tokens="", access_tokens=" ").ingest_token_map() == {}
    assert settings(access_tokens=" ").access_token_map() == {}


def test_cli_reports_configuration_errors_without_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    # A token whose "=role" was forgotten is read as a file name; it must not be printed.
    monkeypatch.setenv("AUDIT_TIMELINE_ACCESS_TOKENS", "s3cret-token-value")
    monkeypatch.setenv("AUDIT_TIMELINE_INGEST_TOKENS", "ingest-s3cret=prod")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err
    assert "read as a token file" in err
    assert "s3cret" not in err
