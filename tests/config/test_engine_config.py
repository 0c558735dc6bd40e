"""endpoint.engine, endpoint.lmi, endpoint.runtime: typed, validated, and sized for tensor parallel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError, load_config
from config.loader import parse_config, with_engine
from stacks.container_env import container_environment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def prod() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config" / "prod.yaml").read_text(encoding="utf-8"))


def bad(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "prod.yaml")
    return str(info.value)


def thirteen_b_on_g5_12xlarge(prod: dict[str, Any], **lmi: Any) -> dict[str, Any]:
    prod["model"]["params_billions"] = 13
    prod["endpoint"] |= {"engine": "lmi", "instance_type": "ml.g5.12xlarge"}
    if lmi:
        prod["endpoint"]["lmi"] = lmi
    return prod


# --- tensor parallel sizing ------------------------------------------------------------------------------------


def test_13b_fp16_on_g5_12xlarge_fits_with_tp4(prod: dict[str, Any]) -> None:
    cfg = parse_config(thirteen_b_on_g5_12xlarge(prod, tensor_parallel_degree=4))
    assert cfg.endpoint.tensor_parallel_degree == 4
    assert container_environment(cfg)["OPTION_TENSOR_PARALLEL_DEGREE"] == "4"


def test_tp_defaults_to_the_instance_gpu_count(prod: dict[str, Any]) -> None:
    cfg = parse_config(thirteen_b_on_g5_12xlarge(prod))
    assert cfg.endpoint.tensor_parallel_degree == 4


def test_13b_fp16_on_g5_12xlarge_fails_with_tp1_and_says_why(prod: dict[str, Any]) -> None:
    msg = bad(thirteen_b_on_g5_12xlarge(prod, tensor_parallel_degree=1))
    # vLLM must hold one max_model_len (1536) sequence of KV cache: 24.2 GiB weights + 1.2 GiB KV + 0.6 GiB runtime
    assert msg.startswith("prod.yaml: endpoint.lmi.tensor_parallel_degree: a 13B model at fp16 needs ~26.0 GiB")
    assert "1.2 GiB KV cache for 1536 tokens (a Llama-like shape estimated from the parameter count)" in msg
    assert "ml.g5.12xlarge has 1 of its 4 x 24 GiB GPUs (21.6 GiB usable; tensor parallel degree 1 uses 1 GPU)" in msg
    assert "try lmi.tensor_parallel_degree 4 (or unset: all GPUs)" in msg


def test_13b_on_the_handler_engine_needs_one_gpu_that_holds_it(prod: dict[str, Any]) -> None:
    """The handler loads a whole copy per GPU: 4 x 24 GiB does not help a 29 GiB model (the old check summed GPUs)."""
    prod["model"]["params_billions"] = 13
    prod["endpoint"]["instance_type"] = "ml.g5.12xlarge"
    msg = bad(prod)
    # its core allocates all 32 batch slots (+1 scratch row) x (1024 + 512) tokens of KV cache up front
    assert "endpoint.instance_type: a 13B model at fp16 needs ~63.5 GiB" in msg
    assert "38.7 GiB KV cache for 50688 tokens" in msg
    assert "the handler engine loads one whole copy per GPU" in msg
    assert "try engine lmi (tensor parallel over all 4 GPUs)" in msg


def test_tp_must_divide_the_gpu_count(prod: dict[str, Any]) -> None:
    msg = bad(thirteen_b_on_g5_12xlarge(prod, tensor_parallel_degree=3))
    assert "endpoint.lmi.tensor_parallel_degree: 3 does not divide ml.g5.12xlarge's 4 GPUs; allowed: 1, 2, 4" in msg


def test_lmi_needs_a_gpu_instance(prod: dict[str, Any]) -> None:
    prod["endpoint"] |= {"engine": "lmi", "instance_type": "ml.m5.xlarge"}
    prod["model"]["params_billions"] = 0.1
    assert "endpoint.instance_type: engine 'lmi' (vLLM on GPUs) needs a GPU instance" in bad(prod)


# --- engine rules ------------------------------------------------------------------------------------------------


def test_engine_is_a_closed_choice(prod: dict[str, Any]) -> None:
    prod["endpoint"]["engine"] = "tgi"
    msg = bad(prod)
    assert "endpoint.engine" in msg and "'handler'" in msg and "'lmi'" in msg and "tgi" in msg


def test_handler_refuses_quantization_instead_of_ignoring_it(prod: dict[str, Any]) -> None:
    prod["model"]["quantization"] = "awq"
    assert "model.quantization: the handler engine loads weights at fp32/bf16/fp16 (or bnb-4bit" in bad(prod)


def test_lmi_section_with_the_handler_engine_is_an_error(prod: dict[str, Any]) -> None:
    prod["endpoint"]["lmi"] = {"tensor_parallel_degree": 1}
    assert "endpoint.lmi: only used with engine 'lmi'" in bad(prod)


def test_handler_only_runtime_fields_are_refused_with_lmi(prod: dict[str, Any]) -> None:
    prod["endpoint"] |= {"engine": "lmi", "runtime": {"truncate_input": False}}
    assert "endpoint.runtime.truncate_input: only read by the handler engine" in bad(prod)


def test_retired_batch_window_is_refused_with_the_reason(prod: dict[str, Any]) -> None:
    prod["endpoint"]["runtime"] = {"batch_window_ms": 10}
    assert "endpoint.runtime.batch_window_ms: retired; the handler's generation core batches continuously" in bad(prod)


def test_handler_serves_bnb_4bit_through_load_in_4bit(prod: dict[str, Any]) -> None:
    prod["model"]["quantization"] = "bnb-4bit"
    assert container_environment(parse_config(prod))["LOAD_IN_4BIT"] == "true"


def test_hub_source_needs_network(prod: dict[str, Any]) -> None:
    prod["endpoint"] |= {"engine": "lmi", "lmi": {"model_source": "hub"}}
    assert "network isolation forbids" in bad(prod)
    prod["endpoint"]["vpc"]["network_isolation"] = False
    cfg = parse_config(prod)
    assert container_environment(cfg)["HF_MODEL_ID"] == "openai-community/gpt2-large"


def test_lmi_options_cannot_shadow_typed_fields(prod: dict[str, Any]) -> None:
    prod["endpoint"] |= {"engine": "lmi", "lmi": {"options": {"max_model_len": "4096"}}}
    assert "'max_model_len' is generated from typed fields" in bad(prod)
    prod["endpoint"]["lmi"] = {"options": {"ENABLE_PREFIX_CACHING": "true"}}
    assert "use the vLLM engine argument name in snake_case" in bad(prod)


def test_runtime_fp8_quantization_and_async_mode(prod: dict[str, Any]) -> None:
    prod["model"]["quantization"] = "fp8"
    prod["endpoint"] |= {"engine": "lmi", "lmi": {"mode": "async", "gpu_memory_utilization": 0.85}}
    env = container_environment(parse_config(prod))
    assert env["OPTION_QUANTIZE"] == "fp8"
    assert env["OPTION_GPU_MEMORY_UTILIZATION"] == "0.85"
    assert (env["OPTION_ROLLING_BATCH"], env["OPTION_ASYNC_MODE"]) == ("disable", "true")
    assert env["OPTION_ENTRYPOINT"] == "djl_python.lmi_vllm.vllm_async_service"


def test_prequantized_awq_is_left_to_the_checkpoint(prod: dict[str, Any]) -> None:
    prod["model"] |= {"params_billions": 13, "quantization": "awq"}
    prod["endpoint"]["engine"] = "lmi"
    assert "OPTION_QUANTIZE" not in container_environment(parse_config(prod))


def test_bf16_needs_an_ampere_gpu(prod: dict[str, Any]) -> None:
    prod["model"]["dtype"] = "bf16"
    prod["endpoint"]["instance_type"] = "ml.g4dn.xlarge"
    assert "model.dtype: bf16 needs an Ampere or newer GPU; ml.g4dn.xlarge has T4; use fp16" in bad(prod)


def test_max_model_len_must_leave_room_to_generate(prod: dict[str, Any]) -> None:
    prod["endpoint"] |= {"engine": "lmi", "lmi": {"max_model_len": 1024}}
    assert "endpoint.lmi.max_model_len: 1024 leaves no room to generate" in bad(prod)


def test_engine_override_revalidates() -> None:
    cfg = with_engine(load_config("prod"), "lmi")
    assert cfg.endpoint.engine == "lmi"
    assert cfg.endpoint.concurrency_target == 8  # prod sets it explicitly
    with pytest.raises(ConfigError, match="endpoint.engine"):
        with_engine(load_config("prod"), "bogus")


# --- runtime limits (issue 12 item 4) ----------------------------------------------------------------------------


def test_free_form_environment_is_gone_with_a_pointer(prod: dict[str, Any]) -> None:
    """The old `endpoint.environment: {MAX_INPUT_TOKEN: ...}` typo passed synth and was ignored; now it stops."""
    prod["endpoint"]["environment"] = {"MAX_INPUT_TOKEN": "2048"}
    msg = bad(prod)
    assert "endpoint.environment: removed" in msg
    assert "endpoint.runtime.*" in msg


def test_runtime_typo_is_an_unknown_key(prod: dict[str, Any]) -> None:
    prod["endpoint"]["runtime"] = {"max_input_token": 2048}
    assert "prod.yaml: endpoint.runtime.max_input_token: unknown key" in bad(prod)


def test_runtime_default_cannot_exceed_the_cap(prod: dict[str, Any]) -> None:
    prod["endpoint"]["runtime"] = {"max_new_tokens": 64}
    assert "endpoint.runtime.default_max_new_tokens: 128 > max_new_tokens 64" in bad(prod)


def test_model_dtype_and_runtime_reach_the_handler_environment(prod: dict[str, Any]) -> None:
    prod["endpoint"]["runtime"] = {
        "max_input_tokens": 2048,
        "truncate_input": False,
        "engine_mode": "shared",
        "model_server_workers": 32,
    }
    env = container_environment(parse_config(prod))
    assert (env["ENGINE_MODE"], env["SAGEMAKER_MODEL_SERVER_WORKERS"]) == ("shared", "32")
    assert env["DTYPE"] == "float16"  # prod's model.dtype: fp16
    assert (env["MAX_INPUT_TOKENS"], env["TRUNCATE_INPUT"]) == ("2048", "false")
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
