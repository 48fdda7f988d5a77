"""Breaking changes between two JSON Schemas of one event type.

The committed schema is the contract agency systems were told about; the
current model's schema is what the bus will accept from now on. A change is
breaking when a document the old schema accepted may be refused by the new
one. The comparison is structural and deliberately conservative: it follows
`$ref` into `$defs`, nested objects, arrays and `anyOf`/`oneOf` branches, and
reports each narrowing it can see rather than proving full schema inclusion.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Schema = dict[str, Any]

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_EXACT = ("pattern", "format")
_MAX_REF_HOPS = 32


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Each way `new` refuses what `old` accepted, as `<path> <change>`."""
    return _Diff(old, new).compare(old, new, "")


class _Diff:
    """One comparison: the two root schemas whose `$defs` the `$ref`s point into."""

    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.visiting: set[tuple[str, str]] = set()

    def compare(self, old: Schema, new: Schema, path: str) -> list[str]:
        key = (old.get("$ref", ""), new.get("$ref", ""))
        if key == ("", ""):
            return self._compare(old, new, path)
        if key in self.visiting:  # a recursive model: this pair is already being compared
            return []
        self.visiting.add(key)
        try:
            return self._compare(_resolve(old, self.old_root), _resolve(new, self.new_root), path)
        finally:
            self.visiting.discard(key)

    def _compare(self, old: Schema, new: Schema, path: str) -> list[str]:
        old_branches = _branches(old, self.old_root)
        new_branches = _branches(new, self.new_root)
        if len(old_branches) == 1 and len(new_branches) == 1:
            return self._compare_node(old_branches[0], new_branches[0], path)
        problems: list[str] = []
        for branch in old_branches:
            outcomes = [
                self._compare_node(branch, b, path) for b in new_branches if _same_kind(branch, b)
            ]
            if not outcomes:
                change = f"{_describe(old_branches)} -> {_describe(new_branches)}"
                problems.insert(0, _narrowed(path, change))
            else:  # the closest new branch is the one that refuses the least
                closest: list[str] = min(outcomes, key=len)
                problems += closest
        return list(dict.fromkeys(problems))

    def _compare_node(self, old: Schema, new: Schema, path: str) -> list[str]:
        old_kinds, new_kinds = _kinds(old), _kinds(new)
        if new_kinds and (not old_kinds or not old_kinds <= _widen(new_kinds)):
            return [_narrowed(path, f"{_describe([old])} -> {_describe([new])}")]
        problems = [_narrowed(path, change) for change in _value_narrowings(old, new)]
        if "object" in old_kinds | new_kinds or "properties" in old or "properties" in new:
            problems += self._compare_objects(old, new, path)
        if "items" in old or "items" in new:
            problems += self.compare(old.get("items", {}), new.get("items", {}), f"{path}[]")
        return problems

    def _compare_objects(self, old: Schema, new: Schema, path: str) -> list[str]:
        problems: list[str] = []
        names = dict.fromkeys([*old.get("properties", {}), *new.get("properties", {})])
        for name in names:
            where = f"{path}.{name}" if path else name
            old_property = _property(old, name)
            if old_property is None:
                continue  # the old contract refused this property, so nothing can break
            new_property = _property(new, name)
            if new_property is None:
                problems.append(f"{where} was removed or renamed")
            else:
                problems += self.compare(old_property, new_property, where)
        old_required = set(old.get("required", []))
        for name in new.get("required", []):
            if name not in old_required:
                where = f"{path}.{name}" if path else name
                added = name not in old.get("properties", {})
                problems.append(
                    f"{where} {'was added as required' if added else 'became required'}"
                )
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        if old_extra is not False and new_extra is False:
            problems.append(_narrowed(path, "additionalProperties closed"))
        elif old_extra is not False and isinstance(new_extra, dict):
            problems += self.compare(_as_schema(old_extra), new_extra, f"{path}.*")
        return problems


def _value_narrowings(old: Schema, new: Schema) -> Iterator[str]:
    """How one value's constraints tightened: fewer enum values, a new pattern, closer bounds."""
    old_values, new_values = _values(old), _values(new)
    if new_values is not None:
        if old_values is None:
            yield f"now limited to {_show(new_values)}"
        elif removed := [v for v in old_values if v not in new_values]:
            yield f"values removed: {_show(removed)}"
    for key in _EXACT:
        if key in new and old.get(key) != new[key]:
            yield f"{key} added or changed: {_bound(old, key)} -> {new[key]!r}"
    for key in _LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            yield f"{key} raised: {_bound(old, key)} -> {new[key]!r}"
    for key in _UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            yield f"{key} lowered: {_bound(old, key)} -> {new[key]!r}"
    if new.get("uniqueItems") and not old.get("uniqueItems"):
        yield "uniqueItems added"


def _resolve(schema: Schema, root: Schema) -> Schema:
    """The schema with a local `$ref` (or a lone `allOf`) replaced by what it points to."""
    for _ in range(_MAX_REF_HOPS):
        if "$ref" in schema:
            ref = schema["$ref"]
            target = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings}
        elif len(schema.get("allOf", [])) == 1:
            siblings = {k: v for k, v in schema.items() if k != "allOf"}
            schema = {**schema["allOf"][0], **siblings}
        else:
            return schema
    return {}  # a `$ref` cycle that never reaches a schema: nothing to compare


def _branches(schema: Schema, root: Schema) -> list[Schema]:
    """The alternatives of an `anyOf`/`oneOf` (flattened), or the schema itself."""
    alternatives = schema.get("anyOf", schema.get("oneOf"))
    if alternatives is None:
        return [schema]
    return [leaf for alt in alternatives for leaf in _branches(_resolve(alt, root), root)]


def _property(schema: Schema, name: str) -> Schema | None:
    """The schema a property must match, or None when the object refuses it."""
    found = schema.get("properties", {}).get(name, schema.get("additionalProperties", True))
    return None if found is False else _as_schema(found)


def _as_schema(value: Any) -> Schema:
    """A subschema as a dict: JSON Schema also allows `true` (anything) in its place."""
    return value if isinstance(value, dict) else {}


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def _kinds(schema: Schema) -> set[str]:
    """The JSON types a schema admits; empty means any type."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return set(declared)
    values = _values(schema)
    if values is not None:
        return {
            _JSON_TYPES.get(type(v), "object" if isinstance(v, dict) else "array") for v in values
        }
    return {"object"} if "properties" in schema else set()


def _widen(kinds: set[str]) -> set[str]:
    return kinds | {"integer"} if "number" in kinds else kinds


def _same_kind(old: Schema, new: Schema) -> bool:
    new_kinds = _kinds(new)
    return not new_kinds or bool(_kinds(old) & _widen(new_kinds))


def _values(schema: Schema) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    return list(schema["enum"]) if "enum" in schema else None


def _describe(branches: list[Schema]) -> str:
    kinds = dict.fromkeys(kind for branch in branches for kind in sorted(_kinds(branch) or {"any"}))
    return " | ".join(kinds)


def _narrowed(path: str, change: str) -> str:
    return f"{path or '(event)'} type narrowed ({change})"


def _bound(schema: Schema, key: str) -> str:
    return repr(schema[key]) if key in schema else "none"


def _show(values: list[Any]) -> str:
    return ", ".join(repr(v) for v in values)
