"""SDK clients bound to the shared test server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypedDict

import pytest

import pixelgate
from tests.conftest import ADMIN_KEY, Server


class Fast(TypedDict):
    width: int
    height: int
    num_steps: int


FAST: Fast = {"width": 64, "height": 64, "num_steps": 4}
"""local/tiny options that run in a fraction of a second."""


@pytest.fixture
def client(server: Server) -> Iterator[pixelgate.Client]:
    with pixelgate.Client(base_url=server.url, api_key=ADMIN_KEY) as instance:
        yield instance
