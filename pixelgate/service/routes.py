"""Fallbacks: the models a request may run on when its own model cannot serve it.

A request names `fallbacks` (at most `MAX_FALLBACKS` models), or its model's catalog entry
names a default route (`fallbacks` in the catalog), used when the request names none. At
acceptance (`plan_route`) each fallback is checked like the model itself: known, able to do the
task, allowed to the tenant (a request's own fallback that is not is refused, naming
`fallbacks.N`; a catalog default the tenant may not use or that cannot do the task is left
out). The request's options are validated for each one: a model that does not take them is
passed over and recorded as a `skipped` try. When the model asked for cannot run here, the first
fallback that can serves the job from the start (the model is recorded as an `unavailable` try).

At run time (`JobExecutor`) the job moves to the next model when its model turns out to be
unavailable, or its provider fails having billed nothing (`UpstreamState.billed_nothing`); never
after the provider may have billed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pixelgate.catalog import TASK_NAMES, ImageOptions, ModelSpec, TaskKind
from pixelgate.db.job_records import Adjustment, JobRoute, RouteCandidate, RouteTry
from pixelgate.errors import Error, ModelAccessDenied, ModelUnavailable, ValidationError

MAX_FALLBACKS = 3
"""The most fallbacks a request may name."""

FALLBACK_CODES = frozenset({"MODEL_UNAVAILABLE", "BACKEND_ERROR", "RATE_LIMITED"})
"""The failures of a model that let the next one serve the job, when its provider billed
nothing: it cannot run here, it was rate-limited upstream, or its provider failed."""


@dataclass(frozen=True)
class Fitted:
    """A model with the request's options fitted to it: as sent (mapped to the model), what the
    mapping changed, and validated."""

    spec: ModelSpec
    raw_options: dict[str, Any]
    changes: tuple[Adjustment, ...]
    options: ImageOptions
    own_key: bool = False
    """It runs with the tenant's own key for the model's provider (`ProviderKeys.plan`)."""


@dataclass(frozen=True)
class RoutePlan:
    """The model that serves a request first (`chosen`), the fallbacks left in order, and the
    tries made at acceptance; `routed` is False for a request with no fallback at all."""

    requested: str
    chosen: Fitted
    candidates: tuple[Fitted, ...] = ()
    tries: tuple[RouteTry, ...] = ()
    routed: bool = False

    def with_seed(self, seed: int | None) -> RoutePlan:
        """Every fallback that takes a seed gets `seed` (the one the job was given), so that
        whichever model serves, the job is as reproducible as the first would make it."""
        if seed is None:
            return self
        candidates = tuple(
            replace(c, options=c.options.with_seed(seed))
            if "seed" in type(c.options).model_fields and c.options.seed_value is None
            else c
            for c in self.candidates
        )
        return RoutePlan(self.requested, self.chosen, candidates, self.tries, self.routed)

    def route(self, price: Callable[[Fitted], int]) -> JobRoute | None:
        """The route kept with the job (`jobs.route`), each model with its price per image."""
        if not self.routed:
            return None
        return JobRoute(
            requested=self.requested,
            price=price(self.chosen),
            candidates=tuple(
                RouteCandidate(c.spec.id, c.options.model_dump(mode="json"), price(c), c.own_key)
                for c in self.candidates
            ),
            tries=self.tries,
        )

    def reservation(self, price: Callable[[Fitted], int]) -> int:
        """What the job holds of the budget: the dearest model's price times its images."""
        return max(price(fitted) * fitted.options.n for fitted in (self.chosen, *self.candidates))


def fallback_specs(
    names: Sequence[str] | None,
    *,
    requested: ModelSpec,
    resolve: Callable[[str], ModelSpec],
    may_use: Callable[[ModelSpec], bool],
    task: TaskKind,
    masked: bool,
) -> tuple[tuple[ModelSpec, ...], bool]:
    """The fallbacks of a request for `requested` (`names` as the request sent them, or None:
    the catalog's default route), checked; and whether the request named them."""
    if names is None:
        default = (resolve(name) for name in requested.fallbacks)
        able = [spec for spec in default if spec.supports(task, masked=masked) and may_use(spec)]
        return tuple(spec for spec in _unique(able) if spec.id != requested.id), False
    if len(names) > MAX_FALLBACKS:
        raise ValidationError(
            f"Invalid fallbacks: {len(names)} models; name at most {MAX_FALLBACKS}",
            param="fallbacks",
        )
    specs: list[ModelSpec] = []
    for index, name in enumerate(names):
        param = f"fallbacks.{index}"
        try:
            spec = resolve(name)
        except ValidationError:
            raise ValidationError(
                f"Invalid {param}: unknown model {name!r}; name models of GET /v1/models",
                param=param,
            ) from None
        if spec.id == requested.id or spec in specs:
            raise ValidationError(
                f"Invalid {param}: {spec.id!r} is named already; name each model once",
                param=param,
            )
        if not spec.supports(task, masked=masked):
            raise ValidationError(
                f"Invalid {param}: {spec.id!r} does not support {TASK_NAMES[task]}; a fallback "
                f"must do what {requested.id!r} is asked to",
                param=param,
            )
        if not may_use(spec):
            raise ModelAccessDenied(
                f"Model {spec.id!r} ({param}) is not allowed for this API key's tenant",
                param=param,
            )
        specs.append(spec)
    return tuple(specs), True


def plan_route(
    first: Fitted,
    fallbacks: Sequence[ModelSpec],
    *,
    routed: bool,
    fit: Callable[[ModelSpec], Fitted],
    check_available: Callable[[Fitted], object],
) -> RoutePlan:
    """The model that serves the request first and the fallbacks after it. A fallback that does
    not take the request's options is passed over (a `skipped` try). When `first` cannot run
    here, the first fallback that can serves instead (`first` is an `unavailable` try); with
    none, `first`'s `ModelUnavailable` is raised."""
    requested = first.spec.id
    routed = routed or bool(fallbacks)
    tries: list[RouteTry] = []
    candidates: list[Fitted] = []
    for spec in fallbacks:
        try:
            candidates.append(fit(spec))
        except ValidationError as exc:
            tries.append(RouteTry(spec.id, "skipped", exc.code, exc.message))
    try:
        check_available(first)
    except ModelUnavailable as exc:
        if not candidates:
            raise
        tries.insert(0, try_of(first.spec.id, exc))
        while candidates:
            chosen = candidates.pop(0)
            try:
                check_available(chosen)
            except ModelUnavailable as later:
                tries.append(try_of(chosen.spec.id, later))
                continue
            return RoutePlan(requested, chosen, tuple(candidates), tuple(tries), routed)
        raise
    return RoutePlan(requested, first, tuple(candidates), tuple(tries), routed)


def try_of(model: str, error: Error) -> RouteTry:
    """A try that ended in `error`: `unavailable` for a model that cannot run here, else
    `failed`."""
    outcome = "unavailable" if isinstance(error, ModelUnavailable) else "failed"
    return RouteTry(model, outcome, error.code, error.message)


def served(model: str) -> RouteTry:
    """The try that served the job."""
    return RouteTry(model, "succeeded")


def _unique(specs: Sequence[ModelSpec]) -> list[ModelSpec]:
    seen: list[ModelSpec] = []
    for spec in specs:
        if spec not in seen:
            seen.append(spec)
    return seen
