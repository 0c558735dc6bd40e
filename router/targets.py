"""The two targets: the on-prem OpenAI-compatible gateway and the SageMaker endpoint, each behind a breaker.

boto3 is imported lazily (first cloud call or first secret read) so the decision path's cold start stays small.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from router.errors import TargetUnavailable, UpstreamClientError

SECRET_TTL_S = 300.0  # re-read the gateway key every 5 minutes so a rotation takes effect without a redeploy
CONNECT_TIMEOUT_S = 2.0
PROMPT_ROLES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool", "developer": "System"}


class Target(Protocol):
    """Something that answers an OpenAI chat-completions request body with a ``chat.completion`` body."""

    name: str

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer the request. Raises TargetUnavailable (fail over) or UpstreamClientError (client's fault)."""
        ...


class CircuitBreaker:
    """Skip a target after ``failures`` consecutive failures, for ``reset_s``; then let one trial request through.

    Args:
        failures: consecutive failures that open the breaker.
        reset_s: how long it stays open.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open``."""
        if self._opened_at is None:
            return "closed"
        return "open" if self._clock() - self._opened_at < self.reset_s else "half_open"

    def allow(self) -> bool:
        """True when a request may be sent (closed, or half-open for one trial)."""
        with self._lock:
            state = self.state
            if state == "half_open":
                self._opened_at = self._clock()  # the trial holds the breaker open for everyone else
                return True
            return state == "closed"

    def record_success(self) -> None:
        """Close the breaker."""
        with self._lock:
            self._count = 0
            self._opened_at = None

    def record_failure(self) -> None:
        """Count a failure; open the breaker when the count reaches the limit."""
        with self._lock:
            self._count += 1
            if self._count >= self.failures:
                self._opened_at = self._clock()


class SecretCache:
    """The gateway API key from Secrets Manager, cached for :data:`SECRET_TTL_S`.

    The secret is either the key itself or JSON with an ``api_key`` field.
    """

    def __init__(self, secret_arn: str, client_factory: Callable[[], Any] | None = None) -> None:
        self.secret_arn = secret_arn
        self._client_factory = client_factory or _boto_client("secretsmanager", 2.0, 5.0)
        self._client: Any = None
        self._value: str | None = None
        self._read_at = 0.0

    def get(self, *, refresh: bool = False) -> str:
        """The key (empty when no secret is configured).

        Raises:
            TargetUnavailable: Secrets Manager cannot be read (the local target cannot be called without its key).
        """
        if not self.secret_arn:
            return ""
        if refresh or self._value is None or time.monotonic() - self._read_at > SECRET_TTL_S:
            try:
                if self._client is None:
                    self._client = self._client_factory()
                raw = self._client.get_secret_value(SecretId=self.secret_arn)["SecretString"]
            except Exception as exc:  # any boto/network failure means: no key, so the target is unavailable
                raise TargetUnavailable(
                    f"local gateway key unavailable ({type(exc).__name__})", code="secret_unavailable"
                ) from None
            self._value = _key_from_secret(raw)
            self._read_at = time.monotonic()
        return self._value


def _key_from_secret(raw: str) -> str:
    if raw.lstrip().startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return raw
        if isinstance(data, dict) and isinstance(data.get("api_key"), str):
            return str(data["api_key"])
    return raw


class LocalTarget:
    """The on-prem gateway: ``POST {url}/v1/chat/completions`` with ``Authorization: Bearer <key>``.

    Args:
        url: base URL without ``/v1``.
        secrets: where the key comes from.
        timeout_s: total socket timeout for the call.
    """

    name = "local"

    def __init__(self, url: str, secrets: SecretCache, timeout_s: float) -> None:
        self.url = url.rstrip("/") + "/v1/chat/completions"
        self.secrets = secrets
        self.timeout_s = timeout_s

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Forward the request (forced non-streaming) and return the gateway's chat.completion.

        Raises:
            TargetUnavailable: unreachable, timed out, 5xx, 401 after a key refresh, or not a JSON answer.
            UpstreamClientError: the gateway rejected the request (other 4xx), passed through.
        """
        if not self.url.startswith(("http://", "https://")):
            raise TargetUnavailable("local gateway URL is not configured", code="local_not_configured")
        payload = json.dumps(body | {"stream": False}, ensure_ascii=False).encode()
        try:
            return self._post(payload, self.secrets.get())
        except _Unauthorized:
            # The key may have been rotated since we cached it: read it again once.
            try:
                return self._post(payload, self.secrets.get(refresh=True))
            except _Unauthorized:
                raise TargetUnavailable(
                    "local gateway rejected the router's key (401)", code="local_unauthorized"
                ) from None

    def _post(self, payload: bytes, key: str) -> dict[str, Any]:
        # Imported on the first local call: urllib.request pulls in http.client and email (~15 ms of cold start).
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")  # noqa: S310 (URL from config)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                data = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:2000]
            if exc.code == 401:
                raise _Unauthorized from None
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                message, param, code = _openai_error(detail, f"local gateway answered {exc.code}")
                raise UpstreamClientError(exc.code, message, param=param, code=code) from None
            raise TargetUnavailable(f"local gateway answered {exc.code}", code="local_error") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise TargetUnavailable(
                f"local gateway unreachable ({type(exc).__name__})", code="local_unreachable"
            ) from None
        try:
            answer = json.loads(data)
        except json.JSONDecodeError:
            raise TargetUnavailable(
                "local gateway answered something that is not JSON", code="local_bad_answer"
            ) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
            raise TargetUnavailable("local gateway answer has no choices", code="local_bad_answer")
        return answer


class _Unauthorized(Exception):
    pass


def _openai_error(raw: bytes, default: str) -> tuple[str, str | None, str | None]:
    try:
        err = json.loads(raw)["error"]
        return str(err.get("message") or default), err.get("param"), err.get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        return default, None, None


class CloudTarget:
    """The SageMaker real-time endpoint running ``inference/inference.py`` (``{"inputs", "parameters"}`` in,
    ``{"generated_text", ...}`` out), adapted to OpenAI chat completions.

    Args:
        endpoint_name: the SageMaker endpoint.
        timeout_s: read timeout of one invocation.
        default_max_tokens: ``max_new_tokens`` when the request gives no ``max_tokens``.
        client_factory: builds the ``sagemaker-runtime`` client (default: boto3, imported on first use).
    """

    name = "cloud"

    def __init__(
        self,
        endpoint_name: str,
        timeout_s: float,
        default_max_tokens: int,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.default_max_tokens = default_max_tokens
        self._client_factory = client_factory or _boto_client("sagemaker-runtime", CONNECT_TIMEOUT_S, timeout_s)
        self._client: Any = None

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Invoke the endpoint and return an OpenAI chat.completion body.

        Raises:
            TargetUnavailable: not configured, unreachable, throttled, timed out, or a malformed answer.
            UpstreamClientError: the model container rejected the input (4xx from the container).
        """
        if not self.endpoint_name:
            raise TargetUnavailable("SageMaker endpoint is not configured", code="cloud_not_configured")
        request = {"inputs": to_prompt(body["messages"]), "parameters": self._parameters(body)}
        try:
            if self._client is None:
                self._client = self._client_factory()
            resp = self._client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps(request, ensure_ascii=False).encode(),
            )
            raw = resp["Body"].read()
        except Exception as exc:  # botocore errors are only importable with boto3; classify by their response
            status = _model_error_status(exc)
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                raise UpstreamClientError(
                    status, f"model rejected the request ({status})", code="model_error"
                ) from None
            raise TargetUnavailable(
                f"SageMaker endpoint unavailable ({type(exc).__name__})", code="cloud_unavailable"
            ) from None
        return from_generation(raw, body.get("model") or self.endpoint_name)

    def _parameters(self, body: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_new_tokens": body.get("max_tokens") or body.get("max_completion_tokens") or self.default_max_tokens,
        }
        for key in ("temperature", "top_p"):
            if body.get(key) is not None:
                params[key] = body[key]
        stop = body.get("stop")
        if stop:
            params["stop"] = [stop] if isinstance(stop, str) else list(stop)
        return params


def to_prompt(messages: list[dict[str, Any]]) -> str:
    """Render chat messages as one prompt (``Role: text`` blocks, ending with ``Assistant:`` to answer)."""
    blocks = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            content = "\n".join(
                p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        blocks.append(f"{PROMPT_ROLES.get(msg.get('role', 'user'), 'User')}: {content or ''}")
    return "\n\n".join(blocks) + "\n\nAssistant:"


def from_generation(raw: bytes, model: str) -> dict[str, Any]:
    """Turn the container's answer into a chat.completion body.

    Raises:
        TargetUnavailable: the answer is not JSON or has no ``generated_text``.
    """
    from router.protocol import completion_body

    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TargetUnavailable("SageMaker answer is not JSON", code="cloud_bad_answer") from None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Hugging Face style [{"generated_text": ...}]
    if not isinstance(data, dict) or not isinstance(data.get("generated_text"), str):
        raise TargetUnavailable("SageMaker answer has no generated_text", code="cloud_bad_answer")
    details: dict[str, Any] = data["details"] if isinstance(data.get("details"), dict) else {}
    prompt_tokens = data.get("prompt_tokens", details.get("prompt_tokens"))
    completion_tokens = data.get("completion_tokens", data.get("generated_tokens", details.get("generated_tokens")))
    return completion_body(
        data["generated_text"].lstrip(),
        model,
        prompt_tokens if isinstance(prompt_tokens, int) else None,
        completion_tokens if isinstance(completion_tokens, int) else None,
    )


def _model_error_status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    original = response.get("OriginalStatusCode")
    if isinstance(original, int):
        return original
    if (response.get("Error") or {}).get("Code") == "ValidationError":
        return (
            None  # our request to SageMaker was invalid (e.g. no such endpoint): a deployment fault, not the client's
        )
    return None


def _boto_client(service: str, connect_s: float, read_s: float) -> Callable[[], Any]:
    def make() -> Any:
        import boto3  # lazy: ~100 ms of import the decision path does not pay
        from botocore.config import Config

        cfg = Config(connect_timeout=connect_s, read_timeout=read_s, retries={"max_attempts": 1, "mode": "standard"})
        return boto3.client(service, config=cfg)

    return make
