"""The OpenAI wire format, once for the whole project: request validation rules (:mod:`wire.validate`), response,
chunk and usage builders (:mod:`wire.build`), server-sent-events framing and parsing (:mod:`wire.sse`) and the error
body with its types and statuses (:mod:`wire.errors`).

Standard library only, so the router Lambda and the SageMaker handler can vendor it as is; the gateway (``local/``)
imports it too. Nothing here does I/O.
"""
