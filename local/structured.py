"""Structured output: check the asked-for JSON schema, validate answers against it, and word the retry prompt.

A schema comes from the client, so it is untrusted: nothing it names is ever fetched (``$ref`` may only point inside
the schema, ``#/...``, and the validator's registry retrieves nothing), and its depth and size are capped before any
validator walks it (a 300-deep ``allOf`` would otherwise exhaust the recursion limit and answer 500).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jsonschema
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from local.errors import bad_request

MAX_SCHEMA_CACHE = 256
MAX_SCHEMA_DEPTH = 32  # nesting of objects/arrays in the schema document
MAX_SCHEMA_NODES = 10_000  # objects, arrays and scalars in the schema document
PARAM = "response_format.json_schema.schema"
REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")


def _refuse(uri: str) -> Resource[Any]:
    """The registry's retriever: nothing outside the request's own schema is ever looked up."""
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs field, not seen by mypy


NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]


def _bad(message: str, where: str = "") -> Exception:
    """A 400 whose ``param`` is the schema field and whose message says where inside the schema."""
    return bad_request(f"{PARAM}{where}: {message}", PARAM)


def check_shape(schema: Any) -> None:
    """Depth, size and ``$ref`` targets of an untrusted schema, walked without recursion.

    Raises:
        GatewayError: 400 naming the offending location.
    """
    if not isinstance(schema, dict | bool):
        raise _bad(f"must be a JSON object (a JSON Schema), got {type(schema).__name__}")
    stack: list[tuple[Any, int, str]] = [(schema, 1, "")]
    nodes = 0
    while stack:
        node, depth, where = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            raise _bad(f"has more than {MAX_SCHEMA_NODES} nodes; simplify the schema")
        if depth > MAX_SCHEMA_DEPTH:
            raise _bad(f"is nested more than {MAX_SCHEMA_DEPTH} levels deep", where)
        if isinstance(node, dict):
            for key, value in node.items():
                if key in REF_KEYS and isinstance(value, str) and not value.startswith("#"):
                    raise _bad(
                        f"{key} {value[:100]!r} points outside the schema; only local references ('#/...') are "
                        "allowed, the gateway fetches nothing",
                        f"{where}.{key}",
                    )
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1, f"{where}.{key}"))
                else:
                    nodes += 1
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1, f"{where}[{i}]"))
                else:
                    nodes += 1


@lru_cache(maxsize=MAX_SCHEMA_CACHE)
def _validator(schema_json: bytes) -> Draft202012Validator:
    return Draft202012Validator(orjson.loads(schema_json), registry=NO_RETRIEVAL)


def compile_schema(schema: Any) -> bytes:
    """Check a request's schema is safe and itself valid; return its cache key.

    Slow for big schemas (milliseconds): callers on the event loop run it in a thread.

    Raises:
        GatewayError: 400 naming ``response_format.json_schema.schema`` (and where inside it).
    """
    check_shape(schema)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.path)
        raise _bad(f"is not a valid JSON Schema: {err.message}", where) from None
    except RecursionError:
        raise _bad("is too deeply nested to check") from None
    refs, nested_ids = _refs(schema)
    if refs and not nested_ids:
        # Resolve every local reference now, so a '#/missing' pointer is the client's 400, not a 502 later.
        resolver = NO_RETRIEVAL.resolver_with_root(DRAFT202012.create_resource(schema))
        for ref in refs:
            try:
                resolver.lookup(ref)
            except Unresolvable:
                raise _bad(f"$ref {ref[:100]!r} does not resolve inside the schema") from None
    return orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)


def _refs(schema: Any) -> tuple[list[str], bool]:
    """The schema's reference strings, and whether a subschema sets its own ``$id`` (which moves the base URI)."""
    refs: list[str] = []
    nested_ids = False
    stack = [(schema, True)]
    while stack:
        node, root = stack.pop()
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k in REF_KEYS and isinstance(v, str))
            nested_ids = nested_ids or (not root and "$id" in node)
            stack.extend((v, False) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, False) for v in node if isinstance(v, dict | list))
    return refs, nested_ids


def validation_error(text: str, schema: dict[str, Any]) -> str | None:
    """None when ``text`` is JSON matching ``schema``, else what is wrong (for the retry prompt and the error).

    ``schema`` must have passed :func:`compile_schema`.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        return f"not valid JSON ({err})"
    try:
        errors = sorted(_validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).iter_errors(value), key=str)
    except (Unresolvable, RecursionError) as err:
        return f"the schema could not be applied ({err.__class__.__name__})"
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
