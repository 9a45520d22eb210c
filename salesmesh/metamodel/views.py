"""The definitions and template-pack pages: browse definitions, inspect versions, edit and publish
drafts (ops/admin), and import or export template packs (admin only).

Views stay thin: parse the form, call one service of `versions` or `packs`, commit, then redirect or
render. A pack upload is previewed first — the dry-run plan with its diff — and the confirmation form
carries the uploaded zip back (base64, re-validated in full on apply, and refused when its checksum is
not the one previewed), so the server keeps no upload state between the two requests.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from salesmesh.metamodel import packs, versions
from salesmesh.metamodel.diff import summarize
from salesmesh.metamodel.kinds import UnknownKind, all_kinds, get_kind
from salesmesh.metamodel.models import DefinitionVersion, PackInstall
from salesmesh.metamodel.packs_io import zip_bytes
from salesmesh.platform.auth import current_user, roles_required
from salesmesh.platform.web import _, db, runtime

bp = Blueprint("definitions_ui", __name__, template_folder="templates")

EDITORS = ("admin", "ops")
APPLY_FORM_OVERHEAD = 4096  # the apply form's other fields (CSRF token, checksum, file name) and headers


def short_json(value: Any, limit: int = 80) -> str:
    """Render a JSON value on one line, cut to `limit` characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty_json(value: Any) -> str:
    """Render a JSON value indented for reading."""
    return json.dumps(value, ensure_ascii=False, indent=2)


def _render(template: str, code: int = 200, **context: Any) -> Any:
    return render_template(template, short_json=short_json, pretty_json=pretty_json, **context), code


def _number(raw: str) -> int | None:
    """Return a version or lock number typed into a form or query string, or None when it is not one."""
    return int(raw) if raw.isascii() and raw.isdigit() else None  # "²".isdigit() is True, int("²") fails


def _kind_label(name: str) -> dict[str, str]:
    try:
        return get_kind(name).label
    except UnknownKind:
        return {"en": name, "zh": name}


# --- definitions --------------------------------------------------------------------------------


@bp.get("/definitions")
@roles_required(*EDITORS)
def index() -> Any:
    """List definitions, optionally of one kind."""
    kinds = all_kinds()
    kind = request.args.get("kind") or None
    if kind not in {k.name for k in kinds}:
        kind = None
    items = versions.list_definitions(db(), current_user(), kind=kind)
    rows = [
        {
            "definition": d,
            "published": versions.published_of(d),
            "draft": versions.draft_of(d),
            "latest": d.versions[-1] if d.versions else None,
        }
        for d in items
    ]
    stats = {
        "definitions": len(rows),
        "published": sum(1 for r in rows if r["published"]),
        "drafts": sum(1 for r in rows if r["draft"]),
    }
    return _render(
        "definitions/index.html", rows=rows, kinds=kinds, kind=kind, stats=stats, kind_label=_kind_label
    )


def _selected(definition: Any, number: int | None) -> DefinitionVersion | None:
    if number is not None:
        return next((v for v in definition.versions if v.number == number), None)
    return (
        versions.draft_of(definition)
        or versions.published_of(definition)
        or (definition.versions[-1] if definition.versions else None)
    )


def _detail(kind: str, key: str, *, number: int | None = None, code: int = 200, **extra: Any) -> Any:
    try:
        definition = versions.get_definition(db(), current_user(), kind, key)
    except versions.DefinitionNotFound:
        return _render("error.html", 404, status=404, message=_("No such definition."), errors=[])
    selected = _selected(definition, number)
    if selected is None:
        return _render("error.html", 404, status=404, message=_("No such version."), errors=[])
    published = versions.published_of(definition)
    changes = versions.diff_versions(published, selected) if published and selected is not published else []
    context = {
        "definition": definition,
        "selected": selected,
        "published": published,
        "draft": versions.draft_of(definition),
        "errors": versions.validation_errors(selected),
        "changes": changes,
        "change_counts": summarize(changes),
        "kind_label": _kind_label,
        "editor_text": pretty_json(selected.document),
    }
    context.update(extra)
    return _render("definitions/detail.html", code, **context)


@bp.get("/definitions/<kind>/<key>")
@roles_required(*EDITORS)
def detail(kind: str, key: str) -> Any:
    """Show a definition: its versions, the chosen version's JSON, validation errors and diff."""
    raw = request.args.get("v", "")
    return _detail(kind, key, number=_number(raw))


def _service_error(exc: versions.DefinitionError) -> str:
    if isinstance(exc, versions.StaleDraft):
        return _("Someone else saved this draft in the meantime. Reload it and apply your change again.")
    if isinstance(exc, versions.DraftExists):
        return _("This definition already has an open draft; edit that one.")
    if isinstance(exc, versions.PublishedImmutable):
        return _("A published version cannot change; create a new draft instead.")
    if isinstance(exc, versions.InvalidDefinition):
        return _("The document is not valid; fix the errors listed below.")
    if isinstance(exc, versions.DefinitionNotFound):
        return _("No such definition.")
    return _("That step is not possible for this version.")


def _back(kind: str, key: str, number: int | None = None) -> Any:
    args = {"v": number} if number is not None else {}
    return redirect(url_for("definitions_ui.detail", kind=kind, key=key, **args))


@bp.post("/definitions/<kind>/<key>/drafts")
@roles_required(*EDITORS)
def new_draft(kind: str, key: str) -> Any:
    """Start a draft from an existing version's document."""
    raw = request.form.get("from", "")
    try:
        source = versions.get_version(db(), current_user(), kind, key, _number(raw) or -1)
        draft = versions.create_definition_draft(db(), current_user(), source.document, runtime().clock)
    except versions.DefinitionError as exc:
        flash(_service_error(exc), "error")
        return _back(kind, key)
    db().commit()
    flash(_("Draft version %(number)s created.", number=draft.number), "success")
    return _back(kind, key, draft.number)


@bp.post("/definitions/<kind>/<key>/draft")
@roles_required(*EDITORS)
def save_draft(kind: str, key: str) -> Any:
    """Save the JSON edited in the draft editor (refused when someone saved in between)."""
    text = request.form.get("document", "")
    lock = request.form.get("lock_version", "")
    try:
        draft = versions.draft_of(versions.get_definition(db(), current_user(), kind, key))
    except versions.DefinitionNotFound:
        draft = None
    if draft is None:
        flash(_("This definition has no open draft."), "error")
        return _back(kind, key)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the decoder goes
        problem = [{"path": "", "message": str(exc), "message_zh": str(exc)}]
        flash(_("The text is not valid JSON."), "error")
        return _detail(kind, key, number=draft.number, code=422, editor_text=text, save_errors=problem)
    try:
        expected = _number(lock)
        versions.update_draft(
            db(), current_user(), draft.id, document, -1 if expected is None else expected, runtime().clock
        )
    except versions.DefinitionError as exc:
        db().rollback()
        flash(_service_error(exc), "error")
        status = 409 if isinstance(exc, versions.StaleDraft) else 422
        return _detail(kind, key, number=draft.number, code=status, editor_text=text, save_errors=exc.errors)
    db().commit()
    flash(_("Draft saved."), "success")
    return _back(kind, key, draft.number)


@bp.post("/definitions/<kind>/<key>/versions/<int:number>/publish")
@roles_required(*EDITORS)
def publish(kind: str, key: str, number: int) -> Any:
    """Publish a draft."""
    try:
        version = versions.get_version(db(), current_user(), kind, key, number)
        versions.publish_version(db(), current_user(), version.id, runtime().clock)
    except versions.DefinitionError as exc:
        db().rollback()
        flash(_service_error(exc), "error")
        return _detail(kind, key, number=number, code=422, save_errors=exc.errors)
    db().commit()
    flash(_("Version %(number)s is published.", number=number), "success")
    return _back(kind, key, number)


@bp.post("/definitions/<kind>/<key>/versions/<int:number>/archive")
@roles_required(*EDITORS)
def archive(kind: str, key: str, number: int) -> Any:
    """Archive a version (retire a published one, abandon a draft)."""
    try:
        version = versions.get_version(db(), current_user(), kind, key, number)
        versions.archive_version(db(), current_user(), version.id, runtime().clock)
    except versions.DefinitionError as exc:
        flash(_service_error(exc), "error")
        return _back(kind, key, number)
    db().commit()
    flash(_("Version %(number)s is archived.", number=number), "success")
    return _back(kind, key, number)


# --- template packs -----------------------------------------------------------------------------


def _packs_page(code: int = 200, **context: Any) -> Any:
    installs = list(
        db().scalars(select(PackInstall).order_by(PackInstall.installed_at.desc(), PackInstall.id.desc()))
    )
    latest: dict[str, int] = {}
    for install in installs:
        latest.setdefault(install.pack_key, install.id)
    return _render(
        "definitions/packs.html",
        code,
        installs=installs,
        latest_ids=set(latest.values()),
        kind_label=_kind_label,
        **context,
    )


@bp.get("/packs", endpoint="packs")
@roles_required("admin")
def packs_page() -> Any:
    """Show installed packs, the upload form and the export links."""
    return _packs_page()


def _load_upload(data: bytes, name: str) -> tuple[packs.Pack | None, list[packs.PackError]]:
    try:
        return packs.load_pack_bytes(data, name=name), []
    except packs.PackRejected as exc:
        return None, exc.errors


@bp.post("/packs/preview")
@roles_required("admin")
def preview() -> Any:
    """Validate an uploaded zip and show the dry-run diff with an apply button."""
    upload = request.files.get("pack")
    if upload is None or not upload.filename:
        flash(_("Choose a pack .zip file first."), "error")
        return _packs_page(400)
    data = upload.read()
    pack, errors = _load_upload(data, upload.filename)
    if pack is None:
        return _packs_page(422, pack_errors=errors, upload_name=upload.filename)
    plan = packs.plan_import(db(), pack)
    if not plan.ok:
        return _packs_page(422, pack_errors=plan.errors, upload_name=upload.filename)
    payload = base64.b64encode(data).decode("ascii")
    # The apply form carries the zip back URL-encoded ("+", "/" and "=" take three bytes each): refuse now
    # what the apply request could not deliver within the request size limit, instead of a bare 413 later.
    encoded = len(payload) + 2 * sum(payload.count(c) for c in "+/=") + APPLY_FORM_OVERHEAD
    limit = runtime().settings.max_request_bytes
    if encoded > limit:
        too_big = packs.PackError(
            upload.filename,
            "",
            f"this zip is too large to apply from the browser (at most about {limit * 3 // 4 // 1024} KiB); "
            "import it with `salesmesh pack import` instead",
            f"此 zip 文件过大，无法在浏览器中应用（上限约 {limit * 3 // 4 // 1024} KiB）；"
            "请改用 `salesmesh pack import` 导入",
        )
        return _packs_page(413, pack_errors=[too_big], upload_name=upload.filename)
    return _packs_page(plan=plan, payload=payload, upload_name=upload.filename)


@bp.post("/packs/apply")
@roles_required("admin")
def apply() -> Any:
    """Apply a previewed pack in one transaction (refused when it is not the previewed one)."""
    name = request.form.get("name", "upload.zip")
    try:
        data = base64.b64decode(request.form.get("payload", ""), validate=True)
    except (binascii.Error, ValueError):
        data = b""
    pack, errors = _load_upload(data, name)
    if pack is None:
        return _packs_page(422, pack_errors=errors, upload_name=name)
    try:
        plan = packs.apply_import(db(), current_user(), pack, runtime().clock)
    except packs.PackInvalid as exc:
        db().rollback()
        return _packs_page(422, pack_errors=exc.errors, upload_name=name)
    if plan.checksum != request.form.get("checksum"):
        db().rollback()
        flash(_("The pack is not the one that was previewed; upload it again."), "error")
        return redirect(url_for("definitions_ui.packs"))
    db().commit()
    if plan.already_installed:
        flash(_("This pack is already installed: nothing changed."), "success")
    else:
        c = plan.counts
        flash(
            _(
                "Imported %(key)s %(version)s: %(created)s created, %(changed)s changed, %(unchanged)s unchanged, %(conflicts)s kept local.",  # noqa: E501
                key=plan.pack_key,
                version=plan.pack_version,
                created=c["create"],
                changed=c["change"],
                unchanged=c["unchanged"],
                conflicts=c["conflict"],
            ),
            "success",
        )
    return redirect(url_for("definitions_ui.packs"))


def _download(key: str | None) -> Any:
    try:
        pack = packs.build_export(db(), current_user(), key=key, clock=runtime().clock)
    except packs.PackExportError:
        return _render("error.html", 404, status=404, message=_("No such pack is installed."), errors=[])
    body = zip_bytes(packs.export_files(pack))
    db().commit()  # the export is audited
    filename = f"{pack.key}-{pack.version}.zip"
    return Response(
        body,
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/packs/<key>/export.zip")
@roles_required("admin")
def export(key: str) -> Any:
    """Download an installed pack (its current published definitions) as a zip."""
    return _download(key)


@bp.get("/packs/export-all.zip")
@roles_required("admin")
def export_all() -> Any:
    """Download every published definition as one pack zip."""
    return _download(None)
