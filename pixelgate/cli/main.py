"""The `pixelgate` command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pixelgate.cli.group import ErrorReportingGroup
from pixelgate.extras import missing_extra
from pixelgate.startup import no_collection_while_importing

if TYPE_CHECKING:
    from pixelgate.engine.model_launch import HeadStart
    from pixelgate.engine.model_process import ModelProcess
    from pixelgate.settings import Settings


COMMANDS = {
    "generate": "pixelgate.cli.generate:generate",
    "batch": "pixelgate.cli.batch:batch",
    "models": "pixelgate.cli.catalog:models",
    "jobs": "pixelgate.cli.jobs:jobs",
    "files": "pixelgate.cli.files:files",
    "tenants": "pixelgate.cli.admin:tenants",
    "keys": "pixelgate.cli.admin:keys",
    "usage": "pixelgate.cli.admin:usage",
    "worker": "pixelgate.cli.worker:worker",
    "remove-bg": "pixelgate.cli.background:remove_bg",
    "upscale": "pixelgate.cli.upscale:upscale",
    "edit": "pixelgate.cli.edit:edit",
    "pull": "pixelgate.cli.pull:pull",
    "mcp": "pixelgate.cli.mcp:mcp",
    "webhooks": "pixelgate.cli.webhooks:webhooks",
}
"""Every command but `serve`, imported when it runs (`serve` imports none of them)."""


@click.group(cls=ErrorReportingGroup, lazy=COMMANDS)
@click.version_option(package_name="pixelgate")
def main() -> None:
    """pixelgate: one API for every image model, local or hosted."""


@main.command()
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: 8000].")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TOML settings file (same keys as the PIXELGATE_* variables, without the prefix).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the database, results and models live [default: PIXELGATE_DATA_DIR].",
)
def serve(
    host: str | None, port: int | None, config_file: Path | None, data_dir: Path | None
) -> None:
    """Run the HTTP API, with its in-process worker."""
    problem = missing_extra("pixelgate serve", "server")
    if problem is not None:
        raise click.ClickException(problem)
    head_start = None
    if missing_extra("a local model", "local") is None:
        # the model worker process before anything else: its imports (torch, diffusers:
        # seconds) overlap all of this process's start, the settings included; it is told them
        # once they are read, or ended if they want no model loaded now
        from pixelgate.engine.model_launch import start_host

        head_start = start_host()
    with no_collection_while_importing():
        try:
            settings = _settings(host, port, config_file, data_dir)
            local_models = _local_models(settings, head_start)
        except BaseException:
            if head_start is not None:
                head_start.cancel()
            raise
        from pixelgate.api import server
        from pixelgate.api.app import create_app
        from pixelgate.logs import configure_logging

        configure_logging(settings.log_level)
        app = create_app(settings, local_models=local_models)
    click.echo(f"pixelgate: serving on http://{settings.host}:{settings.port}", err=True)
    server.serve(app, settings)


def _settings(
    host: str | None, port: int | None, config_file: Path | None, data_dir: Path | None
) -> Settings:
    from pixelgate.paths import default_models_dir, legacy_models_dir
    from pixelgate.settings import load_settings

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = load_settings(config_file, **overrides)
    legacy = None if settings.models_dir else legacy_models_dir(settings.data_dir)
    if legacy is not None:
        click.echo(
            f"pixelgate: reading models from {legacy} (their place before the shared cache); "
            f"move its contents into {default_models_dir()} to share them with every data "
            "directory",
            err=True,
        )
    return settings


def _local_models(settings: Settings, head_start: HeadStart | None) -> ModelProcess | None:
    """The local engine of an embedded server (None in a cluster), its model worker process
    started when models are to be preloaded: `head_start` when there is one (it is ended
    otherwise)."""
    local_models = None
    if not settings.clustered:
        from pixelgate.engine.model_process import ModelProcess

        local_models = ModelProcess.from_settings(settings)
        without_local = missing_extra("a local model", "local")
        if without_local is not None:
            click.echo(f"pixelgate: {without_local}", err=True)
        elif settings.preload_models:
            local_models.launch(head_start)
            return local_models
    if head_start is not None:
        head_start.cancel()
    return local_models
