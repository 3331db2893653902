"""The application's life: what its start leaves behind."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from pixelgate.api.app import create_app
from pixelgate.settings import load_settings


def test_what_start_up_made_is_kept_out_of_garbage_collection(tmp_path: Path) -> None:
    gc.unfreeze()  # whatever an earlier test in this process froze
    app = create_app(load_settings(None, data_dir=tmp_path, admin_key="pg_test_app_key_0123456789"))

    async def frozen_while_serving() -> int:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    # the imports, catalog, engine and app: well over ten thousand objects a full collection
    # would otherwise walk each time
    assert asyncio.run(frozen_while_serving()) > 10_000
    gc.unfreeze()
