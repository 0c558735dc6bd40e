"""Complexity scoring, policy rules, settings validation, redaction, breaker, evaluate/calibrate CLIs, config section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.router_section import RouterConfig
from router import calibrate, complexity, evaluate, policy
from router.detect import Detector
from router.errors import SettingsError, TargetUnavailable
from router.redact import redact, restore
from router.settings import Settings
from router.translate import from_endpoint
from wire.breaker import BreakerState, CircuitBreaker

DEV = Path(__file__).parents[1] / "data" / "router_dev.jsonl"
MODEL = complexity.Model.load()


def score(text: str) -> float:
    return complexity.score(complexity.features([text]), MODEL)


def test_length_alone_does_not_make_complex() -> None:
    friendly = (
        "Hello, I have been with your bank for years and love the friendly staff and the new app. " * 12
    ) + "What time do you close on Friday?"
    assert score(friendly) < 0.5
    assert score("Derive the payment formula and prove it for r = 0.") >= 0.5
    assert score("请推导等额本息公式并证明。") >= 0.5
    assert score("信用卡怎么挂失？") < 0.5


def test_policy_precedence() -> None:
    d = policy.decide(
        sensitive_types=["card"], unscannable=False, score=0.9, policy="local_only", threshold=0.5, hint="cloud"
    )
    assert (d.target, d.fallback, d.reason) == ("local", None, "sensitive_local_only") and not d.cloud_allowed()
    d = policy.decide(sensitive_types=["card"], unscannable=False, score=0.9, policy="redact_to_cloud", threshold=0.5)
    assert (d.target, d.fallback, d.redact_for_cloud) == ("cloud", "local", True)
    d = policy.decide(sensitive_types=[], unscannable=True, score=0.9, policy="redact_to_cloud", threshold=0.5)
    assert (d.target, d.fallback) == ("local", None)
    d = policy.decide(
        sensitive_types=[], unscannable=False, score=0.1, policy="local_only", threshold=0.5, hint="cloud"
    )
    assert (d.target, d.reason) == ("cloud", "route_hint")
    d = policy.decide(
        sensitive_types=[],
        unscannable=False,
        score=0.1,
        policy="local_only",
        threshold=0.5,
        force_target="cloud",
        hint="local",
    )
    assert (d.target, d.reason) == ("cloud", "caller_override")


def test_redaction_round_trip() -> None:
    texts = ["card 4111 1111 1111 1111 and 4111 1111 1111 1111 again, mail a@b.com", "我叫张伟"]
    d = Detector()
    red, mapping = redact(texts, [d.scan(t) for t in texts])
    assert red[0] == "card [CARD_1] and [CARD_1] again, mail [EMAIL_1]" and red[1] == "我叫[NAME_1]"
    assert all(d.scan(t) == [] for t in red)
    assert restore("to [EMAIL_1] for [NAME_1], [UNKNOWN_9]", mapping) == "to a@b.com for 张伟, [UNKNOWN_9]"


def test_breaker_opens_and_half_opens() -> None:
    now = [0.0]
    b = CircuitBreaker(2, 10, clock=lambda: now[0])
    b.failure()
    assert b.allow()
    b.failure()
    assert b.state is BreakerState.OPEN and not b.allow()
    now[0] = 11
    assert b.allow() and not b.allow()  # one trial only
    b.success()
    assert b.state is BreakerState.CLOSED


def test_settings_errors_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="ROUTER_POLICY"):
        Settings.from_env({"ROUTER_POLICY": "cloud_always"})
    with pytest.raises(SettingsError, match="ROUTER_COMPLEXITY_THRESHOLD"):
        Settings.from_env({"ROUTER_COMPLEXITY_THRESHOLD": "2"})
    with pytest.raises(SettingsError, match=r"ROUTER_CUSTOM_PATTERNS\[0\].regex"):
        Settings.from_env({"ROUTER_CUSTOM_PATTERNS": '[{"name": "x", "regex": "("}]'})
    with pytest.raises(SettingsError, match="force_target"):
        Settings.from_env({"ROUTER_CALLER_OVERRIDES": '{"me": {"force_target": "mars"}}'})


@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls"])
def test_cloud_answer_keeps_finish_reason_and_usage(reason: str) -> None:
    raw = json.dumps(
        {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": reason}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
        }
    ).encode()
    body = from_endpoint(raw, "m")
    assert body["choices"][0]["finish_reason"] == reason and body["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 5,
        "total_tokens": 12,
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'[{"generated_text": " ok"}]',  # the old text-in/text-out shape: no finish_reason to pass on
        b'{"choices": [{"message": {"content": "ok"}, "finish_reason": "done"}]}',
        b'{"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": "7"}}',
    ],
)
def test_cloud_answer_malformed_is_unavailable(raw: bytes) -> None:
    with pytest.raises(TargetUnavailable):
        from_endpoint(raw, "m")


def test_config_section_defaults_and_errors() -> None:
    cfg = RouterConfig()
    assert cfg.policy == "local_only" and cfg.authorizer.type == "iam" and cfg.lambda_timeout_s <= 29
    with pytest.raises(ValueError, match="issuer"):
        RouterConfig.model_validate({"authorizer": {"type": "jwt"}})
    with pytest.raises(ValueError, match="local_timeout_s"):
        RouterConfig.model_validate({"local_timeout_s": 20, "cloud_timeout_s": 20})
    with pytest.raises(ValueError, match="empty string"):
        RouterConfig.model_validate({"custom_patterns": [{"name": "x", "regex": ".*"}]})


def test_evaluate_on_dev_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert sum(1 for _ in DEV.open()) >= 150
    assert evaluate.main([str(DEV)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] >= 150 and result["pii_recall"] == 1.0 and result["target_accuracy"] >= 0.9
    assert set(result) >= {"n", "pii_recall", "pii_precision", "target_accuracy", "cloud_share"}


def test_evaluate_on_holdout_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate.main([str(DEV.with_name("router_holdout.jsonl"))]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 40 and result["pii_recall"] == 1.0 and result["target_accuracy"] >= 0.9


def test_evaluate_rejects_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "sensitive": true, "complexity": "hard", "expected_target": "local"}\n')
    assert evaluate.main([str(bad)]) == 2
    assert "bad.jsonl:1: complexity" in capsys.readouterr().err


def test_calibrate_hits_target_share(capsys: pytest.CaptureFixture[str]) -> None:
    assert calibrate.main([str(DEV), "--target-cloud-share", "0.1"]) == 0
    out = capsys.readouterr().out
    share = float(out.split("cloud_share ")[1].split()[0])
    assert abs(share - 0.1) < 0.03
    assert out.strip().splitlines()[-1].startswith("  complexity_threshold: ")


def test_fit_separates_labels() -> None:
    cases = list(evaluate.read_cases(DEV))
    model = calibrate.fit(cases[::2], MODEL)  # fit on half, check on the other half
    held = cases[1::2]
    right = sum(
        1
        for c in held
        if (complexity.score(complexity.features([c.text]), model) >= 0.5) == (c.complexity == "complex")
    )
    assert right / len(held) >= 0.85
