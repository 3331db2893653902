"""`pixelgate generate --fallback`, with click's runner against the shared real server (no
OpenAI key there: dall-e-3 cannot run, so the tiny model serves)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pixelgate.cli.main import main
from tests.conftest import ADMIN_KEY, Server


def test_generate_with_fallbacks_says_which_model_served(server: Server, tmp_path: Path) -> None:
    env = {"PIXELGATE_URL": server.url, "PIXELGATE_API_KEY": ADMIN_KEY}
    out = tmp_path / "circle.png"

    result = CliRunner().invoke(
        main,
        ["generate", "a red circle", "-m", "dall-e-3", "--fallback", "no/such", "-o", str(out)],
        env=env,
    )
    served = CliRunner().invoke(
        main,
        [
            "generate",
            "a red circle",
            "-m",
            "dall-e-3",
            "--fallback",
            "local/tiny",
            "-o",
            str(out),
        ],
        env=env,
    )

    assert result.exit_code != 0
    assert "fallbacks.0" in result.output
    assert served.exit_code == 0, served.output
    assert "served by local/tiny (fallback for openai/dall-e-3)" in served.stdout
    assert out.exists()
