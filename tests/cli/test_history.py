"""`pixelgate files list|delete` and `pixelgate jobs delete`, with click's runner against a real
server."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner, Result

from pixelgate.cli.main import main
from tests.conftest import Server
from tests.helpers import SLOW, generate, submit, tenant_key, wait_for


@pytest.fixture
def key(server: Server) -> str:
    with server.client() as admin:
        return tenant_key(admin)


def run(server: Server, key: str, *args: str) -> Result:
    env = {"PIXELGATE_URL": server.url, "PIXELGATE_API_KEY": key, "COLUMNS": "160"}
    return CliRunner().invoke(main, list(args), env=env)


def test_files_list_pages_a_table_and_json(server: Server, key: str) -> None:
    with server.client(key) as client:
        for prompt in ("a red circle", "a blue square", "a green triangle"):
            assert generate(client, prompt=prompt).status_code == 200

    table = run(server, key, "files", "list", "--limit", "2")
    rest = run(server, key, "files", "list", "--json", "--after", table.stderr.split()[-1])
    found = run(server, key, "files", "list", "--q", "SQUARE", "--model", "local/tiny", "--json")

    assert table.exit_code == 0, table.output
    assert "a green triangle" in table.stdout and "a blue square" in table.stdout
    assert "local/tiny" in table.stdout and "more: --after file_" in table.stderr
    assert [item["prompt"] for item in json.loads(rest.stdout)] == ["a red circle"]
    assert [item["prompt"] for item in json.loads(found.stdout)] == ["a blue square"]


def test_files_and_jobs_delete_each_id_and_report_failures(server: Server, key: str) -> None:
    with server.client(key) as client:
        result = generate(client, prompt="to delete", n=2).json()["data"]
        busy = submit(client, **SLOW)
        wait_for(client, busy["id"], "running")
    first, second = (item["file_id"] for item in result["data"])

    files = run(server, key, "files", "delete", first, "file_nope")
    jobs = run(server, key, "jobs", "delete", busy["id"], result["job_id"])

    assert files.exit_code == 4  # NotFound, after deleting the first
    assert f"{first}: deleted" in files.stdout and "file_nope: error [NOT_FOUND]" in files.stderr
    assert jobs.exit_code == 1 and "cancel it first" in jobs.stderr
    assert f"{result['job_id']}: deleted" in jobs.stdout
    assert httpx.get(result["data"][1]["url"]).status_code == 404  # went with its job
    with server.client(key) as client:
        assert client.get(f"/v1/files/{second}").status_code == 404
        client.post(f"/v1/jobs/{busy['id']}/cancel")
