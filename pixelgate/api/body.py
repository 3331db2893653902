"""The one reader of request bodies, for every route and surface.

A body comes as JSON or as a form (multipart/form-data with files, or url-encoded); either way
it becomes one document, checked for what JSON allows but no text or number pixelgate keeps can
be (a lone surrogate such as `"\\ud800"`, an integer of thousands of digits), then validated
by the route's pydantic model. A failure is a `ValidationError` naming the parameter, made by
the one converter (`pixelgate.validation`); nothing here answers HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pydantic
from fastapi import Request
from starlette.datastructures import UploadFile

from pixelgate.errors import ValidationError
from pixelgate.validation import validation_error

M = TypeVar("M", bound=pydantic.BaseModel)

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MAX_DIGITS = 4300
"""Python's own limit on an integer's digits; a longer one is out of every option's range."""


@dataclass(frozen=True)
class BodyRules:
    """What one route accepts."""

    files: Collection[str] = ()
    """Form fields sent as files (`image`, `mask`, ...); any other file is refused."""
    text_fields: Collection[str] = ()
    """Form fields kept as text; the others are read as JSON when they are JSON (`4`, `true`)."""
    lists: Collection[str] = ()
    """Form fields that may be repeated, read as one list (`fallbacks`); each value may also be
    a JSON list."""
    json: bool = True
    """Whether a JSON body is accepted (the OpenAI edits and variations take forms only)."""
    empty: Mapping[str, Any] | None = None
    """The document an empty JSON body stands for; None: an empty body is not JSON."""
    form_only_message: str = "Send this request as multipart/form-data, with the image as a file"


@dataclass
class Body:
    """The fields of a body, and its files by field name (in the order sent)."""

    fields: dict[str, Any]
    files: dict[str, list[bytes]] = field(default_factory=dict)

    def file(self, name: str) -> bytes | None:
        """The one file sent as `name`; a second is refused."""
        sent = self.files.get(name, [])
        if len(sent) > 1:
            raise ValidationError(f"Send one {name}; got {len(sent)}", param=name)
        return sent[0] if sent else None


async def read_body(request: Request, rules: BodyRules) -> Body:
    """The body's fields and files, checked for text and numbers that cannot be kept."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(FORM_TYPES):
        body = await _read_form(request, rules)
    elif not rules.json:
        raise ValidationError(rules.form_only_message)
    else:
        raw = await request.body()
        if not raw.strip() and rules.empty is not None:
            return Body(dict(rules.empty))
        document = parse_json(raw)
        if not isinstance(document, dict):
            raise ValidationError("The request body must be a JSON object")
        body = Body(document)
    check_values(body.fields)
    return body


def validate(model: type[M], fields: Mapping[str, Any]) -> M:
    """`fields` as the route's request model; the first error names its parameter."""
    try:
        return model.model_validate(dict(fields))
    except pydantic.ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None


def parse_json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw, parse_int=_parse_int)
    except (ValueError, RecursionError):
        raise ValidationError("The request body is not valid JSON") from None


class _HugeInteger(str):
    """An integer too long to convert; refused by `check_values` with its parameter's name."""


def _parse_int(text: str) -> int | _HugeInteger:
    return int(text) if len(text.lstrip("-")) <= MAX_DIGITS else _HugeInteger(text)


def check_values(document: Any, path: tuple[str, ...] = ()) -> None:
    """Refuse text that is not valid Unicode (lone surrogates: nothing can store or send it)
    and integers of more than `MAX_DIGITS` digits, naming where they are."""
    param = ".".join(path) or None
    if isinstance(document, _HugeInteger):
        raise ValidationError(
            f"Invalid {param}: a number of {len(document.lstrip('-'))} digits is out of range",
            param=param,
        )
    if isinstance(document, str):
        if not _is_unicode(document):
            raise ValidationError(
                f"Invalid {param}: the text holds a lone surrogate (such as \\ud800); send "
                "valid Unicode",
                param=param,
            )
    elif isinstance(document, dict):
        for key, value in document.items():
            if not _is_unicode(str(key)):
                raise ValidationError(
                    f"Invalid {param or 'body'}: a key holds a lone surrogate; send valid Unicode",
                    param=param,
                )
            check_values(value, (*path, str(key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            check_values(value, (*path, str(index)))


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _read_form(request: Request, rules: BodyRules) -> Body:
    body = Body({})
    async with request.form() as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name not in rules.files:
                    names = sorted(n for n in rules.files if not n.endswith("[]"))
                    sent = " and ".join(names) or "no files"
                    raise ValidationError(f"Unknown file field {name!r}; send {sent}", param=name)
                body.files.setdefault(name, []).append(await value.read())
            elif name in rules.lists:
                value_read = _form_value(value)
                items = body.fields.setdefault(name, [])
                items.extend(value_read if isinstance(value_read, list) else [value])
            elif name in rules.text_fields:
                body.fields[name] = value
            else:
                body.fields[name] = _form_value(value)
    return body


def _form_value(text: str) -> Any:
    try:
        return json.loads(text, parse_int=_parse_int)
    except ValueError:
        return text
