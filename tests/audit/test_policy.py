"""Audit policy checker: kube-apiserver's matching rules, requirements, traps, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from app.audit.policy import (
    CALICO_REQUIREMENTS,
    PolicyError,
    Request,
    Requirement,
    RequirementSet,
    check_pair,
    check_policy,
    evaluate,
    load_policies,
    load_requirements,
)
from app.cli import main

POLICIES = Path(__file__).resolve().parents[1] / "fixtures" / "policy"


def policy_of(rules: str, head: str = "") -> object:
    text = "apiVersion: audit.k8s.io/v1\nkind: Policy\n" + dedent(head) + "rules:\n" + dedent(rules)
    return load_policies(text, source="p.yaml")[0]


# One policy exercising every matcher; each case names the rule kube-apiserver picks.
MATRIX = policy_of(
    """
    - level: None
      users: ["system:kube-proxy"]
      verbs: ["watch"]
      resources: [{group: "", resources: ["endpoints"]}]
    - level: None
      userGroups: ["system:nodes"]
      verbs: ["get"]
    - level: Metadata
      resources: [{group: "", resources: ["pods/log", "*/status"]}]
    - level: Request
      resources: [{group: "", resources: ["configmaps"], resourceNames: ["leader"]}]
    - level: RequestResponse
      namespaces: ["kube-system"]
      resources: [{group: "", resources: ["configmaps"]}]
    - level: Metadata
      namespaces: [""]
    - level: Request
      resources: [{group: "apps", resources: ["deployments/*"]}]
    - level: None
      nonResourceURLs: ["/healthz*", "/version"]
    - level: RequestResponse
      resources: [{group: "networking.k8s.io"}]
    - level: Request
      resources: [{group: "*", resources: ["leases"]}]
    - level: Metadata
      verbs: ["delete"]
    """
)

CASES = [
    # (request, expected level, expected rule index or None)
    (Request("watch", user="system:kube-proxy", resource="endpoints"), "None", 0),
    (Request("list", user="system:kube-proxy", resource="endpoints"), "Metadata", 5),
    (Request("watch", user="alice", resource="endpoints", namespace="ns"), "None", None),
    (Request("get", user="n1", groups=("system:nodes",), resource="nodes"), "None", 1),
    (Request("get", user="n1", groups=("x", "system:nodes"), is_resource=False), "None", 1),
    (Request("get", user="n1", groups=("x",), resource="pods", namespace="a"), "None", None),
    (Request("get", resource="pods", subresource="log", namespace="a"), "Metadata", 2),
    (Request("update", resource="pods", subresource="status", namespace="a"), "Metadata", 2),
    (Request("update", resource="nodes", subresource="status"), "Metadata", 2),
    (Request("update", resource="pods", subresource="exec", namespace="a"), "None", None),
    (Request("get", resource="configmaps", namespace="a", name="leader"), "Request", 3),
    (
        Request("get", resource="configmaps", namespace="kube-system", name="x"),
        "RequestResponse",
        4,
    ),
    (Request("get", resource="configmaps", namespace="default", name="x"), "None", None),
    (Request("create", resource="nodes", namespace=""), "Metadata", 5),
    (Request("update", api_group="apps", resource="deployments", namespace="a"), "Request", 6),
    (
        Request(
            "update", api_group="apps", resource="deployments", subresource="scale", namespace="a"
        ),
        "Request",
        6,
    ),
    (Request("update", api_group="apps", resource="statefulsets", namespace="a"), "None", None),
    (Request("get", is_resource=False, path="/healthz/ready"), "None", 7),
    (Request("get", is_resource=False, path="/version"), "None", 7),
    (Request("get", is_resource=False, path="/versions"), "None", None),
    (
        Request("patch", api_group="networking.k8s.io", resource="networkpolicies", namespace="a"),
        "RequestResponse",
        8,
    ),
    (
        Request("patch", api_group="extensions", resource="networkpolicies", namespace="a"),
        "None",
        None,
    ),
    (
        Request("update", api_group="coordination.k8s.io", resource="leases", namespace="a"),
        "Request",
        9,
    ),
    (Request("delete", api_group="batch", resource="jobs", namespace="a"), "Metadata", 10),
    (Request("delete", is_resource=False, path="/apis/x"), "Metadata", 10),
]


@pytest.mark.parametrize(("request_", "level", "rule"), CASES)
def test_first_matching_rule_decides(request_: Request, level: str, rule: int | None) -> None:
    decision = evaluate(MATRIX, request_)  # type: ignore[arg-type]
    assert decision.level == level
    assert (decision.rule.index if decision.rule else None) == rule


def test_policy_and_rule_omit_stages_are_joined() -> None:
    policy = policy_of(
        """
        - level: Metadata
          omitStages: [ResponseStarted]
        """,
        head="omitStages: [RequestReceived]\n",
    )
    decision = evaluate(policy, Request("get", resource="pods"))  # type: ignore[arg-type]
    assert decision.omit_stages == {"RequestReceived", "ResponseStarted"}


def test_omit_managed_fields_rule_overrides_policy() -> None:
    policy = policy_of(
        """
        - level: Metadata
          verbs: [get]
          omitManagedFields: false
        - level: Metadata
        """,
        head="omitManagedFields: true\n",
    )
    assert not evaluate(policy, Request("get")).omit_managed_fields  # type: ignore[arg-type]
    assert evaluate(policy, Request("list")).omit_managed_fields  # type: ignore[arg-type]


def _fixture(name: str) -> object:
    return load_policies((POLICIES / name).read_text(), source=name)[0]


def test_calico_sample_meets_the_calico_requirements() -> None:
    report = check_policy(_fixture("calico-sample-policy.yaml"), CALICO_REQUIREMENTS)  # type: ignore[arg-type]
    assert report.is_met
    assert {r.level for r in report.results} == {"RequestResponse"}
    assert len(report.results) == 24


def test_kubernetes_docs_example_against_calico() -> None:
    report = check_policy(_fixture("kubernetes-docs-example-policy.yaml"), CALICO_REQUIREMENTS)  # type: ignore[arg-type]
    by = {
        (r.requirement.group, r.requirement.resource, r.requirement.verb): r for r in report.results
    }
    # Pods: its first rule; the other core resources fall to "core and extensions at Request";
    # networking.k8s.io falls through to the catch-all Metadata rule.
    assert by[("", "pods", "update")].verdict == "met"
    assert by[("", "pods", "update")].rule.index == 0  # type: ignore[union-attr]
    for resource in ("namespaces", "serviceaccounts", "endpoints"):
        result = by[("", resource, "patch")]
        assert (result.level, result.rule.index, result.verdict) == ("Request", 7, "not met")  # type: ignore[union-attr]
    assert by[("extensions", "networkpolicies", "create")].level == "Request"
    netpol = by[("networking.k8s.io", "networkpolicies", "delete")]
    assert (netpol.level, netpol.rule.index) == ("Metadata", 8)  # type: ignore[union-attr]
    assert any("broad rule" in t for t in netpol.traps)
    assert not report.is_met


def test_gke_style_policy_against_calico() -> None:
    report = check_policy(_fixture("gke-style-policy.yaml"), CALICO_REQUIREMENTS)  # type: ignore[arg-type]
    verdicts = {(r.requirement.resource, r.requirement.verb): r for r in report.results}
    # RequestResponse for known APIs, but controller updates of endpoints in kube-system are
    # dropped by rules 4 and 6: partly met.
    assert verdicts[("pods", "create")].level == "RequestResponse"
    assert verdicts[("pods", "create")].rule.index == 15  # type: ignore[union-attr]
    endpoints = verdicts[("endpoints", "update")]
    assert endpoints.verdict == "partly met"
    assert [e.rule.index for e in endpoints.exceptions] == [4, 6]
    assert "kube-system" in endpoints.exceptions[0].condition
    assert verdicts[("endpoints", "delete")].verdict == "met"
    assert sum(r.verdict == "met" for r in report.results) == 23
    assert not report.is_met  # partly met is not met: exit 1
    # "get" of a Secret (extra requirement at Metadata): rule 13 gives Metadata.
    extra = check_pair(
        _fixture("gke-style-policy.yaml"),  # type: ignore[arg-type]
        Requirement("", "secrets", "get", "Metadata"),
        must_omit=frozenset(),
    )
    assert (extra.verdict, extra.rule.index) == ("met", 13)  # type: ignore[union-attr]


REQ = Requirement("networking.k8s.io", "networkpolicies", "update", "RequestResponse")


def test_trap_broad_metadata_rule_shadows_the_specific_one() -> None:
    policy = policy_of(
        """
        - level: Metadata
          verbs: [create, update, patch, delete]
        - level: RequestResponse
          resources: [{group: networking.k8s.io, resources: [networkpolicies]}]
        """
    )
    result = check_pair(policy, REQ, must_omit=frozenset())  # type: ignore[arg-type]
    assert result.verdict == "not met"
    assert result.rule.index == 0  # type: ignore[union-attr]
    assert any(t.startswith("shadowed: rules[1]") and "comes first" in t for t in result.traps)


def test_trap_level_none_rule_shadows() -> None:
    policy = policy_of(
        """
        - level: None
          resources: [{group: networking.k8s.io}]
        - level: RequestResponse
          resources: [{group: networking.k8s.io, resources: [networkpolicies]}]
        """
    )
    result = check_pair(policy, REQ, must_omit=frozenset())  # type: ignore[arg-type]
    assert result.level == "None"
    assert any("shadowed" in t for t in result.traps)


def test_trap_omit_response_complete() -> None:
    policy = policy_of(
        """
        - level: RequestResponse
          omitStages: [ResponseComplete]
        """
    )
    result = check_pair(policy, REQ, must_omit=frozenset())  # type: ignore[arg-type]
    assert result.verdict == "not met"
    assert "ResponseComplete" in result.problems[0]
    assert any("ResponseComplete" in t for t in result.traps)


def test_trap_resources_without_group() -> None:
    policy = policy_of(
        """
        - level: RequestResponse
          resources: [{resources: [networkpolicies, pods]}]
        """
    )
    assert any("without a group" in w for w in policy.warnings)  # type: ignore[attr-defined]
    result = check_pair(policy, REQ, must_omit=frozenset())  # type: ignore[arg-type]
    assert result.verdict == "not met"
    assert any("without a group" in t and "group: networking.k8s.io" in t for t in result.traps)
    pods = check_pair(
        policy, Requirement("", "pods", "update", "RequestResponse"), must_omit=frozenset()
    )  # type: ignore[arg-type]
    assert pods.verdict == "met"


def test_trap_extensions_network_policy_forgotten() -> None:
    policy = policy_of(
        """
        - level: RequestResponse
          resources: [{group: networking.k8s.io, resources: [networkpolicies]}]
        """,
        head="omitStages: [RequestReceived]\n",
    )
    report = check_policy(
        policy,  # type: ignore[arg-type]
        RequirementSet(
            (REQ, Requirement("extensions", "networkpolicies", "update", "RequestResponse")),
            frozenset({"RequestReceived"}),
        ),
    )
    ok, legacy = report.results
    assert ok.verdict == "met"
    assert legacy.verdict == "not met"
    assert any("add group: extensions" in t for t in legacy.traps)


def test_request_received_must_be_omitted_when_required() -> None:
    policy = policy_of("- level: RequestResponse\n")
    result = check_pair(policy, REQ, must_omit=frozenset({"RequestReceived"}))  # type: ignore[arg-type]
    assert result.verdict == "not met"
    assert "RequestReceived" in result.problems[0]


def test_user_and_namespace_rules_before_the_decider_are_exceptions() -> None:
    policy = policy_of(
        """
        - level: None
          users: [ci-bot]
        - level: Metadata
          namespaces: [scratch]
          resources:
          - {group: networking.k8s.io, resources: [networkpolicies], resourceNames: [tmp]}
        - level: RequestResponse
          namespaces: [prod]
        - level: RequestResponse
        """
    )
    result = check_pair(policy, REQ, must_omit=frozenset())  # type: ignore[arg-type]
    assert result.verdict == "partly met"
    assert result.rule.index == 3  # type: ignore[union-attr]
    assert [(e.rule.index, e.condition) for e in result.exceptions] == [
        (0, "users ['ci-bot']"),
        (1, "in namespaces ['scratch'] and names ['tmp']"),
    ]


def test_authenticated_group_exception_is_named_as_everyone() -> None:
    policy = policy_of(
        """
        - level: Metadata
          userGroups: ["system:authenticated"]
        - level: RequestResponse
        """
    )
    result = check_pair(policy, REQ, must_omit=frozenset())  # type: ignore[arg-type]
    assert result.verdict == "partly met"
    assert result.exceptions[0].condition.endswith("(every authenticated user)")


def test_cluster_scoped_namespace_rule() -> None:
    policy = policy_of(
        """
        - level: Metadata
          namespaces: [""]
        - level: RequestResponse
        """
    )
    cluster_scoped = check_pair(
        policy,
        Requirement("rbac.authorization.k8s.io", "clusterroles", "update", "RequestResponse"),
        must_omit=frozenset(),  # type: ignore[arg-type]
    )
    assert (cluster_scoped.rule.index, cluster_scoped.verdict) == (0, "not met")  # type: ignore[union-attr]
    namespaced = check_pair(
        policy, Requirement("", "pods", "update", "RequestResponse"), must_omit=frozenset()
    )  # type: ignore[arg-type]
    assert (namespaced.rule.index, namespaced.verdict) == (1, "met")  # type: ignore[union-attr]


def test_requirement_file_adds_pairs(tmp_path: Path) -> None:
    text = """
    omitStages: [RequestReceived]
    requirements:
      - level: Metadata
        verbs: [get, list]
        resources: [{group: "", resources: [secrets]}]
    """
    reqs = load_requirements(dedent(text), source="r.yaml")
    assert [r.label for r in reqs.requirements] == ["get secrets", "list secrets"]
    with pytest.raises(PolicyError, match=r"r.yaml:3: requirements\[0\].level"):
        load_requirements("requirements:\n  - verbs: [get]\n    level: Loud\n", source="r.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [{level: Metadata}]\n", r"p.yaml:1: kind: must be Policy"),
        ("kind: Policy\napiVersion: v1\nrules: []\n", r"p.yaml:2: apiVersion: 'v1'"),
        ("kind: Policy\napiVersion: audit.k8s.io/v1\nrules: []\n", r"at least one rule"),
        (
            "kind: Policy\napiVersion: audit.k8s.io/v1\nrules:\n  - verbs: [get]\n",
            r"p.yaml:4: rules\[0\]: level: required",
        ),
        (
            "kind: Policy\napiVersion: audit.k8s.io/v1\nrules:\n- level: None\n- level: Loud\n",
            r"p.yaml:5: rules\[1\].level: 'Loud'",
        ),
        (
            "kind: Policy\napiVersion: audit.k8s.io/v1\nomitStages: [Done]\n"
            "rules: [{level: None}]\n",
            r"p.yaml:3: omitStages\[0\]: 'Done': allowed stages",
        ),
        (
            "kind: Policy\napiVersion: audit.k8s.io/v1\nrules:\n"
            "- level: None\n  nonResourceURLs: [/a*b]\n",
            r"p.yaml:5: rules\[0\].nonResourceURLs\[0\]: '/a\*b': the wildcard",
        ),
        (
            "kind: Policy\napiVersion: audit.k8s.io/v1\nrules:\n"
            "- level: None\n  nonResourceURLs: [/x]\n  namespaces: [a]\n",
            r"both regular resources and non-resource URLs",
        ),
        (
            "kind: Policy\napiVersion: audit.k8s.io/v1\nrules:\n- level: None\n"
            "  resources:\n  - group: apps/v1\n",
            r"p.yaml:6: rules\[0\].resources\[0\].group: 'apps/v1'.*without its version",
        ),
        (
            "kind: Policy\napiVersion: audit.k8s.io/v1\nrules:\n- level: None\n"
            "  resources:\n  - resourceNames: [x]\n",
            r"using resourceNames requires at least one resource",
        ),
        ("kind: Policy\n  apiVersion: [\n", r"p.yaml:2: not valid YAML or JSON"),
        (
            '{"kind": "Policy", "apiVersion": "audit.k8s.io/v1", "rules": [{"level": 3}]}',
            r"level: 3",
        ),
    ],
)
def test_malformed_policy_names_line_and_field(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policies(text, source="p.yaml")


def test_unknown_fields_and_v1beta1_warn() -> None:
    policy = load_policies(
        "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nomitStage: [RequestReceived]\n"
        "rules: [{level: Metadata}]\n",
        source="p.yaml",
    )[0]
    assert any("1.24" in w for w in policy.warnings)
    assert any(w.startswith("line 3: omitStage: unknown field") for w in policy.warnings)


def test_json_and_several_documents() -> None:
    text = (
        '{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None"}]}\n'
        "---\napiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: RequestResponse}]\n"
    )
    first, second = load_policies(text, source="p")
    assert first.source == "p (document 1)"
    assert first.rules[0].level == "None"
    assert second.rules[0].level == "RequestResponse"


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-policy", str(POLICIES / "calico-sample-policy.yaml")]) == 0
    assert "MET: 24 of 24" in capsys.readouterr().out
    docs = str(POLICIES / "kubernetes-docs-example-policy.yaml")
    assert main(["check-policy", docs, "--format", "json"]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["met"] is False
    first = answer["policies"][0]["results"][0]
    assert (first["resource"], first["verb"], first["rule"], first["verdict"]) == (
        "pods",
        "create",
        0,
        "met",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n")
    assert main(["check-policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:4: rules[0].level" in err
    assert "Traceback" not in err
    assert main(["check-policy", str(tmp_path / "missing.yaml")]) == 2
    assert main(["check-policy", str(POLICIES / "calico-sample-policy.yaml"), "--no-default"]) == 2
    assert "no requirements" in capsys.readouterr().err
    extra = tmp_path / "rbac.yaml"
    extra.write_text(
        "requirements:\n- level: Metadata\n  verbs: [create, delete]\n"
        "  resources: [{group: rbac.authorization.k8s.io, resources: [roles]}]\n"
    )
    calico = str(POLICIES / "calico-sample-policy.yaml")
    # The Calico sample logs nothing about RBAC objects: the extra requirement fails it.
    assert main(["check-policy", calico, "--require", str(extra)]) == 1
    out = capsys.readouterr().out
    assert "FAIL create roles.rbac.authorization.k8s.io" in out
    assert "no rule matches" in out


@pytest.mark.parametrize(
    "path",
    sorted((POLICIES.parents[2] / "deploy" / "kubernetes").glob("audit-policy*.yaml")),
    ids=lambda p: p.name,
)
def test_shipped_audit_policies_meet_the_calico_requirements(path: Path) -> None:
    # The policies the project tells users to deploy must pass its own checker.
    assert main(["check-policy", str(path)]) == 0
