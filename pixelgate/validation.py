"""The one converter from pydantic's validation errors to pixelgate's `ValidationError`.

Every surface uses it: the request bodies (`api/body.py`), FastAPI's own checks of query and
path parameters (`api/errors.py`) and the option families (`catalog/catalog.py`). The first
error wins; its location becomes `param` (`metadata.key`, `scopes.0`) and the message names
the parameter and what is allowed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from pixelgate.errors import ValidationError

FRAMEWORK_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})
"""Where FastAPI says a value came from; not part of the parameter's name."""

OWN_RULES = ("invalid_", "prompt_", "n_too_large")
"""Error types of pixelgate's own rules, whose messages are already worded for the caller."""


def param_of(location: Sequence[Any]) -> str | None:
    """`("body", "metadata", "k")` → `metadata.k`; None for the body as a whole."""
    parts = [str(part) for part in location if part not in FRAMEWORK_LOCATIONS]
    return ".".join(parts) or None


def validation_error(
    errors: Sequence[Any],
    *,
    noun: str = "field",
    subject: str | None = None,
    allowed: Collection[str] | None = None,
) -> ValidationError:
    """The first of pydantic's `errors` as one `ValidationError`.

    `noun` words a missing value (`Missing required field 'model'`, `... option 'prompt'`);
    `subject` and `allowed` word an unknown one (`Unknown option 'x' for model 'm'; allowed:
    ...`). A rule's own error may name its parameter in its context (`param`) when it is not
    one field's (a rule over two options)."""
    first = errors[0] if errors else {}
    context = first.get("ctx") or {}
    param = param_of(first.get("loc", ())) or context.get("param")
    kind = str(first.get("type", ""))
    if kind == "json_invalid":
        return ValidationError("The request body is not valid JSON", param=None)
    if kind == "missing":
        message = f"Missing required {noun} {param!r}"
    elif kind == "extra_forbidden":
        message = f"Unknown {noun} {param!r}"
        if subject is not None:
            message += f" for {subject}"
        if allowed is not None:
            message += f"; allowed: {', '.join(sorted(allowed))}"
    elif kind == "literal_error":
        message = f"Invalid {param}: {first.get('input')!r}; allowed: {context.get('expected', '')}"
    elif kind.startswith(OWN_RULES):
        message = str(first.get("msg"))
    elif param is None:
        message = f"Invalid request body: {first.get('msg')}"
    else:
        message = f"Invalid {param}: {first.get('msg')}"
    return ValidationError(message, param=param)
