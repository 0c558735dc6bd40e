"""CLI: ``python -m edge [--env dev] [--until STEP] [--no-cache]`` — run the edge pipeline from the typed config.

Exit codes: 0 ok, 2 bad config or input, 3 parity failure, 4 gate failure (report still written).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from config.errors import ConfigError
from config.loader import CONFIG_DIR, load_config
from edge.errors import EdgeError
from edge.pipeline import ROOT, STEPS, Context, run_pipeline


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load ``config/<env>.yaml``, run the pipeline; return the exit code."""
    ap = argparse.ArgumentParser(
        prog="python -m edge", description="Distil, quantize, export and validate (edge mode)."
    )
    ap.add_argument("--env", default=os.environ.get("ENV", "dev"), help="config environment (config/<env>.yaml)")
    ap.add_argument("--config-dir", type=Path, default=CONFIG_DIR, help="directory holding <env>.yaml")
    ap.add_argument("--until", default="report", choices=STEPS, help="stop after this step (earlier ones are cached)")
    ap.add_argument("--no-cache", action="store_true", help="rebuild every step even when cached")
    args = ap.parse_args(argv)
    err = Console(stderr=True)
    try:
        cfg = load_config(args.env, args.config_dir).edge
        run_pipeline(Context(cfg, ROOT, Console(stderr=True), use_cache=not args.no_cache), until=args.until)
    except ConfigError as e:
        err.print(f"[red]config error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
        return 2
    except EdgeError as e:
        err.print(f"[red]{type(e).__name__}:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
