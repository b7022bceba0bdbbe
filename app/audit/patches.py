"""What kind of patch an audit event's requestObject is, and the object it yields when we can know.

Pure. The audit event does not record the patch's Content-Type, so the kind is read from the
body's shape; where shapes are ambiguous we say so rather than guess (see classify_patch).
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass
from typing import Any, Final

import jsonpatch
import jsonpointer

# Keys only a strategic-merge patch carries (k8s.io/apimachinery strategicpatch directives).
STRATEGIC_DIRECTIVES: Final = frozenset(
    {"$patch", "$retainKeys", "$deleteFromPrimitiveList", "$setElementOrder"}
)
_DIRECTIVE_PREFIXES: Final = ("$setElementOrder/", "$deleteFromPrimitiveList/")
# Deeper documents are not patched here (the copies recurse); Kubernetes objects nest ~20 levels.
MAX_PATCH_DEPTH: Final = 100


class PatchKind(enum.StrEnum):
    """How a patch body reads: the rules that apply to it, or why they cannot be known."""

    JSON_PATCH = "json_patch"
    # An object without lists or directives: JSON merge patch and strategic merge agree on it.
    MERGE = "merge"
    STRATEGIC_MERGE = "strategic_merge"
    # An object with lists but no directives: merge and strategic merge would differ.
    AMBIGUOUS = "ambiguous"
    # A whole object with apiVersion and kind: may be a server-side apply configuration.
    APPLY = "apply"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class PatchResult:
    """The object a patch yields from a version, or None and the reason in plain words."""

    kind: PatchKind
    result: dict[str, Any] | None
    reason: str

    @property
    def is_computed(self) -> bool:
        return self.result is not None


REASONS: Final[dict[PatchKind, str]] = {
    PatchKind.JSON_PATCH: "a JSON patch (RFC 6902)",
    PatchKind.MERGE: (
        "a merge patch without lists or directives (JSON merge patch and strategic merge "
        "give the same result)"
    ),
    PatchKind.STRATEGIC_MERGE: (
        "a strategic-merge patch: its result depends on Kubernetes' per-field merge rules, "
        "so it is shown as sent and no result is computed"
    ),
    PatchKind.AMBIGUOUS: (
        "a merge or strategic-merge patch containing lists: the audit log does not record "
        "which, and the two treat lists differently, so no result is computed"
    ),
    PatchKind.APPLY: (
        "a whole object (apiVersion and kind): possibly a server-side apply configuration, "
        "whose result depends on field ownership, so no result is computed"
    ),
    PatchKind.INVALID: "not a patch document this tool can read",
}


def classify_patch(body: object) -> PatchKind:
    """Read a patch body's kind from its shape alone; never raises."""
    if isinstance(body, list):
        is_ops = bool(body) and all(
            isinstance(op, dict) and isinstance(op.get("op"), str) and "path" in op for op in body
        )
        return PatchKind.JSON_PATCH if is_ops else PatchKind.INVALID
    if not isinstance(body, dict):
        return PatchKind.INVALID
    if "apiVersion" in body and "kind" in body:
        return PatchKind.APPLY
    has_list = False
    stack: list[tuple[object, int]] = [(body, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_PATCH_DEPTH:
            return PatchKind.INVALID
        if isinstance(node, list):
            has_list = True
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, dict):
            if any(_is_directive(key) for key in node):
                return PatchKind.STRATEGIC_MERGE
            stack.extend((item, depth + 1) for item in node.values())
    return PatchKind.AMBIGUOUS if has_list else PatchKind.MERGE


def apply_patch(version: object, patch: object) -> PatchResult:
    """The object patch yields from version (a stored, redacted object), if it can be known."""
    kind = classify_patch(patch)
    if kind not in (PatchKind.JSON_PATCH, PatchKind.MERGE):
        return PatchResult(kind, None, REASONS[kind])
    if not isinstance(version, dict):
        return PatchResult(kind, None, "no earlier version of the object is stored")
    if _depth(version) > MAX_PATCH_DEPTH:
        return PatchResult(kind, None, "the object is nested too deeply to patch here")
    if kind is PatchKind.MERGE:
        merged = merge_patch(version, patch)
        assert isinstance(merged, dict)  # an object patch always yields an object
        return PatchResult(kind, merged, REASONS[kind])
    assert isinstance(patch, list)  # classify_patch said JSON_PATCH: a list of op objects
    try:
        result = jsonpatch.apply_patch(version, patch, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
        return PatchResult(
            kind,
            None,
            f"the JSON patch does not apply to the previous stored version ({error}): "
            "the object it was applied to is not stored",
        )
    except (TypeError, ValueError, KeyError, IndexError) as error:
        return PatchResult(kind, None, f"the JSON patch cannot be applied ({error})")
    if not isinstance(result, dict):
        return PatchResult(kind, None, "the JSON patch replaces the object with a non-object")
    return PatchResult(kind, result, REASONS[kind])


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch: null removes a key, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _is_directive(key: str) -> bool:
    return key in STRATEGIC_DIRECTIVES or key.startswith(_DIRECTIVE_PREFIXES)


def _depth(value: object) -> int:
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_PATCH_DEPTH:
            break
        if isinstance(node, dict):
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
    return deepest
