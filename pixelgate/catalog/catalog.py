"""The model catalog: the built-in `models.toml`, extended by an operator's file."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic

from pixelgate.catalog.options import (
    OPTION_FAMILIES,
    VARIATION_OPTIONS,
    EditKind,
    ImageOptions,
)
from pixelgate.catalog.spec import ModelSpec
from pixelgate.errors import ValidationError
from pixelgate.validation import validation_error


class Catalog:
    def __init__(self, specs: list[ModelSpec]) -> None:
        self._by_id: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.family not in OPTION_FAMILIES:
                raise ValueError(f"model {spec.id!r}: unknown option family {spec.family!r}")
            self._by_id[spec.id] = spec
        self._by_name: dict[str, ModelSpec] = {}
        for spec in self._by_id.values():
            for name in (spec.id, *spec.aliases):
                self._by_name[name] = spec
        for spec in self._by_id.values():
            unknown = [name for name in spec.fallbacks if name not in self._by_name]
            if unknown:
                raise ValueError(f"model {spec.id!r}: unknown fallbacks {unknown}")

    @classmethod
    def load(
        cls, operator_file: Path | None = None, *, configured: Sequence[ModelSpec] = ()
    ) -> Catalog:
        """The built-in models, then `configured` ones (a backend's, made from its settings),
        then the operator's file: a later entry with an existing id replaces it."""
        builtin = resources.files("pixelgate.catalog").joinpath("models.toml").read_text()
        specs = _parse(tomllib.loads(builtin)) + list(configured)
        if operator_file is not None:
            specs += _parse(tomllib.loads(operator_file.read_text()))
        return cls(specs)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._by_id.values())

    def resolve(self, name: str) -> ModelSpec:
        """The model for an id or alias; an unknown name is a validation error on `model`."""
        spec = self._by_name.get(name)
        if spec is None:
            raise ValidationError(
                f"Unsupported image model name: {name!r}. See GET /v1/models for the models "
                "you may use.",
                param="model",
            )
        return spec

    def validate_options(
        self,
        spec: ModelSpec,
        raw: Mapping[str, Any],
        *,
        task: str | None = None,
        edit: EditKind | None = None,
    ) -> ImageOptions:
        """Check a request's options against the model's family and limits (a variation's
        against the family's variation options, which take no prompt). `edit` says which kind
        of edit a new request is, for the rules that depend on it (steps times strength)."""
        family = OPTION_FAMILIES[spec.family]
        if task == "variation":
            family = VARIATION_OPTIONS.get(spec.family, family)
        try:
            return family.model_validate(dict(raw), context={"spec": spec, "edit": edit})
        except pydantic.ValidationError as exc:
            raise _first_error(exc, spec, family) from None


def _parse(document: dict[str, Any]) -> list[ModelSpec]:
    return [ModelSpec.model_validate(entry) for entry in document.get("models", [])]


def _first_error(
    exc: pydantic.ValidationError, spec: ModelSpec, family: type[ImageOptions]
) -> ValidationError:
    return validation_error(
        exc.errors(include_url=False),
        noun="option",
        subject=f"model {spec.id!r}",
        allowed=family.model_fields,
    )
