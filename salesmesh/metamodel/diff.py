"""Structural diff of two JSON documents, as a list of changes addressed by JSON pointer.

`diff_documents(old, new)` walks both documents together and returns `{op, path, old, new}` entries with
`op` one of `add`, `remove`, `replace` and `path` an RFC 6901 pointer into the documents. Objects are
compared key by key (sorted, so the result is deterministic); arrays index by index, with trailing
elements reported as added or removed. The same function serves the definitions API, the pack import
dry run and the web UI, so a change reads the same everywhere.
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


def escape_pointer_token(token: str | int) -> str:
    """Escape one reference token of a JSON pointer (`~` → `~0`, `/` → `~1`)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def join_pointer(base: str, token: str | int) -> str:
    """Append one token to a JSON pointer."""
    return f"{base}/{escape_pointer_token(token)}"


def _same(a: Any, b: Any) -> bool:
    # JSON distinguishes true from 1 and 1 from 1.0 only by type; Python's == does not.
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _walk(old: Any, new: Any, path: str, out: list[dict[str, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            child = join_pointer(path, key)
            if key not in new:
                out.append({"op": "remove", "path": child, "old": old[key], "new": None})
            elif key not in old:
                out.append({"op": "add", "path": child, "old": None, "new": new[key]})
            else:
                _walk(old[key], new[key], child, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        common = min(len(old), len(new))
        for index in range(common):
            _walk(old[index], new[index], join_pointer(path, index), out)
        for index in range(common, len(new)):
            out.append({"op": "add", "path": join_pointer(path, index), "old": None, "new": new[index]})
        # Removals are listed from the end so that applying them in order keeps indexes valid.
        for index in range(len(old) - 1, common - 1, -1):
            out.append({"op": "remove", "path": join_pointer(path, index), "old": old[index], "new": None})
        return
    if not _same(old, new):
        out.append({"op": "replace", "path": path, "old": old, "new": new})


def diff_documents(old: Any, new: Any) -> list[dict[str, Any]]:
    """Return the changes that turn `old` into `new` (empty when they are equal)."""
    out: list[dict[str, Any]] = []
    if old is None and new is not None:
        return [{"op": "add", "path": "", "old": None, "new": new}]
    _walk(old, new, "", out)
    return out


def summarize(changes: list[dict[str, Any]]) -> dict[str, int]:
    """Count the changes by operation ({"add": n, "remove": n, "replace": n})."""
    counts = {"add": 0, "remove": 0, "replace": 0}
    for change in changes:
        counts[change["op"]] += 1
    return counts
