"""`salesmesh pack ...` and `salesmesh definition ...`: template packs and definitions from the shell.

`pack validate` reads a pack folder or zip offline (or against the database with `--db`) and prints
every problem as `file:/json/pointer: message`. `pack import` prints the dry run — created, changed,
unchanged or conflict per definition, with the changed JSON pointers — and then applies it in one
transaction (after a prompt, or at once with `--yes`); importing the same pack again prints that nothing
changed and writes nothing, and a broken pack is refused with every error and nothing written.
`pack export` writes an installed pack (or every published definition) back as a folder or zip.
Commands act as the system (actor None); errors exit non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from salesmesh.metamodel import packs, versions
from salesmesh.metamodel.kinds import UnknownKind, all_kinds, get_kind
from salesmesh.metamodel.packs_io import PackError, parse_json_file
from salesmesh.metamodel.validation import DocumentInvalid, upgrade_document, validate_document
from salesmesh.platform.cli import CliError, CliState, pass_runtime
from salesmesh.platform.runtime import Runtime

MAX_SHOWN_CHANGES = 12


def _fail(errors: list[PackError], summary: str) -> None:
    """Print every error on stdout and a one-line summary on stderr, then exit 1."""
    for error in errors:
        click.echo(str(error))
    click.echo(summary, err=True)
    raise click.exceptions.Exit(1)


def _load(path: Path) -> packs.Pack:
    try:
        return packs.load_pack(path)
    except packs.PackRejected as exc:
        _fail(exc.errors, f"refused: {path} is not a safe, readable pack ({len(exc.errors)} error(s))")
        raise  # unreachable: _fail exits


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_plan(plan: packs.ImportPlan) -> None:
    """Print a dry run: one line per definition, the changed pointers, then the totals."""
    click.echo(f"Pack {plan.pack_key} {plan.pack_version} (checksum {(plan.checksum or '')[:12]})")
    width = max((len(f"{i.kind}/{i.key}") for i in plan.items), default=10)
    labels = {"create": "created", "change": "changed", "unchanged": "unchanged", "conflict": "conflict"}
    for item in plan.items:
        ident = f"{item.kind}/{item.key}".ljust(width)
        line = f"  {labels[item.action]:<10} {ident}  {item.file}"
        if item.action == "change":
            line += f"  (v{item.current_number} → new version, {len(item.changes)} change(s))"
        elif item.action == "conflict":
            line += f"  — {item.reason}"
        click.echo(line)
        if item.action in ("change", "conflict"):
            for change in item.changes[:MAX_SHOWN_CHANGES]:
                old, new = _short(change["old"]), _short(change["new"])
                detail = {"add": f"+ {new}", "remove": f"- {old}", "replace": f"{old} → {new}"}[change["op"]]
                click.echo(f"      {change['op']:<8} {change['path'] or '/'}: {detail}")
            if len(item.changes) > MAX_SHOWN_CHANGES:
                click.echo(f"      … and {len(item.changes) - MAX_SHOWN_CHANGES} more")
    c = plan.counts
    click.echo(
        f"Summary: {c['create']} created, {c['change']} changed, {c['unchanged']} unchanged, "
        f"{c['conflict']} conflict(s)"
    )


# --- pack ---------------------------------------------------------------------------------------


@click.group("pack")
def pack_group() -> None:
    """Validate, import and export template packs (a folder or a .zip)."""


@pack_group.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--db", "against_db", is_flag=True, help="Also check requirements and references against the database."
)
@click.pass_context
def validate_command(ctx: click.Context, path: Path, against_db: bool) -> None:
    """Check a pack and print every error as file:/json/pointer: message (exit 1 when any)."""
    pack = _load(path)
    if against_db:
        rt = ctx.ensure_object(CliState).runtime
        with rt.db.Session() as session:
            errors = packs.plan_import(session, pack).errors
    else:
        errors = packs.validate_pack(pack)
    if errors:
        _fail(errors, f"invalid: {len(errors)} error(s) in {path}")
    click.echo(
        f"OK: pack {pack.key} {pack.version} with {len(pack.listed_files())} definition(s), "
        f"checksum {packs.pack_checksum(pack)[:12]}"
    )


@pack_group.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only show what would change; write nothing.")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@pass_runtime
def import_command(rt: Runtime, path: Path, dry_run: bool, yes: bool) -> None:
    """Show the dry-run diff of a pack, then import it in one transaction."""
    pack = _load(path)
    with rt.db.Session() as session:
        plan = packs.plan_import(session, pack)
    if not plan.ok:
        _fail(plan.errors, f"refused: {len(plan.errors)} error(s) in {path}; nothing was written")
    print_plan(plan)
    if plan.already_installed:
        click.echo(
            f"Pack {plan.pack_key} {plan.pack_version} is already installed (same checksum): nothing changed."
        )
        return
    if dry_run:
        click.echo("Dry run: nothing was written.")
        return
    if not yes and not click.confirm("Apply these changes?", default=False):
        raise CliError("not applied; nothing was written")
    expected = [(i.kind, i.key, i.action) for i in plan.items]
    try:
        with rt.db.session_scope() as session:
            applied = packs.apply_import(session, None, pack, rt.clock)
            if [(i.kind, i.key, i.action) for i in applied.items] != expected or not applied.applied:
                raise CliError(
                    "the database changed since the dry run; nothing was written, run the import again"
                )
    except packs.PackInvalid as exc:
        _fail(exc.errors, f"refused: {len(exc.errors)} error(s); nothing was written")
    c = applied.counts
    click.echo(
        f"Imported {plan.pack_key} {plan.pack_version}: {c['create']} created, {c['change']} changed, "
        f"{c['unchanged']} unchanged, {c['conflict']} conflict(s) kept local."
    )


@pack_group.command("export")
@click.argument("key", required=False)
@click.option(
    "--all", "export_all", is_flag=True, help="Export every published definition instead of one pack."
)
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path), help="Target folder or .zip file."
)
@click.option("--zip", "as_zip", is_flag=True, help="Write a .zip (implied by an --out ending in .zip).")
@pass_runtime
def export_command(rt: Runtime, key: str | None, export_all: bool, out: Path, as_zip: bool) -> None:
    """Export an installed pack by KEY (or --all published definitions) to a folder or zip."""
    if bool(key) == export_all:
        raise click.UsageError("give a pack KEY or --all (not both)")
    as_zip = as_zip or out.suffix.lower() == ".zip"
    try:
        with rt.db.session_scope() as session:
            pack = packs.export_pack(session, None, out, key=key, as_zip=as_zip, clock=rt.clock)
    except packs.PackExportError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # nothing is committed: the export's audit event rolls back with it
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(out) else ""
        raise CliError(f"cannot write {out}: {exc.strerror or exc}{where}") from None
    click.echo(f"Exported {pack.key} {pack.version}: {len(pack.listed_files())} definition(s) to {out}")


# --- definition ---------------------------------------------------------------------------------


@click.group("definition")
def definition_group() -> None:
    """List, show and validate definitions (forms, pipelines, routing rules, ...)."""


def _check_kind(kind: str | None) -> None:
    if kind is None:
        return
    try:
        get_kind(kind)
    except UnknownKind:
        known = ", ".join(k.name for k in all_kinds())
        raise CliError(f"unknown kind {kind!r} (known: {known})") from None


@definition_group.command("list")
@click.option("--kind", help="Only definitions of this kind.")
@pass_runtime
def list_command(rt: Runtime, kind: str | None) -> None:
    """List definitions with their published and draft versions."""
    _check_kind(kind)
    with rt.db.Session() as session:
        rows = versions.list_definitions(session, None, kind=kind)
        if not rows:
            click.echo("No definitions." if not kind else f"No {kind} definitions.")
            return
        click.echo(f"{'KIND':<18} {'KEY':<32} {'PUBLISHED':<10} {'DRAFT':<6} PACK")
        for d in rows:
            published, draft = versions.published_of(d), versions.draft_of(d)
            click.echo(
                f"{d.kind:<18} {d.key:<32} {('v' + str(published.number)) if published else '-':<10} "
                f"{('v' + str(draft.number)) if draft else '-':<6} {d.pack_key or '-'}"
            )


@definition_group.command("show")
@click.argument("kind")
@click.argument("key")
@click.option(
    "--version", "number", type=int, help="Version number (default: the published one, else the latest)."
)
@pass_runtime
def show_command(rt: Runtime, kind: str, key: str, number: int | None) -> None:
    """Print a definition version's document as JSON (its status goes to stderr)."""
    _check_kind(kind)
    with rt.db.Session() as session:
        try:
            if number is None:
                definition = versions.get_definition(session, None, kind, key)
                version = versions.published_of(definition) or definition.versions[-1]
            else:
                version = versions.get_version(session, None, kind, key, number)
        except versions.DefinitionNotFound as exc:
            raise CliError(exc.message) from None
        click.echo(f"# {kind}/{key} version {version.number} ({version.status})", err=True)
        click.echo(json.dumps(version.document, ensure_ascii=False, indent=2))


@definition_group.command("validate")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def validate_file_command(file: Path) -> None:
    """Validate one definition file and print every error as file:/json/pointer: message."""
    data = file.read_bytes()
    document, errors = parse_json_file(str(file), data)
    if not errors:
        try:
            document = upgrade_document(document)
        except DocumentInvalid as exc:
            errors = [PackError(str(file), e.path, e.message, e.message_zh) for e in exc.errors]
        else:
            errors = [
                PackError(str(file), e.path, e.message, e.message_zh) for e in validate_document(document)
            ]
    if errors:
        _fail(errors, f"invalid: {len(errors)} error(s) in {file}")
    click.echo(f"OK: {document['kind']}/{document['key']} is valid")
