"""Attachments of file fields: checking uploads against the field's limits and storing them.

A file field's value is a list of descriptors `{id, name, size, type, content_type}`. The `id` is the
SHA-256 of the content, which is also the stored file's name (content-addressed: the client's file name
or path never reaches the file system; the `name` is kept for display only, cut to its last path
segment). An upload is accepted when its extension is one of the field's `allowed_types` (`jpeg` counts
as `jpg`), its size is within `max_size_mb`, it is not empty, and its first bytes match the extension
for the common types we can recognise (PDF, images, Office files, archives, media, text). Executables,
scripts, HTML and SVG are always refused, whatever the extension says, since they run in a browser or
on a desktop. Binding streams each upload into a temporary file under the store while hashing it;
`commit()` moves the accepted ones into place once the whole submission is valid and `discard()`
removes them otherwise. The store is `<instance>/uploads` unless the settings name another directory
(`Settings.upload_dir`, from SALESMESH_UPLOAD_DIR).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from salesmesh.forms.fields import BindContext, FieldInvalid, FieldSpec

CHUNK = 64 * 1024
HEAD = 4096
_ID = re.compile(r"[0-9a-f]{64}")
ALIASES = {"jpeg": "jpg", "jpe": "jpg", "tif": "tiff", "htm": "html", "mpeg": "mpg"}
NEVER = frozenset(
    {"html", "svg", "xhtml", "js", "mjs", "exe", "dll", "bat", "cmd", "sh", "ps1", "vbs", "jar"}
)

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heic": "image/heic",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "zip": "application/zip",
    "rar": "application/vnd.rar",
    "7z": "application/x-7z-compressed",
    "gz": "application/gzip",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "txt": "text/plain",
    "csv": "text/csv",
    "md": "text/markdown",
    "json": "application/json",
}


def _zip(head: bytes) -> bool:
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def _ole(head: bytes) -> bool:
    return head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")


def _ftyp(head: bytes) -> bool:
    return head[4:8] == b"ftyp"


def _text(head: bytes) -> bool:
    return b"\x00" not in head


# What the first bytes of each recognised type look like; other allowed types are checked only for
# dangerous content.
SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "pdf": lambda h: b"%PDF-" in h[:1024],
    "png": lambda h: h.startswith(b"\x89PNG\r\n\x1a\n"),
    "jpg": lambda h: h.startswith(b"\xff\xd8\xff"),
    "gif": lambda h: h.startswith((b"GIF87a", b"GIF89a")),
    "webp": lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP",
    "bmp": lambda h: h.startswith(b"BM"),
    "tiff": lambda h: h.startswith((b"II*\x00", b"MM\x00*")),
    "heic": _ftyp,
    "doc": _ole,
    "xls": _ole,
    "ppt": _ole,
    "docx": _zip,
    "xlsx": _zip,
    "pptx": _zip,
    "odt": _zip,
    "ods": _zip,
    "zip": _zip,
    "rar": lambda h: h.startswith(b"Rar!\x1a\x07"),
    "7z": lambda h: h.startswith(b"7z\xbc\xaf\x27\x1c"),
    "gz": lambda h: h.startswith(b"\x1f\x8b"),
    "mp3": lambda h: h.startswith((b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")),
    "wav": lambda h: h[:4] == b"RIFF" and h[8:12] == b"WAVE",
    "mp4": _ftyp,
    "mov": _ftyp,
    "txt": _text,
    "csv": _text,
    "md": _text,
    "json": _text,
}

_EXECUTABLE = (
    b"MZ",
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"#!",
)
_MARKUP = re.compile(rb"<\s*(!doctype\s+html|html|script|svg|iframe|body)\b", re.I)


def descriptor_schema(limits: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON Schema of one stored attachment descriptor under a field's limits."""
    allowed = sorted({ALIASES.get(t, t) for t in limits.get("allowed_types", [])})
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "name", "size", "type"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "size": {"type": "integer", "minimum": 1, "maximum": max_bytes(limits)},
            "type": {"type": "string", "enum": allowed},
            "content_type": {"type": "string", "maxLength": 120},
        },
    }


def max_bytes(limits: dict[str, Any]) -> int:
    """Return a field's size limit in bytes."""
    return int(float(limits.get("max_size_mb", 1)) * 1024 * 1024)


def _size_text(limit: int) -> str:
    mb = limit / (1024 * 1024)
    return f"{mb:g} MB" if mb >= 1 else f"{limit // 1024} KB"


def display_name(filename: str) -> str:
    """Return the last path segment of a client's file name, without control characters (≤ 255)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip().lstrip(".")
    return base[-255:] or "file"


def extension(filename: str) -> str:
    """Return the canonical lowercase extension of a file name ('' when it has none)."""
    name = display_name(filename)
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ALIASES.get(ext, ext)


def sniff_problem(ext: str, head: bytes) -> tuple[str, str] | None:
    """Return (en, zh) when the first bytes of a file are dangerous or do not match its extension."""
    if head.startswith(_EXECUTABLE):
        return "Programs and scripts cannot be attached", "不能上传程序或脚本文件"
    if _MARKUP.search(head[:1024]):
        return "Web pages and SVG images cannot be attached", "不能上传网页或 SVG 文件"
    check = SIGNATURES.get(ext)
    if check is not None and not check(head):
        return (
            f"The file's content does not match its .{ext} extension",
            f"文件内容与扩展名 .{ext} 不符",
        )
    return None


@dataclass
class PendingUpload:
    """An accepted upload waiting in the store's temporary folder for the submission to succeed."""

    field: str
    descriptor: dict[str, Any]
    temp_path: Path


class FileStore:
    """Content-addressed attachment storage in one directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @classmethod
    def for_settings(cls, settings: Any) -> FileStore:
        """Return the store the settings configure (`upload_dir`, else `<instance>/uploads`)."""
        configured = getattr(settings, "upload_dir", None)
        return cls(Path(configured) if configured else Path(settings.instance_path) / "uploads")

    def path(self, file_id: str) -> Path:
        """Return where an attachment's content lives (the id must be a SHA-256 hex digest)."""
        if not isinstance(file_id, str) or not _ID.fullmatch(file_id):
            raise ValueError("not an attachment id")
        return self.root / file_id[:2] / file_id

    def exists(self, file_id: str) -> bool:
        """Tell whether an attachment is stored."""
        try:
            return self.path(file_id).is_file()
        except ValueError:
            return False

    def receive(self, upload: Any, *, field: str, limits: dict[str, Any]) -> PendingUpload:
        """Check one upload (a werkzeug FileStorage or anything with .filename and .stream/.read)."""
        name = display_name(getattr(upload, "filename", "") or "")
        ext = extension(name)
        allowed = {ALIASES.get(t, t) for t in limits.get("allowed_types", [])} - NEVER
        if ext not in allowed:
            shown = ", ".join(sorted(allowed))
            what = f".{ext}" if ext else "without an extension"
            what_zh = f".{ext} 类型的" if ext else "无扩展名的"
            raise FieldInvalid(
                f"Files {what} are not allowed here (allowed: {shown})",
                f"此处不允许上传{what_zh}文件（允许：{shown}）",
            )
        limit = max_bytes(limits)
        stream: BinaryIO = getattr(upload, "stream", upload)
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        digest, size, head = hashlib.sha256(), 0, b""
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="up-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = stream.read(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise FieldInvalid(
                            f"File is larger than {_size_text(limit)}", f"文件超过 {_size_text(limit)}"
                        )
                    if len(head) < HEAD:
                        head += chunk[: HEAD - len(head)]
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise FieldInvalid("File is empty", "文件为空")
            problem = sniff_problem(ext, head)
            if problem:
                raise FieldInvalid(*problem)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        descriptor = {
            "id": digest.hexdigest(),
            "name": name,
            "size": size,
            "type": ext,
            "content_type": CONTENT_TYPES.get(ext, "application/octet-stream"),
        }
        return PendingUpload(field=field, descriptor=descriptor, temp_path=tmp)

    def commit(self, pending: Iterable[PendingUpload]) -> None:
        """Move accepted uploads into place (an identical stored file is kept as it is)."""
        for item in pending:
            target = self.path(item.descriptor["id"])
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                item.temp_path.unlink(missing_ok=True)
            else:
                os.replace(item.temp_path, target)

    def discard(self, pending: Iterable[PendingUpload]) -> None:
        """Delete uploads of a submission that was refused."""
        for item in pending:
            item.temp_path.unlink(missing_ok=True)


def convert_files(raw: Any, spec: FieldSpec, ctx: BindContext) -> list[dict[str, Any]] | None:
    """Convert a file field's input: kept attachments plus new uploads (form), or descriptors (JSON)."""
    limits = dict(spec.file or {})
    max_files = int(limits.get("max_files", 1))
    if ctx.source == "json":
        if raw is None:
            return None
        if not isinstance(raw, list) or not all(isinstance(v, dict) for v in raw):
            raise FieldInvalid("Must be a list of attachments", "必须是附件列表")
        if ctx.files is not None:
            for item in raw:
                if not ctx.files.exists(item.get("id")):
                    raise FieldInvalid("Unknown attachment", "附件不存在")
        return list(raw) or None
    existing = ctx.existing if isinstance(ctx.existing, list) else []
    kept = [d for d in existing if isinstance(d, dict) and d.get("id") not in ctx.removed]
    uploads = [u for u in (raw or []) if getattr(u, "filename", "")]
    if uploads and ctx.files is None:
        raise FieldInvalid("File uploads are not accepted here", "此处不接受文件上传")
    if len(kept) + len(uploads) > max_files:
        raise FieldInvalid(f"Attach at most {max_files} file(s)", f"最多上传 {max_files} 个文件")
    received: list[PendingUpload] = []
    try:
        for upload in uploads:
            received.append(ctx.files.receive(upload, field=spec.key, limits=limits))
    except BaseException:
        ctx.files.discard(received)
        raise
    ctx.uploads.extend(received)
    values = kept + [p.descriptor for p in received]
    return values or None
