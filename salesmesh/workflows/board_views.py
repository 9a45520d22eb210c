"""`GET /board`: the team board for leads, ops and admins (reps get 403; their deals are in "My day").

Query parameters: `team` (a team id; ops and admins default to all teams, a lead to their own team, and a
team the lead does not lead is a 404), `pipeline` (a pipeline key; default: the one most of the board's
open deals are in), `stage`, `light`, `rep` (a user id, 0 for unassigned deals), `sort` (risk, rep or
stage) and `page`. A parameter the board cannot use answers 400 naming it. The view is thin: parse,
`board.load_board`, render; each deal in the list links to its deal page's timeline.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, g, render_template, request, url_for
from werkzeug.exceptions import NotFound

from salesmesh.platform.auth import login_required
from salesmesh.platform.web import ApiError, _, current_locale, db, runtime
from salesmesh.workflows.board import SORT_NAMES, Board, BoardError, BoardQuery, load_board
from salesmesh.workflows.models import LIGHT_NAMES
from salesmesh.workflows.record_ui import Times, work_timezone

bp = Blueprint("board", __name__, template_folder="templates")

PARAMS = ("team", "pipeline", "stage", "light", "rep", "sort", "page")


def _invalid(path: str, message: str) -> ApiError:
    return ApiError(400, "invalid_query", message, [{"path": path, "message": message}])


def _number(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise _invalid(f"/{name}", _("Enter a whole number."))
    return int(raw)


def _text(name: str) -> str | None:
    raw = request.args.get(name, "").strip()
    if len(raw) > 80:
        raise _invalid(f"/{name}", _("Too long."))
    return raw or None


def _query() -> BoardQuery:
    unknown = sorted(set(request.args) - set(PARAMS))
    if unknown:
        raise _invalid(f"/{unknown[0]}", _("Unknown parameter %(name)s.", name=unknown[0]))
    return BoardQuery(
        team_id=_number("team"),
        pipeline_key=_text("pipeline"),
        stage=_text("stage"),
        light=_text("light"),
        rep=_number("rep"),
        sort=_text("sort") or "risk",
        page=_number("page") or 1,
    )


def board_url(board: Board, **changes: Any) -> str:
    """Return the board's URL with its current parameters, each change replacing one (None drops it)."""
    q = board.query
    current: dict[str, Any] = {
        "team": board.team.id if board.team is not None else None,
        "pipeline": board.pipeline_key,
        "stage": q.stage,
        "light": q.light,
        "rep": q.rep,
        "sort": q.sort if q.sort != "risk" else None,
    }
    if set(changes) - {"page", "sort"}:
        current["page"] = None  # another filter: back to the first page
    current.update(changes)
    pairs = [(k, str(v)) for k, v in current.items() if v is not None and k in PARAMS]
    return url_for("board.index") + ("?" + urlencode(pairs) if pairs else "")


@bp.get("/board")
@login_required
def index() -> Any:
    """Show the team board: lights per rep and stage, and the deals most at risk."""
    query = _query()
    session = db()
    times = Times(work_timezone(session), runtime().clock.now(), current_locale())
    try:
        board = load_board(session, g.user, query, now=times.now)
    except BoardError as exc:
        if exc.path == "/team":
            raise NotFound() from None  # a team the person may not look at does not exist for them
        raise _invalid(exc.path, _(exc.message, **exc.params)) from None
    return render_template(
        "board/index.html",
        board=board,
        times=times,
        light_names=LIGHT_NAMES,
        sort_names=SORT_NAMES,
        board_url=lambda **changes: board_url(board, **changes),
    )
