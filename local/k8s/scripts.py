"""Shell entrypoints the manifests run (``/bin/sh -c SCRIPT name ARGS...``; the engine's arguments arrive as "$@").

Secrets are read from mounted files into the environment of the one process that needs them, so they never appear
in a manifest, an environment variable of the pod spec, or (for vLLM and the gateway) a process's argument list.
"""

from __future__ import annotations

import shlex

RAY_PORT = 6379
# How long the Ray head waits for the workers of its group before giving up (the pod restarts, LWS recreates the group).
RAY_JOIN_TIMEOUT_S = 600
VLLM_MODULE = "vllm.entrypoints.openai.api_server"
SGLANG_MODULE = "sglang.launch_server"


def export_secret(var: str, path: str) -> str:
    """``VAR="$(cat path)"; export VAR`` — a plain assignment, so ``set -e`` stops the script when the file is missing
    (``export VAR="$(...)"`` would return export's own status, 0, and start the server without its key)."""
    return f'{var}="$(cat {shlex.quote(path)})"; export {var}'


def exec_python(module: str) -> str:
    return f'exec python3 -m {module} "$@"'


def gateway_script(exports: list[str]) -> str:
    """Gateway: export each engine key read from its file, then exec the server."""
    return "; ".join(["set -eu", *exports, "exec python -m local.serve"])


def engine_script(module: str, exports: list[str], extra_args: list[str] | None = None) -> str:
    """A single-pod engine: exports, then exec the server with "$@" (plus args that need the shell, e.g. a key)."""
    tail = exec_python(module) + ("" if not extra_args else " " + " ".join(extra_args))
    return "; ".join(["set -eu", *exports, tail])


def ray_head_script(module: str, exports: list[str]) -> str:
    """LWS leader: start the Ray head, wait until all $LWS_GROUP_SIZE nodes are alive, then exec vLLM on Ray."""
    count = "import ray; ray.init(address='auto', logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
    return "; ".join(
        [
            "set -eu",
            *exports,
            f"ray start --head --port={RAY_PORT} --dashboard-host=127.0.0.1 --disable-usage-stats",
            "waited=0",
            f'until [ "$(python3 -c "{count}")" -ge "$LWS_GROUP_SIZE" ]; do '
            f'if [ "$waited" -ge {RAY_JOIN_TIMEOUT_S} ]; then '
            'echo "ray: only some of $LWS_GROUP_SIZE nodes joined" >&2; exit 1; fi; '
            "sleep 5; waited=$((waited + 5)); done",
            exec_python(module),
        ]
    )


def ray_worker_script() -> str:
    """LWS worker: join the leader's Ray head and block (the GPUs are driven from the head's vLLM process)."""
    return "; ".join(
        [
            "set -eu",
            f'exec ray start --address="$LWS_LEADER_ADDRESS:{RAY_PORT}" --block --disable-usage-stats',
        ]
    )


def ray_health_command() -> list[str]:
    """Probe for a Ray worker: the head's GCS answers (LWS recreates the group when it does not)."""
    return ["/bin/sh", "-c", f'ray health-check --address "$LWS_LEADER_ADDRESS:{RAY_PORT}"']
