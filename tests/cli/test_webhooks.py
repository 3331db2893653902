"""`pixelgate webhooks secret [--rotate]` against a real server."""

from __future__ import annotations

from click.testing import CliRunner

from pixelgate.cli.main import main
from tests.conftest import Server
from tests.helpers import tenant_key


def test_webhooks_secret_prints_the_secret_and_rotates_it(server: Server) -> None:
    with server.client() as admin:
        key = tenant_key(admin)
    env = {"PIXELGATE_URL": server.url, "PIXELGATE_API_KEY": key}

    first = CliRunner().invoke(main, ["webhooks", "secret"], env=env)
    again = CliRunner().invoke(main, ["webhooks", "secret"], env=env)
    rotated = CliRunner().invoke(main, ["webhooks", "secret", "--rotate"], env=env)

    assert first.exit_code == 0, first.output
    assert first.stdout.strip().startswith("whsec_") and again.stdout == first.stdout
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.strip().startswith("whsec_") and rotated.stdout != first.stdout
