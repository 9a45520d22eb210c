"""Attachments: extension and content checks, size limits, content-addressed storage that never uses the
client's file name, and uploads through `bind` (stored only when the whole submission is valid)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from werkzeug.datastructures import CombinedMultiDict, FileStorage, MultiDict

from salesmesh.forms.binding import bind
from salesmesh.forms.compile import compile_document
from salesmesh.forms.fields import FieldInvalid
from salesmesh.forms.files import FileStore, display_name, extension
from salesmesh.platform.settings import Settings
from tests.forms.conftest import form_doc, shipped

PDF = b"%PDF-1.7\n" + b"0" * 500
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100
LIMITS = {"max_size_mb": 1, "allowed_types": ["pdf", "jpg", "png", "dwg", "csv"], "max_files": 3}


def upload(name: str, content: bytes) -> FileStorage:
    return FileStorage(stream=io.BytesIO(content), filename=name, content_type="application/octet-stream")


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "uploads")


def temp_files(store: FileStore) -> list[Path]:
    return list((store.root / "tmp").glob("*")) if (store.root / "tmp").exists() else []


def test_accepted_upload_is_content_addressed(store: FileStore) -> None:
    pending = store.receive(upload("C:\\fakepath\\..\\合同 v2.pdf", PDF), field="f", limits=LIMITS)
    digest = hashlib.sha256(PDF).hexdigest()
    assert pending.descriptor == {
        "id": digest,
        "name": "合同 v2.pdf",
        "size": len(PDF),
        "type": "pdf",
        "content_type": "application/pdf",
    }
    store.commit([pending])
    stored = store.path(digest)
    assert stored == store.root / digest[:2] / digest and stored.read_bytes() == PDF
    assert store.exists(digest) and temp_files(store) == []
    again = store.receive(upload("copy.pdf", PDF), field="f", limits=LIMITS)
    store.commit([again])  # the same content is stored once
    assert len(list(store.root.rglob(digest))) == 1
    assert "合同" not in "".join(str(p) for p in store.root.rglob("*"))


@pytest.mark.parametrize(
    ("name", "content", "zh"),
    [
        ("setup.exe", b"MZ\x90\x00", "不允许上传.exe 类型的文件"),
        ("README", b"hello", "无扩展名的文件"),
        ("page.html", b"<html></html>", ".html 类型"),
        ("photo.png", JPEG, "文件内容与扩展名 .png 不符"),
        ("contract.pdf", b"just some text", "文件内容与扩展名 .pdf 不符"),
        ("contract.pdf", b"MZ\x90\x00%PDF-", "不能上传程序或脚本文件"),
        ("plan.dwg", b"\x7fELF\x02\x01", "不能上传程序或脚本文件"),
        ("plan.dwg", b"<svg onload=alert(1)>", "不能上传网页或 SVG 文件"),
        ("list.csv", b"a,b\x00\x00", "文件内容与扩展名 .csv 不符"),
        ("empty.pdf", b"", "文件为空"),
    ],
)
def test_refused_uploads(store: FileStore, name: str, content: bytes, zh: str) -> None:
    with pytest.raises(FieldInvalid) as info:
        store.receive(upload(name, content), field="f", limits=LIMITS)
    assert zh in info.value.message_zh and info.value.message
    assert temp_files(store) == []


def test_size_limit(store: FileStore) -> None:
    limits = {"max_size_mb": 0.001, "allowed_types": ["pdf"]}
    with pytest.raises(FieldInvalid) as info:
        store.receive(upload("big.pdf", PDF + b"1" * 2000), field="f", limits=limits)
    assert info.value.message == "File is larger than 1 KB" and info.value.message_zh == "文件超过 1 KB"
    assert temp_files(store) == []


def test_accepted_kinds_and_names(store: FileStore) -> None:
    assert store.receive(upload("scan.JPEG", JPEG), field="f", limits=LIMITS).descriptor["type"] == "jpg"
    assert (
        store.receive(upload("plan.dwg", b"AC1032" + b"\x00" * 20), field="f", limits=LIMITS).descriptor[
            "content_type"
        ]
        == "application/octet-stream"
    )
    assert (
        store.receive(upload("客户.csv", "名称,等级\n".encode()), field="f", limits=LIMITS).descriptor["type"]
        == "csv"
    )
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("..\\..\\x.pdf") == "x.pdf"
    assert display_name("\x00") == "file"
    assert extension("a.tar.PDF") == "pdf" and extension("noext") == ""
    with pytest.raises(ValueError):
        store.path("../" + "a" * 61)
    assert not store.exists("nope")


def test_store_location_follows_settings(tmp_path: Path) -> None:
    settings = Settings(database_url="sqlite://", instance_path=tmp_path / "inst", testing=True)
    assert FileStore.for_settings(settings).root == tmp_path / "inst" / "uploads"
    custom = settings.with_(upload_dir=tmp_path / "files")
    assert FileStore.for_settings(custom).root == tmp_path / "files"


DEAL_REQUIRED = {"product_line": "ivd"}


def deal_post(files: list[tuple[str, FileStorage]], **fields: str) -> CombinedMultiDict:
    return CombinedMultiDict([MultiDict({**DEAL_REQUIRED, **fields}), MultiDict(files)])


def test_bind_stores_uploads_of_a_valid_submission(store: FileStore) -> None:
    spec = compile_document(shipped("md-deal"))
    raw = deal_post([("contract_file", upload("a.pdf", PDF)), ("contract_file", upload("b.png", PNG))])
    bound = bind(spec, raw, files=store)
    assert bound.valid, bound.errors
    attached = bound.values["contract_file"]
    assert [a["name"] for a in attached] == ["a.pdf", "b.png"]
    assert all(store.exists(a["id"]) for a in attached) and temp_files(store) == []
    assert bound.stored_uploads == attached
    # Editing: keep one attachment, remove the other, add a third.
    raw = deal_post(
        [("contract_file", upload("c.jpg", JPEG))],
        contract_file__remove=attached[1]["id"],
    )
    edited = bind(spec, raw, files=store, existing=bound.values)
    assert [a["name"] for a in edited.values["contract_file"]] == ["a.pdf", "c.jpg"]
    # JSON input names stored attachments by descriptor.
    assert bind(spec, {**DEAL_REQUIRED, "contract_file": attached}, source="json", files=store).valid
    ghost = [{**attached[0], "id": "f" * 64}]
    bad = bind(spec, {**DEAL_REQUIRED, "contract_file": ghost}, source="json", files=store)
    assert bad.errors["contract_file"][0]["message_zh"] == "附件不存在"


def test_bind_discards_uploads_of_an_invalid_submission(store: FileStore) -> None:
    spec = compile_document(shipped("md-deal"))
    raw = deal_post([("contract_file", upload("a.pdf", PDF))], product_line="not-an-option")
    bound = bind(spec, raw, files=store)
    assert not bound.valid and "product_line" in bound.errors
    assert temp_files(store) == [] and not store.exists(hashlib.sha256(PDF).hexdigest())
    too_many = deal_post([("contract_file", upload(f"{i}.pdf", PDF + bytes([i]))) for i in range(4)])
    bound = bind(spec, too_many, files=store)
    assert bound.errors["contract_file"][0]["message_zh"] == "最多上传 3 个文件"
    assert temp_files(store) == []
    mismatch = deal_post([("contract_file", upload("scan.pdf", PNG))])
    bound = bind(spec, mismatch, files=store)
    assert bound.errors["contract_file"][0]["message_zh"] == "文件内容与扩展名 .pdf 不符"
    no_store = bind(spec, deal_post([("contract_file", upload("a.pdf", PDF))]))
    assert no_store.errors["contract_file"][0]["message_zh"] == "此处不接受文件上传"


def test_uploads_of_a_hidden_file_field_are_not_kept(store: FileStore) -> None:
    doc = form_doc(
        {"key": "has_scan", "type": "boolean"},
        {
            "key": "scan",
            "type": "file",
            "visible_if": {"==": [{"var": "has_scan"}, True]},
            "required_if": {"==": [{"var": "has_scan"}, True]},
            "file": {"max_size_mb": 1, "allowed_types": ["pdf"]},
        },
    )
    spec = compile_document(doc)
    bound = bind(
        spec, CombinedMultiDict([MultiDict(), MultiDict([("scan", upload("a.pdf", PDF))])]), files=store
    )
    assert bound.valid and "scan" not in bound.values
    assert temp_files(store) == [] and not any(store.root.glob("??/*"))
    bound = bind(spec, MultiDict({"has_scan": "on"}), files=store)
    assert bound.errors["scan"][0]["message"] == "This field is required"
