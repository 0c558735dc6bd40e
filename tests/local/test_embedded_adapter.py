"""The embedded adapter over an in-test implementation of ``EmbeddedEngineProtocol``, through the real HTTP stack,
and the structured-output retry loop for engines that cannot enforce a schema."""

from __future__ import annotations

import openai
import orjson

from config.local_section import EngineSpec, LocalConfig
from local.engines.embedded import EmbeddedAdapter
from tests.local.fakes import ScriptedEmbedded
from tests.local.gateway import KEY, RunningGateway

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
RF = {"type": "json_schema", "json_schema": {"name": "num", "schema": SCHEMA}}


def run(engine: ScriptedEmbedded, retries: int = 2) -> RunningGateway:
    spec = EngineSpec(name="embedded", kind="embedded", models=["tiny"])
    cfg = LocalConfig(embedded=spec, structured_retries=retries, rate_limit={"per_key_per_s": 1000, "burst": 1000})
    return RunningGateway(cfg, engines=[EmbeddedAdapter(spec, engine)])


def sdk(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=20)


def test_chat_completion_and_stream() -> None:
    engine = ScriptedEmbedded(lambda r: f"echo {r.messages[-1]['content'] if r.messages else r.prompt}")
    with run(engine) as gw:
        c = sdk(gw)
        out = c.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "a b"}], max_tokens=5, temperature=0
        )
        assert out.choices[0].message.content == "echo a b" and out.usage and out.usage.completion_tokens == 3
        req = engine.requests[-1]
        assert (req.max_tokens, req.temperature, req.messages) == (5, 0, [{"role": "user", "content": "a b"}])
        text = "".join(ch.choices[0].text for ch in c.completions.create(model="tiny", prompt="p q", stream=True))
        assert text == "echo p q" and engine.requests[-1].prompt == "p q"
        assert gw.get("/ready").json()["engines"] == {"embedded": True}


def test_invalid_json_is_retried_with_feedback() -> None:
    engine = ScriptedEmbedded(['{"n": "seven"}', "not json", '{"n": 7}'])
    with run(engine) as gw:
        out = sdk(gw).chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "n?"}], response_format=RF
        )  # type: ignore[arg-type]
        assert orjson.loads(out.choices[0].message.content or "") == {"n": 7}
        assert len(engine.requests) == 3
        feedback = engine.requests[1].messages or []
        assert feedback[-2] == {"role": "assistant", "content": '{"n": "seven"}'}
        assert "does not match the required JSON schema" in feedback[-1]["content"]


def test_streaming_with_schema_is_validated_before_sending() -> None:
    engine = ScriptedEmbedded(["oops", '{"n": 1}'])
    with run(engine) as gw:
        stream = sdk(gw).chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "n?"}],
            response_format=RF,
            stream=True,  # type: ignore[arg-type]
        )
        assert orjson.loads("".join(c.choices[0].delta.content or "" for c in stream if c.choices)) == {"n": 1}


def test_gives_up_with_clear_error() -> None:
    engine = ScriptedEmbedded(["never json"])
    with run(engine, retries=1) as gw:
        r = gw.post(
            "/v1/chat/completions",
            {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "response_format": RF},
        )
        assert r.status_code == 502
        err = r.json()["error"]
        assert err["code"] == "invalid_structured_output" and "after 2 attempt(s)" in err["message"]
        assert "'embedded'" in err["message"] and len(engine.requests) == 2
