"""The sagemaker-runtime wire format around a container, for the local servers that stand in for an endpoint.

SageMaker's front end calls the container's ``POST /invocations`` and answers the client in its own format; boto3
parses that format, so a local server that speaks it lets ``inference.invoke`` (and the gateway's ``sagemaker``
engine) run their real botocore code paths against it through ``endpoint_url``:

- ``POST /endpoints/<name>/invocations`` (InvokeEndpoint): the container's body as is when it answered 2xx, else a
  ``ModelError`` (HTTP 424) whose ``OriginalStatusCode`` / ``OriginalMessage`` carry the container's status and body;
- ``POST /endpoints/<name>/invocations-response-stream`` (InvokeEndpointWithResponseStream):
  ``application/vnd.amazon.eventstream``, one AWS event-stream message per chunk the container sent (a
  ``PayloadPart`` event carrying the bytes as they came, not re-split at lines), or a ``ModelStreamError`` exception
  message when the container fails after the stream began; a container error before the first byte is a
  ``ModelError`` as for InvokeEndpoint.

Standard library only: ``inference.serve`` (handler engine), ``inference.lmi_local`` (LMI engine) and the tests'
fake runtime share these builders.
"""

from __future__ import annotations

import json
import re
import zlib

ROUTE = re.compile(r"^/endpoints/([A-Za-z0-9-]{1,63})/(invocations|invocations-response-stream)$")
EVENTSTREAM_TYPE = "application/vnd.amazon.eventstream"
# sagemaker-runtime reports the container's Content-Type of a stream in this header (boto3: ContentType).
STREAM_CONTENT_TYPE_HEADER = "X-Amzn-SageMaker-Content-Type"
INVOKED_VARIANT_HEADER = "x-Amzn-Invoked-Production-Variant"
VARIANT = "AllTraffic"


def event_message(payload: bytes, event_type: str = "PayloadPart", message_type: str = "event") -> bytes:
    """One AWS event-stream message as SageMaker's response stream sends it.

    The prelude holds the total and header lengths and their CRC32; the headers are the string headers
    ``:event-type`` (``:exception-type`` for an exception), ``:content-type`` and ``:message-type``; the message
    ends with the CRC32 of everything before it.

    Args:
        payload: the part's bytes (a PayloadPart) or the error's JSON (an exception).
        event_type: ``PayloadPart`` or, for ``message_type="exception"``, ``ModelStreamError`` /
            ``InternalStreamFailure``.
        message_type: ``event`` or ``exception``.
    """
    headers = b""
    for name, value in (
        (":event-type" if message_type == "event" else ":exception-type", event_type),
        (":content-type", "application/octet-stream" if message_type == "event" else "application/json"),
        (":message-type", message_type),
    ):
        n, v = name.encode(), value.encode()
        headers += bytes([len(n)]) + n + bytes([7]) + len(v).to_bytes(2, "big") + v
    prelude = (12 + len(headers) + len(payload) + 4).to_bytes(4, "big") + len(headers).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + headers + payload
    return message + zlib.crc32(message).to_bytes(4, "big")


def stream_error_message(message: str, code: str = "ModelStreamError") -> bytes:
    """The exception message sagemaker-runtime sends when the container fails mid-stream."""
    return event_message(json.dumps({"Message": message, "ErrorCode": code}).encode(), code, "exception")


def model_error(status: int, original: str, endpoint: str) -> tuple[int, bytes, dict[str, str]]:
    """How sagemaker-runtime answers a container's non-2xx: ``ModelError``, HTTP 424, the original inside.

    Returns:
        (HTTP status, body, headers) of the runtime's answer.
    """
    side = "server" if status >= 500 else "client"
    body = {
        "message": f'Received {side} error ({status}) from primary with message "{original}". '
        f"See logs for endpoint {endpoint}.",
        "OriginalStatusCode": status,
        "OriginalMessage": original,
        "LogStreamArn": f"arn:aws:logs:local:000000000000:log-group:/aws/sagemaker/Endpoints/{endpoint}",
    }
    return 424, json.dumps(body).encode(), {"x-amzn-ErrorType": "ModelError:", "Content-Type": "application/json"}
