"""Structured output: check the asked-for JSON schema, validate answers against it, and word the retry prompt."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jsonschema
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from local.errors import bad_request

MAX_SCHEMA_CACHE = 256


@lru_cache(maxsize=MAX_SCHEMA_CACHE)
def _validator(schema_json: bytes) -> Draft202012Validator:
    return Draft202012Validator(orjson.loads(schema_json))


def compile_schema(schema: dict[str, Any]) -> bytes:
    """Check a request's schema is itself valid; return its cache key.

    Raises:
        GatewayError: 400 naming ``response_format.json_schema.schema``.
    """
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        raise bad_request(
            f"response_format.json_schema.schema is not a valid JSON Schema: {err.message}",
            "response_format.json_schema.schema",
        ) from None
    return orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)


def validation_error(text: str, schema: dict[str, Any]) -> str | None:
    """None when ``text`` is JSON matching ``schema``, else what is wrong (for the retry prompt and the error)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        return f"not valid JSON ({err})"
    errors = sorted(_validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).iter_errors(value), key=str)
    if not errors:
        return None
    e: jsonschema.ValidationError = errors[0]
    where = "/".join(str(p) for p in e.absolute_path) or "<root>"
    return f"at {where}: {e.message}"


def retry_messages(answer: str, problem: str) -> list[dict[str, str]]:
    """What the engine is told after an answer fails the schema."""
    return [
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": f"That answer does not match the required JSON schema ({problem}). "
            "Reply again with only a JSON value that matches the schema.",
        },
    ]
