"""The serving container's environment, generated from the typed config (no CDK here: review and tests use it too).

handler: the variables ``inference/inference.py`` reads (``Limits.from_env``) plus the toolkit's SAGEMAKER_* ones.
lmi:     LMI's OPTION_* variables for vLLM (https://docs.djl.ai/docs/serving/serving/docs/lmi/deployment_guide/
         configurations.html); ``endpoint.lmi.options`` adds vLLM engine arguments through LMI's pass-through.
"""

from __future__ import annotations

from config import DeploymentConfig
from config.schema import LMI_RUNTIME_QUANTIZE, TORCH_DTYPES

# Where SageMaker puts the model data inside the container (ModelDataUrl / ModelDataSource).
MODEL_DIR = "/opt/ml/model"
assert TORCH_DTYPES.keys() == {"fp32", "bf16", "fp16"}  # OPTION_DTYPE below passes model.dtype through
# LMI's async vLLM service (AWS's recommended vLLM handler since LMI V16).
LMI_ASYNC_ENTRYPOINT = "djl_python.lmi_vllm.vllm_async_service"


def handler_environment(cfg: DeploymentConfig) -> dict[str, str]:
    """``inference.py``'s variables (names: ``local/embedded/limits.py`` RUNTIME_ENV) and the toolkit's settings."""
    rt = cfg.endpoint.runtime
    workers = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(rt.model_server_workers)} if rt.model_server_workers else {}
    return workers | {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": f"{MODEL_DIR}/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "MAX_INPUT_TOKENS": str(rt.max_input_tokens),
        "MAX_NEW_TOKENS": str(rt.max_new_tokens),
        "DEFAULT_MAX_NEW_TOKENS": str(rt.default_max_new_tokens),
        "MAX_BATCH_SIZE": str(rt.max_batch_size),
        "TRUNCATE_INPUT": "true" if rt.truncate_input else "false",
        "DTYPE": TORCH_DTYPES[cfg.model.dtype],
        "COMPILE": rt.compile,
        "LOAD_IN_4BIT": "true" if cfg.model.quantization == "bnb-4bit" else "false",
        "ENGINE_MODE": rt.engine_mode,
        "ENGINE_CONNECT_TIMEOUT_S": str(rt.engine_connect_timeout_s),
        "ENGINE_START_TIMEOUT_S": str(rt.engine_start_timeout_s),
    }


def lmi_environment(cfg: DeploymentConfig) -> dict[str, str]:
    """LMI's OPTION_* variables for vLLM from ``model``, ``endpoint.runtime`` and ``endpoint.lmi``."""
    ep, m = cfg.endpoint, cfg.model
    env: dict[str, str] = {
        # Exit (and fail the health check) at once when the model cannot load, instead of answering 5xx for hours.
        "SERVING_FAIL_FAST": "true",
        "OPTION_TENSOR_PARALLEL_DEGREE": str(ep.tensor_parallel_degree),
        "OPTION_MAX_MODEL_LEN": str(ep.max_model_len),
        # LMI's option.dtype takes the same names as model.dtype (fp16, bf16, fp32).
        "OPTION_DTYPE": m.dtype,
        "OPTION_GPU_MEMORY_UTILIZATION": f"{ep.lmi.gpu_memory_utilization:g}",
        "OPTION_MAX_ROLLING_BATCH_SIZE": str(ep.runtime.max_batch_size),
    }
    if ep.lmi.model_source == "hub" and m.hub_id:
        env["HF_MODEL_ID"] = m.hub_id
    # model_source s3: no HF_MODEL_ID; LMI serves the weights SageMaker put in /opt/ml/model.
    if ep.lmi.mode == "async":
        env |= {
            "OPTION_ROLLING_BATCH": "disable",
            "OPTION_ASYNC_MODE": "true",
            "OPTION_ENTRYPOINT": LMI_ASYNC_ENTRYPOINT,
        }
    else:
        env["OPTION_ROLLING_BATCH"] = "vllm"
    if m.quantization in LMI_RUNTIME_QUANTIZE:
        env["OPTION_QUANTIZE"] = LMI_RUNTIME_QUANTIZE[m.quantization]
    env |= {f"OPTION_{k.upper()}": v for k, v in sorted(ep.lmi.options.items())}
    return env


def container_environment(cfg: DeploymentConfig) -> dict[str, str]:
    """The environment of the endpoint's container for the configured engine."""
    if cfg.endpoint.engine == "lmi":
        return lmi_environment(cfg)
    return handler_environment(cfg)
