"""Reading template packs safely: a folder or a `.zip`, into memory, within hard limits.

A pack arrives from people we do not fully trust (an upload in the admin UI, a file someone mailed), so
reading it never touches the disk beyond the source itself and refuses anything odd before parsing:
more members or bytes than `PackLimits` allows, a single oversized file, absolute paths, `..`,
backslashes or drive letters, symlinks (zip entries flagged S_IFLNK, symlinked files or folders), encrypted
or duplicate entries. Such a pack raises `PackRejected` listing every offending entry. JSON is parsed
strictly (UTF-8, no duplicate object keys, no NaN/Infinity, bounded nesting); a parse error becomes a
`PackError` naming the file, line and column, so validation can still report every other problem too.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

_DRIVE = re.compile(r"^[A-Za-z]:")
_SKIPPED_PARTS = ("__MACOSX",)


@dataclass(frozen=True)
class PackLimits:
    """Hard limits for reading one pack."""

    max_total_bytes: int = 20 * 1024 * 1024
    max_members: int = 500
    max_file_bytes: int = 4 * 1024 * 1024
    max_json_depth: int = 48


DEFAULT_LIMITS = PackLimits()


@dataclass(frozen=True)
class PackError:
    """One problem in a pack: the file, the JSON pointer inside it, and the message in both languages."""

    file: str
    path: str
    message: str
    message_zh: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "path": self.path, "message": self.message, "message_zh": self.message_zh}

    def __str__(self) -> str:
        return f"{self.file}:{self.path or '/'}: {self.message}"


class PackRejected(Exception):
    """The pack cannot be read at all (unsafe or unreadable); `errors` lists every reason."""

    def __init__(self, errors: list[PackError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def unsafe_member_name(name: str) -> str | None:
    """Return why a member name is unsafe (absolute, `..`, backslash, drive letter...), or None if fine."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL byte in the name"
    if "\\" in name:
        return "backslash in the path"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE.match(name):
        return "drive letter in the path"
    parts = name.rstrip("/").split("/")
    if any(part == ".." for part in parts):
        return "'..' in the path"
    if any(part in ("", ".") for part in parts):
        return "empty or '.' path segment"
    if len(name) > 255:
        return "path longer than 255 characters"
    return None


def _skipped(name: str) -> bool:
    # Operating-system litter (.DS_Store, __MACOSX/, .git/) is not part of a pack.
    return any(part.startswith(".") or part in _SKIPPED_PARTS for part in PurePosixPath(name).parts)


def _zh_reason(reason: str) -> str:
    return {
        "empty name": "名称为空",
        "NUL byte in the name": "名称中含有 NUL 字节",
        "backslash in the path": "路径中含有反斜杠",
        "absolute path": "绝对路径",
        "drive letter in the path": "路径中含有盘符",
        "'..' in the path": "路径中含有“..”",
        "empty or '.' path segment": "路径中有空段或“.”段",
        "path longer than 255 characters": "路径超过 255 个字符",
    }.get(reason, reason)


def _strip_wrapper_folder(files: dict[str, bytes], listed: set[str]) -> tuple[dict[str, bytes], set[str]]:
    """Accept a zip whose content sits in one top-level folder (how people usually zip a folder)."""
    if "pack.json" in files or not files:
        return files, listed
    tops = {name.split("/", 1)[0] for name in listed}
    if len(tops) == 1:
        top = next(iter(tops))
        if f"{top}/pack.json" in files:
            cut = len(top) + 1
            return {n[cut:]: d for n, d in files.items()}, {n[cut:] for n in listed if len(n) > cut}
    return files, listed


def read_zip(
    data: bytes, source: str, limits: PackLimits = DEFAULT_LIMITS
) -> tuple[dict[str, bytes], set[str]]:
    """Read a zip held in memory: return (JSON files by path, every file path), or raise PackRejected."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackRejected(
            [PackError(source, "", f"not a readable zip file: {exc}", f"不是可读取的 zip 文件：{exc}")]
        ) from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise PackRejected(
                [
                    PackError(
                        source,
                        "",
                        f"too many entries: {len(infos)} (the limit is {limits.max_members})",
                        f"条目过多：{len(infos)}（上限为 {limits.max_members}）",
                    )
                ]
            )
        errors: list[PackError] = []
        seen: set[str] = set()
        total = 0
        wanted: list[zipfile.ZipInfo] = []
        listed: set[str] = set()
        for info in infos:
            name = info.filename
            reason = unsafe_member_name(name)
            if reason:
                errors.append(
                    PackError(
                        name,
                        "",
                        f"unsafe path in the zip: {reason}",
                        f"zip 中的路径不安全：{_zh_reason(reason)}",
                    )
                )
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                errors.append(
                    PackError(name, "", "symbolic links are not allowed in a pack", "模板包中不允许符号链接")
                )
                continue
            if info.flag_bits & 0x1:
                errors.append(PackError(name, "", "encrypted entries are not allowed", "不允许加密的条目"))
                continue
            if name in seen:
                errors.append(PackError(name, "", "the zip lists this entry twice", "zip 中重复列出了此条目"))
                continue
            seen.add(name)
            if info.is_dir() or _skipped(name):
                continue
            if info.file_size > limits.max_file_bytes:
                errors.append(
                    PackError(
                        name,
                        "",
                        f"file too large: {info.file_size} bytes (the limit is {limits.max_file_bytes})",
                        f"文件过大：{info.file_size} 字节（上限为 {limits.max_file_bytes}）",
                    )
                )
                continue
            total += info.file_size
            listed.add(name)
            if name.lower().endswith(".json"):
                wanted.append(info)
        if total > limits.max_total_bytes:
            errors.append(
                PackError(
                    source,
                    "",
                    f"the pack unpacks to {total} bytes (the limit is {limits.max_total_bytes})",
                    f"模板包解压后为 {total} 字节（上限为 {limits.max_total_bytes}）",
                )
            )
        if errors:
            raise PackRejected(errors)
        files: dict[str, bytes] = {}
        for info in wanted:
            try:
                with archive.open(info) as fh:
                    # Never trust the header alone: read at most one byte past the limit.
                    body = fh.read(limits.max_file_bytes + 1)
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
                errors.append(
                    PackError(info.filename, "", f"cannot read this entry: {exc}", f"无法读取此条目：{exc}")
                )
                continue
            if len(body) > limits.max_file_bytes:
                errors.append(
                    PackError(info.filename, "", "file larger than its header says", "文件实际大小超过其声明")
                )
                continue
            files[info.filename] = body
        if errors:
            raise PackRejected(errors)
    return _strip_wrapper_folder(files, listed)


def read_folder(root: Path, limits: PackLimits = DEFAULT_LIMITS) -> tuple[dict[str, bytes], set[str]]:
    """Read a pack folder: return (JSON files by path, every file path), or raise PackRejected."""
    errors: list[PackError] = []
    files: dict[str, bytes] = {}
    listed: set[str] = set()
    total = 0
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in list(dirnames):
            rel = (base / name).relative_to(root).as_posix()
            if (base / name).is_symlink():
                errors.append(
                    PackError(rel, "", "symbolic links are not allowed in a pack", "模板包中不允许符号链接")
                )
                dirnames.remove(name)
            elif _skipped(rel):
                dirnames.remove(name)
        dirnames.sort()
        for name in sorted(filenames):
            full = base / name
            rel = full.relative_to(root).as_posix()
            if _skipped(rel):
                continue
            count += 1
            if count > limits.max_members:
                raise PackRejected(
                    [
                        PackError(
                            str(root),
                            "",
                            f"too many files (the limit is {limits.max_members})",
                            f"文件过多（上限为 {limits.max_members}）",
                        )
                    ]
                )
            if full.is_symlink():
                errors.append(
                    PackError(rel, "", "symbolic links are not allowed in a pack", "模板包中不允许符号链接")
                )
                continue
            if not full.is_file():
                errors.append(PackError(rel, "", "not a regular file", "不是普通文件"))
                continue
            size = full.stat().st_size
            if size > limits.max_file_bytes:
                errors.append(
                    PackError(
                        rel,
                        "",
                        f"file too large: {size} bytes (the limit is {limits.max_file_bytes})",
                        f"文件过大：{size} 字节（上限为 {limits.max_file_bytes}）",
                    )
                )
                continue
            total += size
            if total > limits.max_total_bytes:
                raise PackRejected(
                    [
                        PackError(
                            str(root),
                            "",
                            f"the pack is larger than {limits.max_total_bytes} bytes",
                            f"模板包大于 {limits.max_total_bytes} 字节",
                        )
                    ]
                )
            listed.add(rel)
            if name.lower().endswith(".json"):
                with full.open("rb") as fh:
                    files[rel] = fh.read(limits.max_file_bytes + 1)
    if errors:
        raise PackRejected(errors)
    return files, listed


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_depth(value: Any) -> int:
    """Return the nesting depth of a JSON value (a scalar is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def parse_json_file(
    name: str, data: bytes, limits: PackLimits = DEFAULT_LIMITS
) -> tuple[Any, list[PackError]]:
    """Parse one pack file strictly; return (value, []) or (None, [error with file, line and column])."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [
            PackError(
                name, "", f"not UTF-8 text (byte {exc.start})", f"不是 UTF-8 文本（第 {exc.start} 字节）"
            )
        ]
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return None, [
            PackError(
                name,
                "",
                f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                f"JSON 格式错误，第 {exc.lineno} 行第 {exc.colno} 列：{exc.msg}",
            )
        ]
    except _DuplicateKey as exc:
        return None, [
            PackError(name, "", f"duplicate object key {exc.args[0]!r}", f"对象中的键 {exc.args[0]!r} 重复")
        ]
    except RecursionError:
        return None, [
            PackError(
                name,
                "",
                f"JSON nesting deeper than {limits.max_json_depth} levels",
                f"JSON 嵌套超过 {limits.max_json_depth} 层",
            )
        ]
    except ValueError as exc:
        return None, [PackError(name, "", f"invalid JSON: {exc}", f"JSON 格式错误：{exc}")]
    if json_depth(value) > limits.max_json_depth:
        return None, [
            PackError(
                name,
                "",
                f"JSON nesting deeper than {limits.max_json_depth} levels",
                f"JSON 嵌套超过 {limits.max_json_depth} 层",
            )
        ]
    return value, []


def dump_json(value: Any) -> bytes:
    """Serialize a pack file the way export writes it: UTF-8, two-space indent, trailing newline."""
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """Build a deterministic zip (sorted names, fixed timestamps) of the given files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()
