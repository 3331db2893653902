"""`pixelgate pull`: download a local model's weights from the Hugging Face Hub, with a
progress bar, into the models folder the server loads them from."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from pixelgate.cli.common import stderr_console
from pixelgate.errors import ModelUnavailable, ValidationError
from pixelgate.extras import missing_extra

MODEL_INDEX = "model_index.json"
COMPONENT_FILES = ("*.json", "*.txt", "*.model", "*.safetensors")
"""Of a component's folder: configurations, vocabularies, sentencepiece models and weights
(`.bin` / `.ckpt` / `.msgpack` duplicates of safetensors weights are skipped)."""
VARIANT_WEIGHTS = "*.*.safetensors"
"""`x.fp16.safetensors`, `x.non_ema.safetensors`, `x.fp16-00001-of-00002.safetensors`: the
loader reads a component's plain weights (`x.safetensors` or its shards), never these."""


def diffusers_patterns(model_index: Mapping[str, Any]) -> list[str]:
    """What a diffusers folder needs of a Hub repository, as `snapshot_download` patterns:
    `model_index.json` and the folders of the components it names, nothing at the repository's
    root (such repositories often keep a multi-GB single-file checkpoint there too). Variant
    weights are left out by `VARIANT_WEIGHTS`."""
    patterns = [MODEL_INDEX]
    for name, value in model_index.items():
        if name.startswith("_") or not isinstance(value, list) or None in value:
            continue  # an attribute (`_class_name`, `max_noise_level`) or an absent component
        if name.startswith("tokenizer"):
            patterns.append(f"{name}/*")
        else:
            patterns.extend(f"{name}/{files}" for files in COMPONENT_FILES)
    return patterns


class _RichBar:
    """Mirrors huggingface_hub's tqdm bars onto one rich progress display."""

    progress: ClassVar[Progress | None] = None

    @staticmethod
    def bar_class() -> type[Any]:
        from huggingface_hub.utils.tqdm import tqdm as hub_tqdm

        class Bar(hub_tqdm):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["file"] = io.StringIO()  # rich draws; tqdm only counts
                kwargs["disable"] = False
                super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
                self._task: TaskID | None = None
                if _RichBar.progress is not None and kwargs.get("unit") == "B":
                    self._task = _RichBar.progress.add_task(
                        str(kwargs.get("desc") or "weights"), total=self.total or None
                    )

            def update(self, n: float | None = 1) -> bool | None:
                shown: bool | None = super().update(n)
                if self._task is not None and _RichBar.progress is not None:
                    _RichBar.progress.update(self._task, completed=self.n, total=self.total or None)
                return shown

        return Bar


def pull_model(model: str, *, models_dir: Path, catalog_file: Path | None, show: bool) -> Path:
    """Download `model`'s weights into `<models_dir>/<org>--<name>`; returns that folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from pixelgate.catalog import Catalog
    from pixelgate.providers.local_diffusion import (
        BUILTIN_BUILDERS,
        SHIPPED_FOLDERS,
        local_folder_name,
    )

    spec = Catalog.load(catalog_file).resolve(model)
    if spec.provider != "diffusers":
        raise ValidationError(
            f"Model {spec.id!r} runs at {spec.provider}; there are no weights to pull",
            param="model",
        )
    source = spec.source or spec.id
    if source in SHIPPED_FOLDERS:
        return SHIPPED_FOLDERS[source]
    target = models_dir / local_folder_name(source)
    builder = BUILTIN_BUILDERS.get(source)
    if builder is not None:
        if not (target / "model_index.json").exists():
            builder(target)
        return target
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr_console(), disable=not show) as progress:
        _RichBar.progress = progress
        try:
            snapshot_download(source, local_dir=target, allow_patterns=[MODEL_INDEX])
            model_index = json.loads((target / MODEL_INDEX).read_text())
            snapshot_download(
                source,
                local_dir=target,
                allow_patterns=diffusers_patterns(model_index),
                ignore_patterns=[VARIANT_WEIGHTS],
                tqdm_class=_RichBar.bar_class(),
            )
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
            raise ModelUnavailable(
                f"Could not download {spec.id} from the Hugging Face Hub "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                f"Run `pixelgate pull {spec.id}` where the Hub can be reached (gated models "
                "also need HF_TOKEN).",
                param="model",
            ) from exc
        finally:
            _RichBar.progress = None
    return target


@click.command()
@click.argument("model")
@click.option(
    "--models-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where weights go [default: PIXELGATE_MODELS_DIR, else ~/.cache/pixelgate/models].",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def pull(model: str, models_dir: Path | None, quiet: bool) -> None:
    """Download MODEL's weights (a catalog id or alias) for the local engine."""
    problem = missing_extra("pixelgate pull", "local")
    if problem is not None:
        raise click.ClickException(problem)
    from pixelgate.settings import load_settings

    settings = load_settings()
    target = pull_model(
        model,
        models_dir=models_dir or settings.resolved_models_dir,
        catalog_file=settings.catalog_file,
        show=not quiet,
    )
    click.echo(str(target))
