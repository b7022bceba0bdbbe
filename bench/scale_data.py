"""The synthetic cluster behind bench/scale.py: catalogs (namespaces, users, resources) and the
SQL that turns generate_series into audit events shaped exactly as the app stores them.

Every row is a function of its row number g alone (hashint8extended of the request number), so a
fill is deterministic and chunks can run in any order. Rows are numbered in time order; in each
block of six rows, rows 0 and 1 are the two stages of one request (RequestReceived, or
ResponseStarted for a watch, then ResponseComplete) and rows 2..5 are single-stage requests: 5
requests per 6 rows, 20 % of them with two stages. is_request_row is true on the most complete
stage of each request (the lone first stage of a request cut off by the end of the fill is its
own request row), which is what insert_events computes.

The generated `raw` is an audit.k8s.io/v1 Event without its bodies, and every column is what
app.audit.normalize.normalize_event derives from that event plus its bodies
(tests/bench/test_scale_fill.py checks both on a small fill).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

GENERATOR_VERSION = "2"
SPAN = timedelta(days=30)
CLUSTERS = (("prod-eu-1", 40), ("prod-us-1", 30), ("staging", 20), ("dev", 10))
USER_SLOTS = 100_000
NAMESPACE_SLOTS = 10_000
RESOURCE_SLOTS = 1_000
CLUSTER_SLOTS = 100
# One lease renewed by the controller manager's leader election: the busiest object.
BUSIEST = {
    "cluster": "prod-eu-1",
    "resource": "leases",
    "namespace": "kube-system",
    "name": "kube-controller-manager",
}
BUSIEST_EVERY = 2_000  # one request in this many is on the busiest object

# (api group, version, resource, kind, namespaced, weight): 39 resources, weights roughly as
# in a busy cluster (leases, events, pods and nodes dominate).
RESOURCES: tuple[tuple[str, str, str, str, bool, int], ...] = (
    ("", "v1", "pods", "Pod", True, 160),
    ("", "v1", "events", "Event", True, 60),
    ("", "v1", "configmaps", "ConfigMap", True, 90),
    ("", "v1", "secrets", "Secret", True, 60),
    ("", "v1", "services", "Service", True, 30),
    ("", "v1", "endpoints", "Endpoints", True, 40),
    ("", "v1", "serviceaccounts", "ServiceAccount", True, 25),
    ("", "v1", "namespaces", "Namespace", False, 25),
    ("", "v1", "nodes", "Node", False, 60),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, 12),
    ("", "v1", "persistentvolumes", "PersistentVolume", False, 8),
    ("", "v1", "replicationcontrollers", "ReplicationController", True, 2),
    ("", "v1", "limitranges", "LimitRange", True, 3),
    ("", "v1", "resourcequotas", "ResourceQuota", True, 4),
    ("", "v1", "podtemplates", "PodTemplate", True, 2),
    ("apps", "v1", "deployments", "Deployment", True, 40),
    ("apps", "v1", "replicasets", "ReplicaSet", True, 35),
    ("apps", "v1", "statefulsets", "StatefulSet", True, 10),
    ("apps", "v1", "daemonsets", "DaemonSet", True, 10),
    ("apps", "v1", "controllerrevisions", "ControllerRevision", True, 5),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", True, 8),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, 10),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, 6),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, 6),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, 8),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", True, 8),
    ("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False, 2),
    ("batch", "v1", "jobs", "Job", True, 12),
    ("batch", "v1", "cronjobs", "CronJob", True, 6),
    ("coordination.k8s.io", "v1", "leases", "Lease", True, 150),
    ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, 35),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, 5),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, 8),
    ("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, 3),
    ("storage.k8s.io", "v1", "csinodes", "CSINode", False, 4),
    ("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False, 3),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
     False, 6),
    ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
     "ValidatingWebhookConfiguration", False, 3),
    ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
     "MutatingWebhookConfiguration", False, 3),
)  # fmt: skip

APPS = (
    "web", "api", "worker", "frontend", "backend", "cache", "redis", "postgres", "kafka",
    "zookeeper", "nginx", "ingress", "prometheus", "grafana", "alertmanager", "loki", "tempo",
    "coredns", "metrics-server", "cert-manager", "external-dns", "argocd", "vault", "consul",
    "payments", "checkout", "catalog", "search", "auth", "billing", "notifications", "reports",
    "scheduler", "importer", "exporter", "gateway", "mailer", "ledger", "inventory", "pricing",
)  # fmt: skip
TEAMS = (
    "payments", "checkout", "platform", "data", "search", "identity", "billing", "growth",
    "mobile", "ml", "infra", "security", "sre", "web", "analytics",
)  # fmt: skip
KUBE_SYSTEM_SAS = (
    "replicaset-controller", "deployment-controller", "daemon-set-controller",
    "statefulset-controller", "job-controller", "cronjob-controller", "endpoint-controller",
    "endpointslice-controller", "endpointslicemirroring-controller", "namespace-controller",
    "node-controller", "pod-garbage-collector", "generic-garbage-collector",
    "horizontal-pod-autoscaler", "disruption-controller", "resourcequota-controller",
    "service-account-controller", "ttl-controller", "ttl-after-finished-controller",
    "persistent-volume-binder", "attachdetach-controller", "expand-controller",
    "pvc-protection-controller", "pv-protection-controller", "root-ca-cert-publisher",
    "certificate-controller", "clusterrole-aggregation-controller", "bootstrap-signer",
    "token-cleaner", "service-controller", "route-controller", "ephemeral-volume-controller",
    "coredns", "kube-proxy", "metrics-server", "cloud-controller-manager", "ebs-csi-controller-sa",
    "cluster-autoscaler", "aws-node", "kube-state-metrics",
)  # fmt: skip
FIRST = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yuki",
)  # fmt: skip
LAST = ("smith", "jones", "garcia", "chen", "kumar", "novak", "silva", "okafor", "muller",
        "rossi", "tanaka", "dubois", "larsen", "kowalski", "haddad")  # fmt: skip


@dataclass(frozen=True)
class User:
    username: str
    uid: str
    groups: tuple[str, ...]
    user_agent: str
    home_namespace: str | None
    kind: str  # node, control-plane, serviceaccount, human
    may_impersonate: bool
    weight: float


def _uid(text: str) -> str:
    digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def namespaces() -> list[tuple[str, float]]:
    """300 namespaces with Zipf-like weights (kube-system busiest)."""
    names = ["kube-system", "monitoring", "ingress-nginx", "cert-manager", "argocd", "default",
             "kube-public", "kube-node-lease", "logging", "vault"]  # fmt: skip
    for team in TEAMS:
        for env in ("prod", "staging"):
            names.append(f"{team}-{env}")
    index = 0
    while len(names) < 300:
        names.append(f"{TEAMS[index % len(TEAMS)]}-{APPS[index % len(APPS)]}-{index // 15}")
        index += 1
    return [(name, 1.0 / (rank + 2) ** 0.9) for rank, name in enumerate(names)]


def users() -> list[User]:
    """~2,000 users: nodes, control plane, service accounts (system:serviceaccount:ns:name),
    people in teams (some in system:masters, who sometimes impersonate)."""
    result: list[User] = []
    authenticated = "system:authenticated"
    for name, weight in (
        ("system:kube-controller-manager", 300.0),
        ("system:kube-scheduler", 150.0),
        ("system:apiserver", 100.0),
        ("system:kube-proxy", 40.0),
    ):
        result.append(
            User(name, _uid(name), (authenticated,), f"{name.split(':')[1]}/v1.31.2 "
                 "(linux/amd64) kubernetes/5864a46", None, "control-plane", False, weight)
        )  # fmt: skip
    for node in range(100):
        name = f"system:node:ip-10-0-{node // 10}-{node % 10 + 10}.ec2.internal"
        result.append(
            User(name, _uid(name), ("system:nodes", authenticated),
                 "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46", None, "node", False, 25.0)
        )  # fmt: skip
    all_namespaces = [name for name, _ in namespaces()]
    for sa in KUBE_SYSTEM_SAS:
        result.append(_service_account("kube-system", sa, 40.0))
    for rank, namespace in enumerate(all_namespaces[1:]):
        for index, sa in enumerate(("default", APPS[rank % len(APPS)], "deployer", "operator",
                                    APPS[(rank * 7) % len(APPS)] + "-reader")):  # fmt: skip
            result.append(_service_account(namespace, sa, 3.0 / (index + 1) / (rank + 1) ** 0.3))
    for index in range(330):
        name = f"{FIRST[index % len(FIRST)]}.{LAST[(index // len(FIRST)) % len(LAST)]}"
        if index >= len(FIRST) * len(LAST):
            name += str(index)
        team = TEAMS[index % len(TEAMS)]
        admin = index % 33 == 0
        groups = (f"oidc:team-{team}", *(("system:masters",) if admin else ()), authenticated)
        agent = "kubectl/v1.31.1 (darwin/arm64) kubernetes/948afe5"
        if index % 3 == 0:
            agent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Lens/2024.11"
        result.append(
            User(f"{name}@example.com", _uid(name), groups, agent, f"{team}-prod", "human",
                 admin or index % 10 == 0, 2.0)
        )  # fmt: skip
    return result


def _service_account(namespace: str, name: str, weight: float) -> User:
    username = f"system:serviceaccount:{namespace}:{name}"
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
              "system:authenticated")  # fmt: skip
    agent = f"{name}/v0.0.0 (linux/amd64) kubernetes/$Format"
    if namespace == "kube-system":
        agent = f"kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/{name}"
    return User(username, _uid(username), groups, agent, namespace, "serviceaccount", False, weight)


def _slots(weights: Sequence[float], slots: int) -> list[int]:
    """Index per slot, each index taking a share of the slots by its weight (at least one)."""
    total = sum(weights)
    counts = [max(1, round(w / total * slots)) for w in weights]
    # Trim or pad the heaviest so there are exactly `slots`.
    heaviest = max(range(len(counts)), key=counts.__getitem__)
    counts[heaviest] += slots - sum(counts)
    result: list[int] = []
    for index, count in enumerate(counts):
        result.extend([index] * count)
    # Slots are looked up by a hash, so their order does not matter; shuffle for readability.
    random.Random(7).shuffle(result)
    return result


def create_catalogs(conn: psycopg.Connection[Any]) -> None:
    """Temporary lookup tables (slot -> value) that the fill SQL joins by hashed slot."""
    conn.execute(
        "CREATE TEMP TABLE bench_user (slot int PRIMARY KEY, username text, uid text,"
        " groups text[], user_agent text, home_namespace text, kind text,"
        " may_impersonate boolean, ip text) ON COMMIT PRESERVE ROWS"
    )
    conn.execute("CREATE TEMP TABLE bench_namespace (slot int PRIMARY KEY, name text)")
    conn.execute(
        "CREATE TEMP TABLE bench_resource (slot int PRIMARY KEY, api_group text,"
        " api_version text, resource text, kind text, namespaced boolean)"
    )
    conn.execute("CREATE TEMP TABLE bench_cluster (slot int PRIMARY KEY, name text)")
    catalog = users()
    with conn.cursor() as cur:
        with cur.copy(
            "COPY bench_user (slot, username, uid, groups, user_agent, home_namespace, kind,"
            " may_impersonate, ip) FROM STDIN"
        ) as copy:
            for slot, index in enumerate(_slots([u.weight for u in catalog], USER_SLOTS)):
                u = catalog[index]
                ip = f"10.{(index // 250) % 250}.{index % 250}.{10 + index % 200}"
                copy.write_row((slot, u.username, u.uid, list(u.groups), u.user_agent,
                                u.home_namespace, u.kind, u.may_impersonate, ip))  # fmt: skip
        spaces = namespaces()
        with cur.copy("COPY bench_namespace (slot, name) FROM STDIN") as copy:
            for slot, index in enumerate(_slots([w for _, w in spaces], NAMESPACE_SLOTS)):
                copy.write_row((slot, spaces[index][0]))
        with cur.copy(
            "COPY bench_resource (slot, api_group, api_version, resource, kind, namespaced)"
            " FROM STDIN"
        ) as copy:
            for slot, index in enumerate(_slots([r[5] for r in RESOURCES], RESOURCE_SLOTS)):
                copy.write_row((slot, *RESOURCES[index][:5]))
        with cur.copy("COPY bench_cluster (slot, name) FROM STDIN") as copy:
            for slot, index in enumerate(_slots([w for _, w in CLUSTERS], CLUSTER_SLOTS)):
                copy.write_row((slot, CLUSTERS[index][0]))
    conn.execute("ANALYZE bench_user, bench_namespace, bench_resource, bench_cluster")


def request_count(events: int) -> int:
    """How many requests `events` rows hold (5 requests per 6 rows)."""
    return (events - 1) // 6 * 5 + max((events - 1) % 6 - 1, 0) + 1


# u(k): a uniform number in [0, 1) for request r, independent per k.
def _u(k: int) -> str:
    return f"((hashint8extended(q0.r, {k}) & 2147483647)::float8 / 2147483648)"


_TS = """to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

# Tokens @start@, @stop@ (row numbers, 1-based, inclusive), @events@ (N), @requests@ (R),
# @end@ (timestamptz), @span@ and @seed@ are replaced by literals (fill_sql); no % parameters,
# so the SQL can use % and LIKE freely.
FILL_SQL = f"""
INSERT INTO audit_event (
    cluster, audit_id, stage, level, verb, request_uri, api_group, api_version, resource,
    subresource, namespace, name, username, user_uid, user_groups, impersonated_user,
    impersonated_groups, source_ips, user_agent, response_code, response_status,
    response_reason, response_message, authz_decision, authz_reason, requested_at, stage_at,
    source, source_meta, request_object, response_object, raw, is_redacted, ingested_at,
    is_request_row)
SELECT e.cluster, e.audit_id, e.stage, e.level, e.verb, e.request_uri, e.api_group,
    e.api_version, e.resource, e.subresource, e.namespace, e.name, e.username, e.uid,
    e.groups, e.imp_user, e.imp_groups, ARRAY[e.ip], e.user_agent, e.code, e.status,
    e.reason, e.message, e.decision, e.authz_reason, e.requested_at, e.stage_at,
    'webhook', NULL,
    CASE WHEN e.has_bodies AND e.verb = 'patch' THEN jsonb_build_object('spec',
             jsonb_build_object('replicas', e.replicas))
         WHEN e.has_bodies AND e.verb = 'delete' THEN jsonb_build_object(
             'kind', 'DeleteOptions', 'apiVersion', 'v1', 'propagationPolicy', 'Background')
         WHEN e.has_bodies AND e.verb IN ('create', 'update') THEN e.object END,
    CASE WHEN e.has_bodies THEN e.object END,
    jsonb_strip_nulls(jsonb_build_object(
        'kind', 'Event', 'apiVersion', 'audit.k8s.io/v1', 'level', e.level,
        'auditID', e.audit_id, 'stage', e.stage, 'requestURI', e.request_uri, 'verb', e.verb,
        'user', jsonb_build_object('username', e.username, 'uid', e.uid,
                                   'groups', to_jsonb(e.groups)),
        'impersonatedUser', CASE WHEN e.imp_user IS NOT NULL THEN jsonb_build_object(
            'username', e.imp_user, 'groups', to_jsonb(e.imp_groups)) END,
        'sourceIPs', jsonb_build_array(e.ip),
        'userAgent', e.user_agent,
        'objectRef', jsonb_build_object('resource', e.resource, 'namespace', e.namespace,
            'name', e.ref_name, 'apiGroup', e.api_group, 'apiVersion', e.api_version,
            'subresource', e.subresource),
        'responseStatus', CASE WHEN e.code IS NOT NULL THEN jsonb_build_object(
            'metadata', '{{}}'::jsonb, 'code', e.code, 'status', e.status,
            'reason', e.reason, 'message', e.message) END,
        'requestReceivedTimestamp', {_TS.format("e.requested_at")},
        'stageTimestamp', {_TS.format("e.stage_at")},
        'annotations', CASE WHEN e.decision IS NOT NULL THEN jsonb_build_object(
            'authorization.k8s.io/decision', e.decision,
            'authorization.k8s.io/reason', e.authz_reason) END
    )),
    false, e.stage_at + interval '150 milliseconds', e.is_request_row
FROM (
    SELECT d.*,
        CASE WHEN d.verb IN ('list', 'watch', 'create', 'deletecollection') THEN NULL
             ELSE d.obj_name END AS ref_name,
        CASE WHEN d.verb = 'create' AND d.subresource IS NULL AND d.has_bodies
                 THEN d.obj_name
             WHEN d.verb IN ('list', 'watch', 'create', 'deletecollection') THEN NULL
             ELSE d.obj_name END AS name,
        CASE WHEN d.code >= 400 THEN 'Failure' END AS status,
        CASE d.code WHEN 404 THEN 'NotFound' WHEN 409 THEN 'Conflict'
             WHEN 403 THEN 'Forbidden' WHEN 422 THEN 'Invalid' WHEN 500 THEN 'InternalError'
             WHEN 504 THEN 'Timeout' END AS reason,
        CASE d.code
             WHEN 404 THEN d.resource || ' "' || d.obj_name || '" not found'
             WHEN 409 THEN 'Operation cannot be fulfilled on ' || d.resource || ' "'
                 || d.obj_name || '": the object has been modified; please apply your changes'
                 || ' to the latest version and try again'
             WHEN 403 THEN d.resource || ' is forbidden: User "' || d.username
                 || '" cannot ' || d.verb || ' resource "' || d.resource || '"'
             WHEN 422 THEN d.resource || ' "' || d.obj_name || '" is invalid'
             WHEN 500 THEN 'Internal error occurred: etcdserver: request timed out'
             WHEN 504 THEN 'Timeout: request did not complete within the allotted timeout'
        END AS message,
        CASE WHEN d.code IS NULL THEN NULL WHEN d.code = 403 THEN 'forbid'
             ELSE 'allow' END AS decision,
        CASE WHEN d.code IS NULL THEN NULL
             WHEN d.code = 403 OR 'system:masters' = ANY(d.groups) THEN ''
             ELSE 'RBAC: allowed by ClusterRoleBinding "' || d.binding || '" of ClusterRole "'
                 || d.binding || '" to ' || CASE WHEN d.username LIKE 'system:serviceaccount:%'
                 THEN 'ServiceAccount "' || split_part(d.username, ':', 4) || '/'
                     || split_part(d.username, ':', 3) || '"'
                 ELSE 'User "' || d.username || '"' END
        END AS authz_reason,
        CASE WHEN d.api_group IS NULL THEN '/api/v1' ELSE '/apis/' || d.api_group || '/'
             || d.api_version END
            || CASE WHEN d.resource = 'namespaces' THEN '/namespaces'
                    WHEN d.namespace IS NOT NULL THEN '/namespaces/' || d.namespace || '/'
                        || d.resource
                    ELSE '/' || d.resource END
            || CASE WHEN d.verb IN ('list', 'watch', 'create', 'deletecollection') THEN ''
                    ELSE '/' || d.obj_name END
            || coalesce('/' || d.subresource, '')
            || CASE d.verb WHEN 'watch' THEN '?allowWatchBookmarks=true&resourceVersion='
                    || (d.r * 7 % 100000000)::text || '&timeout=7m3s&timeoutSeconds=423&watch=true'
                 WHEN 'list' THEN '?limit=500&resourceVersion=0' ELSE '' END AS request_uri,
        CASE WHEN d.has_bodies THEN jsonb_build_object(
            'kind', d.kind,
            'apiVersion', coalesce(d.api_group || '/', '') || d.api_version,
            'metadata', jsonb_strip_nulls(jsonb_build_object(
                'name', d.obj_name,
                'namespace', CASE WHEN d.resource <> 'namespaces' THEN d.namespace END,
                'uid', md5(d.cluster || d.resource || coalesce(d.namespace, '')
                    || d.obj_name)::uuid,
                'resourceVersion', (d.r * 13 % 1000000000)::text,
                'generation', d.h6 % 40 + 1,
                'creationTimestamp', '2026-09-0' || (d.h6 % 9 + 1) || 'T08:1'
                    || (d.h6 % 10) || ':00Z',
                'labels', jsonb_build_object('app.kubernetes.io/name', d.app,
                    'app.kubernetes.io/managed-by', 'Helm', 'team', d.team),
                'annotations', jsonb_build_object('meta.helm.sh/release-name', d.app,
                    'deployment.kubernetes.io/revision', (d.h6 % 40 + 1)::text))),
            'spec', CASE WHEN d.kind = 'ConfigMap' THEN NULL ELSE
                jsonb_build_object('replicas', d.replicas,
                    'selector', jsonb_build_object('matchLabels',
                        jsonb_build_object('app.kubernetes.io/name', d.app)),
                    'template', jsonb_build_object('spec', jsonb_build_object(
                        'serviceAccountName', d.app,
                        'containers', jsonb_build_array(jsonb_build_object(
                            'name', d.app,
                            'image', 'registry.example.com/' || d.team || '/' || d.app
                                || ':1.' || (d.h6 % 30) || '.' || (d.r % 7),
                            'ports', jsonb_build_array(jsonb_build_object(
                                'containerPort', 8080, 'protocol', 'TCP')),
                            'resources', jsonb_build_object(
                                'requests', jsonb_build_object('cpu', (d.h6 % 9 + 1) * 100
                                    || 'm', 'memory', (d.h6 % 7 + 1) * 128 || 'Mi'))))))) END,
            'data', CASE WHEN d.kind = 'ConfigMap' THEN jsonb_build_object('config.yaml',
                'log_level: info' || chr(10) || 'workers: ' || d.replicas || chr(10)
                || 'feature_flags: [a, b]' || chr(10)) END
        ) END AS object
    FROM (
        SELECT c.*,
            CASE WHEN c.resource = 'namespaces' THEN c.namespace
                 WHEN c.busy THEN '{BUSIEST["name"]}'
                 WHEN c.resource = 'nodes' OR (c.resource = 'leases'
                         AND c.namespace = 'kube-node-lease')
                     THEN 'ip-10-0-' || (c.h6 % 10) || '-' || (c.h6 / 10 % 10 + 10)
                         || '.ec2.internal'
                 WHEN c.resource = 'pods' THEN c.app || '-' || to_hex(c.h6 % 1048576 + 1048576)
                 WHEN c.resource = 'events' THEN c.app || '.' || to_hex(c.h6)
                 WHEN c.resource IN ('replicasets', 'controllerrevisions', 'jobs')
                     THEN c.app || '-' || to_hex(c.h6 % 64 + 64)
                 WHEN c.resource = 'secrets' THEN c.app || '-' || (ARRAY['tls', 'credentials',
                     'token', 'config'])[c.h6 % 4 + 1]
                 ELSE c.app END AS obj_name,
            c.level = 'RequestResponse' AND c.stage = 'ResponseComplete'
                AND coalesce(c.code, 200) < 400 AND c.verb NOT IN ('list', 'watch')
                AS has_bodies
        FROM (
            SELECT b.*,
                CASE WHEN b.multi AND b.p = 0 THEN
                    CASE WHEN b.verb = 'watch' THEN 'ResponseStarted' ELSE 'RequestReceived' END
                    ELSE 'ResponseComplete' END AS stage,
                CASE WHEN b.multi AND b.p = 0 AND b.verb <> 'watch' THEN b.requested_at
                     WHEN b.multi AND b.p = 0 THEN b.requested_at + interval '2 milliseconds'
                     WHEN b.verb = 'watch' THEN b.requested_at
                        + (300 + b.h6 % 240) * interval '1 second'
                     ELSE b.requested_at + (1 + b.h6 % 40) * interval '1 millisecond'
                END AS stage_at,
                CASE WHEN b.multi AND b.p = 0 AND b.verb <> 'watch' THEN NULL
                     WHEN b.u7 < 0.005 THEN 403
                     WHEN b.u7 < 0.0055 THEN CASE WHEN b.verb = 'list' THEN 504 ELSE 500 END
                     WHEN b.verb = 'get' AND b.u7 < 0.04 THEN 404
                     WHEN b.verb = 'update' AND b.u7 < 0.03 THEN 409
                     WHEN b.verb IN ('create', 'update', 'patch') AND b.u7 < 0.035 THEN 422
                     WHEN b.verb = 'create' THEN 201 ELSE 200 END AS code,
                CASE WHEN b.busy THEN NULL
                     WHEN b.verb IN ('update', 'patch') AND b.u12 < 0.4 AND b.resource IN (
                         'pods', 'deployments', 'statefulsets', 'daemonsets', 'nodes')
                         THEN 'status'
                     WHEN b.verb = 'get' AND b.resource = 'pods' AND b.u12 < 0.05 THEN 'log'
                END AS subresource,
                b.p <> 0 OR NOT b.multi OR b.g = @events@ AS is_request_row
            FROM (
                SELECT a.*,
                    a.r % 5 = 0 AS multi,
                    CASE WHEN a.busy THEN 'Metadata'
                         WHEN a.u5 < 0.085 AND (a.u3 < 0.45 OR a.u3 >= 0.85)
                             AND a.resource NOT IN ('secrets', 'events')
                             THEN 'RequestResponse'
                         ELSE 'Metadata' END AS level,
                    CASE WHEN a.busy THEN CASE WHEN a.u3 < 0.8 THEN 'update' ELSE 'get' END
                         WHEN a.u3 < 0.45 THEN 'get' WHEN a.u3 < 0.70 THEN 'list'
                         WHEN a.u3 < 0.85 THEN 'watch' WHEN a.u3 < 0.90 THEN 'update'
                         WHEN a.u3 < 0.95 THEN 'patch' WHEN a.u3 < 0.975 THEN 'create'
                         WHEN a.u3 < 0.995 THEN 'delete' ELSE 'deletecollection' END AS verb
                FROM (
                    SELECT q.g, q.p, q.r, q.busy,
                        @end@::timestamptz - @span@::interval
                            + @span@::interval * (q.r::float8 / @requests@) AS requested_at,
                        md5(@seed@ || q.r)::uuid::text AS audit_id,
                        CASE WHEN q.busy THEN '{BUSIEST["cluster"]}' ELSE cl.name END AS cluster,
                        CASE WHEN q.busy THEN 'system:kube-controller-manager'
                             ELSE us.username END AS username,
                        CASE WHEN q.busy THEN bu.uid ELSE us.uid END AS uid,
                        CASE WHEN q.busy THEN bu.groups ELSE us.groups END AS groups,
                        CASE WHEN q.busy THEN bu.user_agent ELSE us.user_agent END AS user_agent,
                        CASE WHEN q.busy THEN bu.ip ELSE us.ip END AS ip,
                        CASE WHEN NOT q.busy AND us.may_impersonate AND q.u9 < 0.3
                             THEN im.username END AS imp_user,
                        CASE WHEN NOT q.busy AND us.may_impersonate AND q.u9 < 0.3
                             THEN im.groups END AS imp_groups,
                        CASE WHEN q.busy THEN 'coordination.k8s.io'
                             ELSE nullif(rs.api_group, '') END AS api_group,
                        CASE WHEN q.busy THEN 'v1' ELSE rs.api_version END AS api_version,
                        CASE WHEN q.busy THEN 'leases' ELSE rs.resource END AS resource,
                        CASE WHEN q.busy THEN 'Lease' ELSE rs.kind END AS kind,
                        CASE WHEN q.busy THEN '{BUSIEST["namespace"]}'
                             WHEN NOT rs.namespaced AND rs.resource <> 'namespaces' THEN NULL
                             WHEN us.home_namespace IS NOT NULL AND q.u1 < 0.7
                                 THEN us.home_namespace
                             ELSE ns.name END AS namespace,
                        (ARRAY{list(APPS)!r})[(q.h6 % {len(APPS)}) + 1] AS app,
                        (ARRAY{list(TEAMS)!r})[(q.h6 / 64 % {len(TEAMS)}) + 1] AS team,
                        CASE WHEN us.kind = 'node' THEN 'system:node'
                             WHEN us.kind = 'serviceaccount' THEN 'edit'
                             ELSE 'view' END AS binding,
                        q.h6 % 5 + 1 AS replicas, q.h6, q.u3, q.u5, q.u7, q.u12
                    FROM (
                        SELECT q0.g, q0.p, q0.r,
                            hashint8extended(q0.r, 20) % {BUSIEST_EVERY} = 0 AS busy,
                            {_u(1)} AS u1, {_u(9)} AS u9, {_u(5)} AS u5, {_u(3)} AS u3,
                            {_u(7)} AS u7, {_u(12)} AS u12,
                            hashint8extended(q0.r, 6) & 2147483647 AS h6,
                            (hashint8extended(q0.r, 2) & 2147483647) % {USER_SLOTS} AS us_slot,
                            (hashint8extended(q0.r, 10) & 2147483647) % {USER_SLOTS} AS im_slot,
                            (hashint8extended(q0.r, 11) & 2147483647) % {NAMESPACE_SLOTS}
                                AS ns_slot,
                            (hashint8extended(q0.r, 4) & 2147483647) % {RESOURCE_SLOTS}
                                AS rs_slot,
                            (hashint8extended(q0.r, 8) & 2147483647) % {CLUSTER_SLOTS} AS cl_slot
                        FROM (
                            SELECT g, (g - 1) % 6 AS p,
                                (g - 1) / 6 * 5 + greatest((g - 1) % 6 - 1, 0) AS r
                            FROM generate_series(@start@::bigint, @stop@::bigint) AS g
                            OFFSET 0
                        ) AS q0
                        OFFSET 0
                    ) AS q
                    JOIN bench_user us ON us.slot = q.us_slot
                    JOIN bench_user im ON im.slot = q.im_slot
                    JOIN bench_namespace ns ON ns.slot = q.ns_slot
                    JOIN bench_resource rs ON rs.slot = q.rs_slot
                    JOIN bench_cluster cl ON cl.slot = q.cl_slot
                    CROSS JOIN (SELECT uid, groups, user_agent, ip FROM bench_user
                                WHERE username = 'system:kube-controller-manager' LIMIT 1) AS bu
                    OFFSET 0
                ) AS a
                OFFSET 0
            ) AS b
            OFFSET 0
        ) AS c
        OFFSET 0
    ) AS d
    OFFSET 0
) AS e
"""


def fill_sql(*, start: int, stop: int, events: int, end: datetime, seed: str) -> str:
    """FILL_SQL for rows start..stop (inclusive, 1-based) of an `events`-row fill ending at end."""
    values = {
        "start": str(int(start)),
        "stop": str(int(stop)),
        "events": str(int(events)),
        "requests": str(request_count(events)),
        "end": _literal(end.isoformat()),
        "span": _literal(f"{int(SPAN.total_seconds())} seconds"),
        "seed": _literal(seed),
    }
    sql = FILL_SQL
    for key, value in values.items():
        sql = sql.replace(f"@{key}@", value)
    return sql


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fill_range(
    conn: psycopg.Connection[Any], *, start: int, stop: int, events: int, end: datetime, seed: str
) -> None:
    """Insert rows start..stop (inclusive, 1-based) of an `events`-row fill ending at `end`."""
    conn.execute(fill_sql(start=start, stop=stop, events=events, end=end, seed=seed))
