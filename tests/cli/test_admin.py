"""`pixelgate tenants`, `keys`, `usage` against a running server."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pixelgate.cli.main import main
from tests.conftest import Server


def run(server: Server, *args: str, key: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main, [*args, "--url", server.url, "--api-key", key or server.admin_key]
    )
    return result.exit_code, result.stdout, result.stderr


def test_tenants_keys_and_usage_from_the_command_line(server: Server) -> None:
    code, out, _ = run(
        server, "tenants", "create", "cli-t", "--allow", "local/*", "--budget-total", "1.00",
        "--rpm", "30", "--price", "local/tiny:default=0.05", "--json",
    )  # fmt: skip
    assert code == 0, out
    tenant = json.loads(out)
    assert tenant["allow_models"] == ["local/*"]
    assert tenant["limits"] == {
        "requests_per_minute": 30,
        "images_per_day": None,
        "concurrent_jobs": None,
    }
    assert tenant["prices"] == {"local/tiny": {"default": "0.05"}}

    code, out, err = run(server, "keys", "create", "--tenant", "cli-t", "--name", "app")
    assert code == 0
    key = out.strip()
    assert key.startswith("pg_") and "shown once" in err

    code, out, _ = run(
        server, "generate", "a dot", "--model", "local/tiny", "-o", "/dev/null", "--json", key=key
    )
    assert code == 0, out
    code, out, _ = run(server, "usage", "--json", key=key)
    assert json.loads(out)["spent"] == "0.05"
    code, out, _ = run(server, "usage", "--tenant", "cli-t")
    assert "0.05 spent on 1 images" in out

    code, out, _ = run(server, "keys", "list", "--tenant", "cli-t", "--json")
    [listed] = json.loads(out)
    assert key not in out
    code, out, _ = run(server, "keys", "revoke", listed["id"])
    assert code == 0 and "revoked" in out
    code, _, err = run(server, "models", key=key)
    assert code == 3 and "UNAUTHORIZED" in err

    code, _, err = run(server, "tenants", "list", key=key)
    assert code == 3


def test_a_bad_price_is_a_usage_error(server: Server) -> None:
    code, _, err = run(server, "tenants", "create", "x", "--price", "nonsense")
    assert code == 2
    assert "MODEL:KEY=AMOUNT" in err


def test_retention_and_erasure_from_the_command_line(server: Server) -> None:
    code, out, _ = run(server, "tenants", "create", "short", "--retention-days", "7", "--json")
    assert code == 0, out
    assert json.loads(out)["retention_days"] == 7.0
    code, out, _ = run(server, "keys", "create", "--tenant", "short", "--name", "app")
    key = out.strip()
    code, out, _ = run(
        server, "generate", "a dot", "--model", "local/tiny", "-o", "/dev/null", key=key
    )
    assert code == 0, out

    code, out, _ = run(server, "tenants", "erase", "short", "--yes")
    assert code == 0, out
    assert "erased 1 jobs, 1 files, 1 blobs, 1 API keys" in out and "kept: budget_accounts" in out
    code, out, _ = run(server, "tenants", "show", "short", "--json")
    assert json.loads(out)["erased_at"] is not None
    code, _, err = run(server, "models", key=key)
    assert code == 3 and "UNAUTHORIZED" in err
    code, _, err = run(server, "tenants", "erase", "nobody", "--yes")
    assert code != 0 and "NOT_FOUND" in err


def test_a_tenants_own_provider_key_from_standard_input_never_printed(server: Server) -> None:
    secret = "sk-cli-own-key-0123456789wxyz"
    code, out, _ = run(server, "tenants", "create", "cli-keys", "--own-keys-only")
    assert code == 0, out

    def set_key(*args: str, stdin: str | None = None) -> tuple[int, str]:
        result = CliRunner().invoke(
            main,
            ["tenants", "set-key", "cli-keys", *args, "--url", server.url,
             "--api-key", server.admin_key],
            input=stdin,
        )  # fmt: skip
        return result.exit_code, result.output

    code, out = set_key("openai", stdin=secret + "\n")  # piped: no prompt, not in the history
    assert code == 0, out
    assert "key openai" in out and "set, ending wxyz" in out and "own_keys_only" in out
    assert secret not in out
    code, out = set_key("stability", "sk-stability-key-0000abcd", "--json")
    assert code == 0, out
    assert json.loads(out)["provider_keys"] == {
        "openai": {"set": True, "last4": "wxyz"},
        "stability": {"set": True, "last4": "abcd"},
    }
    code, out = set_key("nope", "sk-0123456789")
    assert code != 0 and "provider_keys.nope" in out and "openai" in out

    code, out, _ = run(server, "webhooks", "secret")  # the default tenant's, made now
    assert code == 0 and "whsec_" in out, out
    code, out, _ = run(server, "tenants", "rotate-keys")
    assert code == 0 and (
        "2 provider keys and 1 webhook signing secrets encrypted under the first secret key" in out
    ), out
    code, out = set_key("openai", "--remove", "--json")
    assert code == 0, out
    assert list(json.loads(out)["provider_keys"]) == ["stability"]
