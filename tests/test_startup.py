from __future__ import annotations

import gc

import pytest

from pixelgate.startup import no_collection_while_importing


class Module:
    """Stands for what an import makes: objects that live as long as the process."""


def test_nothing_is_collected_while_importing_and_what_was_made_is_frozen() -> None:
    kept: list[Module] = []
    try:
        with no_collection_while_importing():
            assert not gc.isenabled()
            kept.extend(Module() for _ in range(1000))
            frozen_before = gc.get_freeze_count()

        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen_before + 1000
    finally:
        gc.unfreeze()


def test_collection_comes_back_when_the_start_fails() -> None:
    try:
        with pytest.raises(RuntimeError), no_collection_while_importing():
            raise RuntimeError("settings unreadable")

        assert gc.isenabled()
    finally:
        gc.unfreeze()
