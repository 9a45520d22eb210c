"""`salesmesh public-form ...` on the medical-device pack: enable opens md-lead, refuses a bad preset, a
bad origin and a form that is not a lead form, reconfigures md-lead with a preset and embedding sites,
lists it with its outcomes, and disables it."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from salesmesh.platform.cli import CliState, cli
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from tests.workflows.public_form_helpers import send
from tests.workflows.routing_helpers import MD_PACK, import_pack


def test_public_form_commands(client: Any, runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as session:
        import_pack(session, clock, MD_PACK)
    runner = CliRunner()
    state = CliState(settings=runtime.settings, runtime=runtime)

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["public-form", *args], obj=state)

    plain = run("enable", "md-lead")
    assert plain.exit_code == 0, plain.output
    assert "enabled at /f/md-lead (channel web_form; embeddable on: this site only)" in plain.output
    # Without a preset the visitor chooses the source channel.
    assert 'name="source_channel"' in client.get("/f/md-lead").get_data(as_text=True)
    bad_preset = run("enable", "md-lead", "--presets", '{"source_channel": "billboard"}')
    assert (
        bad_preset.exit_code == 1
        and "presets: source_channel: Choose one of the listed options" in bad_preset.output
    )
    bad_origin = run(
        "enable", "md-lead", "--presets", '{"source_channel": "website"}', "--embed-on", "ftp://x"
    )
    assert bad_origin.exit_code == 1 and "'ftp://x' is not an origin" in bad_origin.output
    not_lead = run("enable", "md-deal")
    assert not_lead.exit_code == 1 and "'md-deal' is not a published lead form" in not_lead.output

    enabled = run(
        "enable",
        "md-lead",
        "--presets",
        '{"source_channel": "website"}',
        "--embed-on",
        "https://www.example.com",
        "--embed-on",
        "https://*.example.cn",
        "--per-ip",
        "5",
    )
    assert enabled.exit_code == 0, enabled.output
    assert "embeddable on: https://www.example.com, https://*.example.cn" in enabled.output
    page = client.get("/f/md-lead?lang=zh")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<h1>医院线索</h1>" in html and "三级甲等（三甲）" in html
    assert 'name="source_channel"' not in html and 'data-field="tender_date"' in html
    assert (
        "frame-ancestors 'self' https://www.example.com https://*.example.cn"
        in page.headers["Content-Security-Policy"]
    )

    assert send(client, clock, {"homepage": "http://spam.example"}, url="/f/md-lead").status_code == 303
    listed = run("list")
    assert "md-lead\tactive\tchannel=web_form" in listed.output
    assert "limits=5/ip,500/form per hour\t24h: honeypot=1" in listed.output

    assert run("disable", "md-lead").exit_code == 0
    assert client.get("/f/md-lead").status_code == 404
    assert "md-lead\tdisabled" in run("list").output
    assert run("disable", "nothing").exit_code == 1
