"""The two targets: the on-prem OpenAI-compatible gateway and the SageMaker endpoint.

Breakers (``wire.breaker``), the gateway key (``router.secrets``), its TLS trust (``router.tls``) and answer checking
(``router.translate``) live in their own modules; boto3 is imported lazily (``router.aws``) so the decision path's cold start stays small.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from router import aws
from router.errors import TargetUnavailable, UpstreamClientError
from router.secrets import SecretCache
from router.tls import GatewayTLS, tls_failure
from router.translate import from_endpoint, openai_error

CONNECT_TIMEOUT_S = 2.0


class Target(Protocol):
    """Something that answers an OpenAI chat-completions request body with a ``chat.completion`` body."""

    name: str

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer the request. Raises TargetUnavailable (fail over) or UpstreamClientError (client's fault)."""
        ...


class LocalTarget:
    """The on-prem gateway: ``POST {url}/v1/chat/completions`` with ``Authorization: Bearer <key>``.

    Args:
        url: base URL without ``/v1``.
        secrets: where the key comes from.
        timeout_s: total socket timeout for the call.
        tls: the pinned CA / client certificate (default: none, the system trust store).
    """

    name = "local"

    def __init__(self, url: str, secrets: SecretCache, timeout_s: float, tls: GatewayTLS | None = None) -> None:
        self.url = url.rstrip("/") + "/v1/chat/completions"
        self.secrets = secrets
        self.timeout_s = timeout_s
        self.tls = tls or GatewayTLS.from_arns("", "")

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Forward the request (forced non-streaming) and return the gateway's chat.completion.

        Raises:
            TargetUnavailable: unreachable, timed out, 5xx, 401 after a key refresh, not a JSON answer, a TLS
                secret that cannot be read or parsed, or a gateway certificate the pinned CA does not sign.
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
        context = self.tls.context()  # TLS secrets that cannot be read or parsed: their own TargetUnavailable
        req = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")  # noqa: S310 (URL from config)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s, context=context) as resp:  # noqa: S310
                data = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:2000]
            if exc.code == 401:
                raise _Unauthorized from None
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                message, param, code = openai_error(detail, f"local gateway answered {exc.code}")
                raise UpstreamClientError(exc.code, message, param=param, code=code) from None
            raise TargetUnavailable(f"local gateway answered {exc.code}", code="local_error") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            tls = tls_failure(exc)
            if tls is not None:
                raise TargetUnavailable(tls[0], code=tls[1]) from None
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


class CloudTarget:
    """The SageMaker real-time endpoint running ``inference/``: an OpenAI chat body (``messages``) in, a
    ``chat.completion`` out. The endpoint applies the model's chat template, exactly like the local route.

    It receives only what :meth:`router.protocol.ChatRequest.cloud_body` built from scanned fields.

    Args:
        endpoint_name: the SageMaker endpoint.
        timeout_s: read timeout of one invocation.
        default_max_tokens: ``max_tokens`` when the request gives none.
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
        self._client_factory = client_factory or aws.client_factory("sagemaker-runtime", CONNECT_TIMEOUT_S, timeout_s)
        self._client: Any = None

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Invoke the endpoint and return an OpenAI chat.completion body.

        Raises:
            TargetUnavailable: not configured, unreachable, throttled, timed out, or a malformed answer.
            UpstreamClientError: the model container rejected the input (4xx from the container).
        """
        if not self.endpoint_name:
            raise TargetUnavailable("SageMaker endpoint is not configured", code="cloud_not_configured")
        request = body | {"stream": False}
        if request.get("max_tokens") is None and request.get("max_completion_tokens") is None:
            request["max_tokens"] = self.default_max_tokens
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
            status = aws.model_error_status(exc)
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                raise UpstreamClientError(
                    status, f"model rejected the request ({status})", code="model_error"
                ) from None
            raise TargetUnavailable(
                f"SageMaker endpoint unavailable ({type(exc).__name__})", code="cloud_unavailable"
            ) from None
        return from_endpoint(raw, self.endpoint_name)
