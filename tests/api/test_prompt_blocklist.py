"""The prompt block-list, on and off, through the running server."""

from __future__ import annotations

import json

from tests.conftest import Server
from tests.helpers import generate


def test_a_blocked_phrase_is_refused_before_anything_runs(make_server) -> None:  # type: ignore[no-untyped-def]
    server: Server = make_server(PIXELGATE_SAFETY_BLOCKED_TERMS=json.dumps(["red circle"])).start()
    with server.client() as api:
        refused = generate(api, prompt="a big RED Circle, please")
        allowed = generate(api, prompt="a red circled date")  # whole words only

        assert refused.status_code == 400
        assert refused.json()["error"] == {
            "code": "VALIDATION_ERROR",
            "message": "Prompt contains a blocked term: 'RED Circle'",
            "param": "prompt",
        }
        assert allowed.status_code == 200
        assert len(api.get("/v1/jobs", params={"limit": 100}).json()["data"]) == 1


def test_without_a_block_list_every_prompt_may_pass(api) -> None:  # type: ignore[no-untyped-def]
    assert generate(api, prompt="a big red circle").status_code == 200
