"""kube-apiserver audit Policy: parse (with line numbers), evaluate a request, check requirements.

Pure: matching follows kube-apiserver's pkg/audit/policy (rules in order, first match wins,
policy omitStages joined to each rule's). Reading files and printing belong to the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
API_VERSIONS = ("audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1")
_RULE_FIELDS = {
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
}
_POLICY_FIELDS = {"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"}
_GROUP_FIELDS = {"group", "resources", "resourceNames"}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# Where well-known resources live (a resource listed without its group means the core group).
KNOWN_GROUPS: dict[str, tuple[str, ...]] = {
    "networkpolicies": ("networking.k8s.io", "extensions", "projectcalico.org"),
    "ingresses": ("networking.k8s.io", "extensions"),
    "deployments": ("apps", "extensions"),
    "daemonsets": ("apps", "extensions"),
    "replicasets": ("apps", "extensions"),
    "statefulsets": ("apps",),
    "jobs": ("batch",),
    "cronjobs": ("batch",),
    "roles": ("rbac.authorization.k8s.io",),
    "rolebindings": ("rbac.authorization.k8s.io",),
    "clusterroles": ("rbac.authorization.k8s.io",),
    "clusterrolebindings": ("rbac.authorization.k8s.io",),
    "customresourcedefinitions": ("apiextensions.k8s.io",),
    "tokenreviews": ("authentication.k8s.io",),
    "globalnetworkpolicies": ("projectcalico.org", "crd.projectcalico.org"),
}
CORE_RESOURCES = frozenset(
    {
        "pods",
        "namespaces",
        "serviceaccounts",
        "endpoints",
        "services",
        "configmaps",
        "secrets",
        "nodes",
        "persistentvolumes",
        "persistentvolumeclaims",
        "events",
        "limitranges",
        "resourcequotas",
        "replicationcontrollers",
        "podtemplates",
        "componentstatuses",
        "bindings",
    }
)
# Cluster-scoped resources: their requests carry the namespace "" (namespaces: the object's name).
CLUSTER_SCOPED = frozenset(
    {
        "nodes",
        "persistentvolumes",
        "clusterroles",
        "clusterrolebindings",
        "customresourcedefinitions",
        "storageclasses",
        "priorityclasses",
        "tokenreviews",
        "globalnetworkpolicies",
    }
)


class PolicyError(ValueError):
    """A policy (or requirement file) kube-apiserver would refuse; says where and what."""


@dataclass(frozen=True)
class GroupResources:
    group: str
    resources: tuple[str, ...]
    resource_names: tuple[str, ...]
    has_group_key: bool
    path: str
    line: int


@dataclass(frozen=True)
class Rule:
    index: int
    line: int
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    # Already joined with the policy's omitStages, as kube-apiserver does when it loads.
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None

    def render(self) -> str:
        """One line: rules[i] and its fields as written."""
        parts = [f"level: {self.level}"]
        if self.users:
            parts.append(f"users: {list(self.users)}")
        if self.user_groups:
            parts.append(f"userGroups: {list(self.user_groups)}")
        if self.verbs:
            parts.append(f"verbs: {list(self.verbs)}")
        if self.namespaces:
            parts.append(f"namespaces: {list(self.namespaces)}")
        if self.resources:
            groups = []
            for gr in self.resources[:4]:
                text = f"{gr.group or '(core)'}"
                if gr.resources:
                    text += f" {list(gr.resources)}"
                if gr.resource_names:
                    text += f" names {list(gr.resource_names)}"
                groups.append(text)
            more = len(self.resources) - len(groups)
            parts.append("resources: " + "; ".join(groups) + (f"; {more} more" if more else ""))
        if self.non_resource_urls:
            parts.append(f"nonResourceURLs: {list(self.non_resource_urls)}")
        if self.omit_stages:
            parts.append(f"omitStages: {sorted(self.omit_stages)}")
        return f"rules[{self.index}] (line {self.line}): " + ", ".join(parts)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    omit_stages: frozenset[str]
    omit_managed_fields: bool
    api_version: str
    warnings: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Request:
    """What kube-apiserver knows of a request when it picks a level."""

    verb: str
    user: str = ""
    groups: tuple[str, ...] = ()
    is_resource: bool = True
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True)
class Decision:
    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool
    rule: Rule | None


# --- loading -----------------------------------------------------------------------------


class _Located:
    """Plain values from YAML nodes, remembering the line of every field path."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}

    def value(self, node: yaml.Node, path: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                child = f"{path}.{key}" if path else str(key)
                self.lines[child] = key_node.start_mark.line + 1
                out[str(key)] = self.value(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load_policies(text: str, *, source: str) -> list[Policy]:
    """Every Policy document in text (YAML or JSON); PolicyError names the line and field."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{where}: not valid YAML or JSON: {problem}") from None
    policies = []
    for number, node in enumerate(n for n in nodes if n is not None):
        located = _Located()
        data = located.value(node, "")
        label = source if len(nodes) == 1 else f"{source} (document {number + 1})"
        policies.append(_policy(data, located.lines, label))
    if not policies:
        raise PolicyError(f"{source}: empty: no Policy document")
    return policies


def _fail(source: str, lines: dict[str, int], path: str, message: str) -> PolicyError:
    # The nearest enclosing field that has a line (a missing field: the mapping it belongs in).
    probe = path
    line = lines.get(probe)
    while line is None and probe:
        shorter = re.sub(r"(\.?[^.\[]*|\[\d+\])$", "", probe)
        probe = "" if shorter == probe else shorter
        line = lines.get(probe)
    where = f"{source}:{line}" if line else source
    return PolicyError(f"{where}: {path or 'document'}: {message}")


def _strings(value: Any, path: str, source: str, lines: dict[str, int]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(source, lines, path, "must be a list of strings")
    return tuple(value)


def _stages(value: Any, path: str, source: str, lines: dict[str, int]) -> frozenset[str]:
    stages = _strings(value, path, source, lines)
    for i, stage in enumerate(stages):
        if stage not in STAGES:
            raise _fail(
                source, lines, f"{path}[{i}]", f"{stage!r}: allowed stages are {', '.join(STAGES)}"
            )
    return frozenset(stages)


def _policy(data: Any, lines: dict[str, int], source: str) -> Policy:
    if not isinstance(data, dict):
        raise _fail(source, lines, "", "a Policy must be a mapping (apiVersion, kind, rules)")
    warnings: list[str] = []
    api_version = data.get("apiVersion")
    if data.get("kind") != "Policy":
        raise _fail(source, lines, "kind", f"must be Policy, not {data.get('kind')!r}")
    if api_version not in API_VERSIONS:
        raise _fail(
            source, lines, "apiVersion", f"{api_version!r}: kube-apiserver reads audit.k8s.io/v1"
        )
    if api_version != "audit.k8s.io/v1":
        warnings.append(
            f"apiVersion {api_version}: kube-apiserver 1.24 and later refuse it (only"
            " audit.k8s.io/v1); evaluated with the same rules"
        )
    warnings += _unknown_fields(data, _POLICY_FIELDS, "", source, lines)
    omit = _stages(data.get("omitStages"), "omitStages", source, lines)
    omit_managed = data.get("omitManagedFields", False)
    if not isinstance(omit_managed, bool):
        raise _fail(source, lines, "omitManagedFields", "must be true or false")
    raw_rules = data.get("rules")
    if raw_rules is None or raw_rules == []:
        raise _fail(source, lines, "rules", "a policy needs at least one rule (kube-apiserver)")
    if not isinstance(raw_rules, list):
        raise _fail(source, lines, "rules", "must be a list of rules")
    rules = []
    for i, raw_rule in enumerate(raw_rules):
        rule, rule_warnings = _rule(raw_rule, i, omit, source, lines)
        rules.append(rule)
        warnings += rule_warnings
    return Policy(
        rules=tuple(rules),
        omit_stages=omit,
        omit_managed_fields=omit_managed,
        api_version=str(api_version),
        warnings=tuple(warnings),
        source=source,
    )


def _unknown_fields(
    data: dict[str, Any], known: set[str], path: str, source: str, lines: dict[str, int]
) -> list[str]:
    out = []
    for key in data:
        if key not in known:
            where = f"{path}.{key}" if path else key
            out.append(
                f"line {lines.get(where, '?')}: {where}: unknown field, ignored by kube-apiserver"
                f" (known: {', '.join(sorted(known))})"
            )
    return out


def _rule(
    raw: Any, i: int, policy_omit: frozenset[str], source: str, lines: dict[str, int]
) -> tuple[Rule, list[str]]:
    path = f"rules[{i}]"
    if not isinstance(raw, dict):
        raise _fail(source, lines, path, "a rule must be a mapping with at least a level")
    warnings = _unknown_fields(raw, _RULE_FIELDS, path, source, lines)
    level = raw.get("level")
    if level is None or level == "":
        raise _fail(
            source, lines, path, "level: required (None, Metadata, Request or RequestResponse)"
        )
    if level not in LEVELS:
        raise _fail(
            source, lines, f"{path}.level", f"{level!r}: supported values are {', '.join(LEVELS)}"
        )
    urls = _strings(raw.get("nonResourceURLs"), f"{path}.nonResourceURLs", source, lines)
    for j, url in enumerate(urls):
        if url == "*":
            continue
        if not url.startswith("/"):
            raise _fail(
                source,
                lines,
                f"{path}.nonResourceURLs[{j}]",
                f"{url!r}: non-resource URL rules must begin with a '/' character",
            )
        if "*" in url[:-1]:
            raise _fail(
                source,
                lines,
                f"{path}.nonResourceURLs[{j}]",
                f"{url!r}: the wildcard '*' must be the final character",
            )
    groups = _groups(raw.get("resources"), f"{path}.resources", source, lines)
    namespaces = _strings(raw.get("namespaces"), f"{path}.namespaces", source, lines)
    if urls and (groups or namespaces):
        raise _fail(
            source,
            lines,
            f"{path}.nonResourceURLs",
            "rules cannot apply to both regular resources and non-resource URLs",
        )
    omit_managed = raw.get("omitManagedFields")
    if omit_managed is not None and not isinstance(omit_managed, bool):
        raise _fail(source, lines, f"{path}.omitManagedFields", "must be true or false")
    rule = Rule(
        index=i,
        line=lines.get(path, 0),
        level=str(level),
        users=_strings(raw.get("users"), f"{path}.users", source, lines),
        user_groups=_strings(raw.get("userGroups"), f"{path}.userGroups", source, lines),
        verbs=_strings(raw.get("verbs"), f"{path}.verbs", source, lines),
        resources=groups,
        namespaces=namespaces,
        non_resource_urls=urls,
        omit_stages=policy_omit
        | _stages(raw.get("omitStages"), f"{path}.omitStages", source, lines),
        omit_managed_fields=omit_managed,
    )
    for gr in groups:
        if gr.has_group_key:
            continue
        elsewhere = [r for r in gr.resources if r.split("/")[0] not in CORE_RESOURCES]
        for name in elsewhere:
            known = KNOWN_GROUPS.get(name.split("/")[0])
            if known:
                warnings.append(
                    f"line {gr.line}: {gr.path} lists {name!r} without a group: a missing group"
                    f' means the core group "", where {name.split("/")[0]} does not exist, so this'
                    f" entry matches nothing; write group: {known[0]}"
                )
    return rule, warnings


def _groups(
    value: Any, path: str, source: str, lines: dict[str, int]
) -> tuple[GroupResources, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(source, lines, path, "must be a list of {group, resources, resourceNames}")
    out = []
    for j, raw in enumerate(value):
        where = f"{path}[{j}]"
        if not isinstance(raw, dict):
            raise _fail(source, lines, where, "must be a mapping {group, resources, resourceNames}")
        for key in raw:
            if key not in _GROUP_FIELDS:
                raise _fail(
                    source,
                    lines,
                    f"{where}.{key}",
                    f"unknown field (known: {', '.join(sorted(_GROUP_FIELDS))})",
                )
        group = raw.get("group", "")
        if group is None:
            group = ""
        if not isinstance(group, str):
            raise _fail(source, lines, f"{where}.group", "must be a string")
        if group not in ("", "*") and not _DNS_SUBDOMAIN.match(group):
            hint = " (give the group without its version)" if "/" in group else ""
            raise _fail(
                source,
                lines,
                f"{where}.group",
                f"{group!r}: must be a lower-case DNS subdomain{hint}",
            )
        resources = _strings(raw.get("resources"), f"{where}.resources", source, lines)
        names = _strings(raw.get("resourceNames"), f"{where}.resourceNames", source, lines)
        if names and not resources:
            raise _fail(
                source,
                lines,
                f"{where}.resourceNames",
                "using resourceNames requires at least one resource",
            )
        out.append(
            GroupResources(
                group=group,
                resources=resources,
                resource_names=names,
                has_group_key="group" in raw,
                path=where,
                line=lines.get(where, 0),
            )
        )
    return tuple(out)


# --- evaluation (kube-apiserver's semantics) ---------------------------------------------


def _resource_matches(pattern: str, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    if pattern in (combined, "*"):
        return True
    if subresource and pattern.startswith("*/") and pattern[2:] == subresource:
        return True
    # "pods/*" also matches "pods" itself: kube-apiserver compares only the resource part.
    return pattern.endswith("/*") and pattern[:-2] == resource


def rule_matches(rule: Rule, request: Request) -> bool:
    """Whether kube-apiserver would pick this rule for the request (ignoring earlier rules)."""
    if rule.users and request.user not in rule.users:
        return False
    if rule.user_groups and not any(g in rule.user_groups for g in request.groups):
        return False
    if rule.verbs and request.verb not in rule.verbs:
        return False
    if rule.namespaces or rule.resources:
        if not request.is_resource:
            return False
        if rule.namespaces and request.namespace not in rule.namespaces:
            return False
        if not rule.resources:
            return True
        for gr in rule.resources:
            if gr.group not in (request.api_group, "*"):
                continue
            if not gr.resources:
                return True
            if gr.resource_names and request.name not in gr.resource_names:
                continue
            if any(
                _resource_matches(p, request.resource, request.subresource) for p in gr.resources
            ):
                return True
        return False
    if rule.non_resource_urls:
        if request.is_resource:
            return False
        return any(
            spec in ("*", request.path)
            or (spec.endswith("*") and request.path.startswith(spec.rstrip("*")))
            for spec in rule.non_resource_urls
        )
    return True


def evaluate(policy: Policy, request: Request) -> Decision:
    """The level, omitted stages and managed-fields choice kube-apiserver gives a request."""
    for rule in policy.rules:
        if rule_matches(rule, request):
            managed = (
                policy.omit_managed_fields
                if rule.omit_managed_fields is None
                else rule.omit_managed_fields
            )
            return Decision(rule.level, rule.omit_stages, managed, rule)
    return Decision("None", policy.omit_stages, policy.omit_managed_fields, None)


# --- requirements ------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    group: str
    resource: str
    verb: str
    level: str

    @property
    def label(self) -> str:
        group = f".{self.group}" if self.group else ""
        return f"{self.verb} {self.resource}{group}"


@dataclass(frozen=True)
class RequirementSet:
    requirements: tuple[Requirement, ...]
    # Stages the policy must omit (Calico: RequestReceived, which only doubles the volume).
    omit_stages: frozenset[str] = frozenset()


CALICO_VERBS = ("create", "patch", "update", "delete")
CALICO_REQUIREMENTS = RequirementSet(
    requirements=tuple(
        Requirement(group, resource, verb, "RequestResponse")
        for group, resource in (
            ("", "pods"),
            ("", "namespaces"),
            ("", "serviceaccounts"),
            ("", "endpoints"),
            ("networking.k8s.io", "networkpolicies"),
            ("extensions", "networkpolicies"),
        )
        for verb in CALICO_VERBS
    ),
    omit_stages=frozenset({"RequestReceived"}),
)


def load_requirements(text: str, *, source: str) -> RequirementSet:
    """A requirement file: rules shaped like policy rules (level, verbs, resources) plus an
    optional omitStages the policy must include."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise PolicyError(f"{where}: not valid YAML or JSON") from None
    located = _Located()
    data = located.value(node, "") if node is not None else None
    lines = located.lines
    if not isinstance(data, dict) or not isinstance(data.get("requirements"), list):
        raise _fail(source, lines, "requirements", "expected a mapping with a list 'requirements'")
    out: list[Requirement] = []
    for i, raw in enumerate(data["requirements"]):
        path = f"requirements[{i}]"
        if not isinstance(raw, dict):
            raise _fail(source, lines, path, "must be a mapping (level, verbs, resources)")
        level = raw.get("level")
        if level not in LEVELS[1:]:
            raise _fail(
                source,
                lines,
                f"{path}.level",
                f"{level!r}: give Metadata, Request or RequestResponse",
            )
        verbs = _strings(raw.get("verbs"), f"{path}.verbs", source, lines)
        if not verbs:
            raise _fail(source, lines, f"{path}.verbs", "name at least one verb")
        groups = _groups(raw.get("resources"), f"{path}.resources", source, lines)
        if not groups or any(not gr.resources or gr.group == "*" for gr in groups):
            raise _fail(
                source, lines, f"{path}.resources", "name each group and its resources explicitly"
            )
        for gr in groups:
            for resource in gr.resources:
                if "*" in resource:
                    raise _fail(
                        source, lines, f"{gr.path}.resources", "no wildcards in requirements"
                    )
                out += [Requirement(gr.group, resource, verb, str(level)) for verb in verbs]
    omit = _stages(data.get("omitStages"), "omitStages", source, lines)
    return RequirementSet(tuple(out), omit)


def merge_requirements(sets: Iterable[RequirementSet]) -> RequirementSet:
    """All requirements; for the same (group, resource, verb) the highest level wins."""
    best: dict[tuple[str, str, str], Requirement] = {}
    omit: set[str] = set()
    for s in sets:
        omit |= s.omit_stages
        for r in s.requirements:
            key = (r.group, r.resource, r.verb)
            if key not in best or LEVELS.index(r.level) > LEVELS.index(best[key].level):
                best[key] = r
    return RequirementSet(tuple(best.values()), frozenset(omit))


Verdict = Literal["met", "partly met", "not met"]


@dataclass(frozen=True)
class Exception_:
    rule: Rule
    condition: str
    problem: str


@dataclass
class PairResult:
    requirement: Requirement
    level: str
    omit_stages: frozenset[str]
    rule: Rule | None
    verdict: Verdict
    problems: list[str] = field(default_factory=list)
    exceptions: list[Exception_] = field(default_factory=list)
    traps: list[str] = field(default_factory=list)


@dataclass
class PolicyReport:
    source: str
    policy: Policy
    results: list[PairResult]

    @property
    def is_met(self) -> bool:
        return all(r.verdict == "met" for r in self.results)


def _split(resource: str) -> tuple[str, str]:
    name, _, sub = resource.partition("/")
    return name, sub


def _conditions(rule: Rule, req: Requirement) -> list[str] | None:
    """None when the rule never matches the requirement's requests; else the conditions under
    which it does ([] = every such request)."""
    resource, sub = _split(req.resource)
    conditions: list[str] = []
    if rule.verbs and req.verb not in rule.verbs:
        return None
    if rule.users:
        conditions.append(f"users {list(rule.users)}")
    if rule.user_groups:
        # system:authenticated is every user but the anonymous one: "some requests" in name only.
        everyone = (
            " (every authenticated user)" if "system:authenticated" in rule.user_groups else ""
        )
        conditions.append(f"userGroups {list(rule.user_groups)}{everyone}")
    if not rule.namespaces and not rule.resources:
        return None if rule.non_resource_urls else conditions
    if rule.namespaces:
        if resource == "namespaces":
            # A request on a Namespace carries its name as the namespace ("" on create/list).
            conditions.append(f"namespaces named {list(rule.namespaces)}")
        elif resource in CLUSTER_SCOPED:
            if "" not in rule.namespaces:
                return None
        else:
            named = [n for n in rule.namespaces if n]
            if not named and resource in CORE_RESOURCES | set(KNOWN_GROUPS):
                return None
            conditions.append(f"in namespaces {named or ['']}")
    if not rule.resources:
        return conditions
    best: list[str] | None = None
    for gr in rule.resources:
        if gr.group not in (req.group, "*"):
            continue
        if not gr.resources:
            return conditions
        if any(_resource_matches(p, resource, sub) for p in gr.resources):
            if not gr.resource_names:
                return conditions
            best = [*conditions, f"names {list(gr.resource_names)}"]
    return best


def _shortfall(level: str, omit: frozenset[str], req: Requirement) -> str | None:
    if LEVELS.index(level) < LEVELS.index(req.level):
        return f"level {level} is below the required {req.level}"
    if "ResponseComplete" in omit:
        return (
            "omitStages includes ResponseComplete: the stage that carries the response code and"
            " body is never written"
            + (
                " (nor anything else: RequestReceived is omitted too)"
                if "RequestReceived" in omit
                else ""
            )
        )
    return None


def check_pair(policy: Policy, req: Requirement, *, must_omit: frozenset[str]) -> PairResult:
    """How the policy treats every request of (group, resource, verb) against a requirement."""
    decider: Rule | None = None
    sometimes: list[tuple[Rule, list[str]]] = []
    for rule in policy.rules:
        conditions = _conditions(rule, req)
        if conditions is None:
            continue
        if not conditions:
            decider = rule
            break
        sometimes.append((rule, conditions))
    level = decider.level if decider else "None"
    omit = decider.omit_stages if decider else policy.omit_stages
    result = PairResult(req, level, omit, decider, "met")
    short = _shortfall(level, omit, req)
    if short:
        result.problems.append(short)
    missing = must_omit - omit
    if missing and LEVELS.index(level) > 0:
        result.problems.append(
            f"omitStages lacks {', '.join(sorted(missing))} (required: it only repeats each"
            " request before it is answered)"
        )
    for rule, conditions in sometimes:
        problem = _shortfall(rule.level, rule.omit_stages, req)
        if problem:
            result.exceptions.append(Exception_(rule, " and ".join(conditions), problem))
    if result.problems:
        result.verdict = "not met"
    elif result.exceptions:
        result.verdict = "partly met"
    result.traps = _traps(policy, req, result)
    return result


def _traps(policy: Policy, req: Requirement, result: PairResult) -> list[str]:
    traps: list[str] = []
    if not result.problems:
        return traps
    rule = result.rule
    if rule is None:
        traps.append(
            f"no rule matches {req.label}: requests that match no rule are not logged (level None)"
        )
    elif LEVELS.index(rule.level) < LEVELS.index(req.level):
        later = [
            r
            for r in policy.rules[rule.index + 1 :]
            if _conditions(r, req) is not None and LEVELS.index(r.level) >= LEVELS.index(req.level)
        ]
        broad = not rule.resources and not rule.namespaces
        what = "a broad rule (it names no resources)" if broad else "an earlier rule"
        if later:
            traps.append(
                f"shadowed: rules[{later[0].index}] (line {later[0].line}) asks for"
                f" {later[0].level}, but rules[{rule.index}] is {what} at level {rule.level} and"
                " comes first; the first matching rule wins, so move the specific rule above it"
            )
        elif rule.level in ("None", "Metadata"):
            traps.append(f"rules[{rule.index}] is {what} at level {rule.level} and decides first")
    if "ResponseComplete" in result.omit_stages:
        traps.append(
            "omitStages: [ResponseComplete] drops the one stage with the result and response body"
        )
    resource, _ = _split(req.resource)
    for r in policy.rules:
        for gr in r.resources:
            if gr.group != req.group and gr.group != "*" and resource in gr.resources:
                if not gr.has_group_key and req.group:
                    traps.append(
                        f"rules[{r.index}] (line {gr.line}) lists {resource} without a group, which"
                        f' means the core group ""; {resource} of {req.group} needs'
                        f" group: {req.group}"
                    )
                elif req.group == "extensions" and gr.group == "networking.k8s.io":
                    traps.append(
                        f"rules[{r.index}] (line {gr.line}) covers networkpolicies in"
                        " networking.k8s.io only: the legacy extensions group is a separate group"
                        " in the policy; add group: extensions beside it"
                    )
    return list(dict.fromkeys(traps))


def check_policy(policy: Policy, requirements: RequirementSet) -> PolicyReport:
    """Every requirement checked against the policy, in the requirement set's order."""
    results = [
        check_pair(policy, req, must_omit=requirements.omit_stages)
        for req in requirements.requirements
    ]
    return PolicyReport(policy.source, policy, results)


# --- rendering ---------------------------------------------------------------------------


def report_json(reports: Sequence[PolicyReport]) -> dict[str, Any]:
    """The machine-readable answer of check-policy --format json."""
    return {
        "met": all(r.is_met for r in reports),
        "policies": [
            {
                "source": report.source,
                "apiVersion": report.policy.api_version,
                "met": report.is_met,
                "warnings": list(report.policy.warnings),
                "results": [
                    {
                        "group": r.requirement.group,
                        "resource": r.requirement.resource,
                        "verb": r.requirement.verb,
                        "required": r.requirement.level,
                        "level": r.level,
                        "omitStages": sorted(r.omit_stages),
                        "rule": r.rule.index if r.rule else None,
                        "ruleLine": r.rule.line if r.rule else None,
                        "ruleText": r.rule.render() if r.rule else "(no rule matches: None)",
                        "verdict": r.verdict,
                        "problems": r.problems,
                        "exceptions": [
                            {
                                "rule": e.rule.index,
                                "ruleLine": e.rule.line,
                                "when": e.condition,
                                "problem": e.problem,
                            }
                            for e in r.exceptions
                        ],
                        "traps": r.traps,
                    }
                    for r in report.results
                ],
            }
            for report in reports
        ],
    }


def report_text(reports: Sequence[PolicyReport]) -> str:
    """The human answer of check-policy: one line per requirement, reasons indented."""
    out: list[str] = []
    for report in reports:
        out.append(
            f"{report.source}: {report.policy.api_version}, {len(report.policy.rules)} rules"
        )
        out += [f"  warning: {w}" for w in report.policy.warnings]
        width = max((len(r.requirement.label) for r in report.results), default=0)
        for r in report.results:
            mark = {"met": "ok  ", "partly met": "PART", "not met": "FAIL"}[r.verdict]
            rule = f"rules[{r.rule.index}] line {r.rule.line}" if r.rule else "no rule"
            out.append(
                f"  {mark} {r.requirement.label:<{width}}  {r.level:<15} (needs"
                f" {r.requirement.level}) by {rule}"
            )
            if r.verdict != "met":
                out.append(f"         {r.rule.render() if r.rule else 'default level None'}")
            out += [f"         - {p}" for p in r.problems]
            out += [
                f"         - except {e.condition}: rules[{e.rule.index}] (line {e.rule.line}):"
                f" {e.problem}"
                for e in r.exceptions
            ]
            out += [f"         trap: {t}" for t in r.traps]
        met = sum(r.verdict == "met" for r in report.results)
        verdict = "MET" if report.is_met else "NOT MET"
        out.append(f"  {verdict}: {met} of {len(report.results)} requirements met")
    return "\n".join(out) + "\n"
