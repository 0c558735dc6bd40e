"""Run cfn-lint over every template of a cloud assembly; any error or warning fails.

    python -m stacks.lint cdk.out/dev

Writes ``<assembly>/cfn-lint.json`` (the findings, for `make review`) and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from config.atomic import write_text_atomic


def run_cfn_lint(templates: list[Path]) -> list[dict[str, Any]]:
    """Return cfn-lint's findings (JSON format) for ``templates``; raises RuntimeError if cfn-lint itself fails."""
    if not templates:
        return []
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "json", *map(str, templates)],
        capture_output=True,
        text=True,
        check=False,
    )
    # Exit codes are a bitmask of error(2)/warning(4)/info(8); 1 means cfn-lint crashed.
    if proc.returncode & 1:
        raise RuntimeError(f"cfn-lint failed: {proc.stderr.strip() or proc.stdout.strip()}")
    findings: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    return findings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="cfn-lint every template in a CDK cloud assembly")
    ap.add_argument("assembly", type=Path, help="cdk.out/<env>")
    args = ap.parse_args(argv)
    if not args.assembly.is_dir():
        print(f"assembly: {args.assembly} is not a directory; run `make synth` first", file=sys.stderr)
        return 2
    templates = sorted(args.assembly.glob("*.template.json"))
    if not templates:
        print(f"assembly: no *.template.json in {args.assembly}", file=sys.stderr)
        return 2
    findings = run_cfn_lint(templates)
    write_text_atomic(args.assembly / "cfn-lint.json", json.dumps(findings, indent=2))
    for f in findings:
        loc = f.get("Location", {})
        print(
            f"{f['Level'].upper()} {f['Rule']['Id']} {loc.get('Filename')}:{loc.get('Start', {}).get('LineNumber')}: "
            f"{f['Message']}"
        )
    print(f"cfn-lint: {len(templates)} templates, {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
