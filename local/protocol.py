"""Typed views of the OpenAI requests the gateway handles, and the source of its OpenAPI document.

The rules are :mod:`wire.validate`'s (one set for the project): the gateway checks a body there first, then builds
these models from it for typed access. Bounds below are wire's constants; the models are strict, as OpenAI is
(``"stream": "yes"`` or ``"n": true`` are not coerced). Fields the gateway does not act on are kept
(``extra="allow"``) and passed to the engine untouched.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wire import validate as rules


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class JsonSchemaSpec(_Open):
    name: str = Field(default="response", pattern=rules.SCHEMA_NAME_RE.pattern)
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class ChatMessage(_Open):
    role: str = Field(json_schema_extra={"enum": list(rules.ROLES)})
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message text (text parts of a multi-part content joined)."""
        return rules.message_text({"content": self.content})


class StreamOptions(_Open):
    include_usage: bool = False


class _Sampling(_Open):
    model: str = Field(min_length=1, max_length=rules.MODEL_NAME_MAX)
    max_tokens: int | None = Field(default=None, ge=1, le=rules.DEFAULT_LIMITS.max_tokens)
    temperature: float | None = Field(default=None, ge=0, le=rules.TEMPERATURE_MAX)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=rules.DEFAULT_LIMITS.max_n)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(default=None, json_schema_extra={"maxItems": rules.MAX_STOP})
    seed: int | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=rules.DEFAULT_LIMITS.max_tokens)
    response_format: ResponseFormat | None = None

    def token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    def output_schema(self) -> dict[str, Any] | None:
        """The JSON schema asked for: the schema itself, ``{"type": "object"}`` for json_object, else None."""
        rf = self.response_format
        if rf is None or rf.type == "text":
            return None
        if rf.type == "json_object":
            return {"type": "object"}
        assert rf.json_schema is not None  # checked by wire.validate
        return rf.json_schema.schema_


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(min_length=1)

    def token_limit(self, default: int) -> int:
        return self.max_tokens or default

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise ValueError("prompt: the gateway takes one prompt per request")
        return self.prompt[0]


class GenerateRequest(BaseModel):
    """The reference guide's ``POST /generate`` body."""

    model_config = ConfigDict(extra="forbid", strict=True)
    prompt: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=rules.DEFAULT_LIMITS.max_tokens)
    temperature: float | None = Field(default=None, ge=0, le=rules.TEMPERATURE_MAX)
    model: str | None = None


class GenerateResponse(BaseModel):
    text: str


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error the gateway answers (``wire.errors``)."""

    error: ErrorDetail
