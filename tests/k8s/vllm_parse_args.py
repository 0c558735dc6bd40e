"""Run by a vLLM venv's python (not by pytest): parse each argument list with vLLM's own OpenAI-server parser.

python vllm_parse_args.py '[["--model=/models/x", ...], ...]'  ->  one JSON object of parsed values per list
"""

import json
import sys

try:
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
except ImportError:  # older vLLM layouts
    from vllm.entrypoints.openai.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser

FIELDS = [
    "model",
    "served_model_name",
    "host",
    "port",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "max_num_batched_tokens",
    "gpu_memory_utilization",
    "max_model_len",
    "quantization",
    "distributed_executor_backend",
]

parser = make_arg_parser(FlexibleArgumentParser())
out = []
for argv in json.loads(sys.argv[1]):
    ns = parser.parse_args(argv)  # exits 2 with vLLM's message on an unknown flag or a bad value
    out.append({f: getattr(ns, f) for f in FIELDS})
print("PARSED " + json.dumps(out, default=str))
