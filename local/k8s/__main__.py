"""``python -m local.k8s {render,validate,scan,review} --env ENV`` (the Makefile's `make k8s` / `make k8s-review`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config import ConfigError, load_config
from config.atomic import write_text_atomic
from local.k8s.render import plan_engines, render, write
from local.k8s.review import build_review, keep_as_previous
from local.k8s.scan import CHECKOV, scan
from local.k8s.validate import validate_dir

OUT = Path("k8s.out")


def main(argv: list[str] | None = None) -> int:
    """Returns 0 on success, 1 when validation or checkov finds problems, 2 on a config error."""
    ap = argparse.ArgumentParser(prog="python -m local.k8s", description=__doc__)
    ap.add_argument("command", choices=["render", "validate", "scan", "review"])
    ap.add_argument("--env", required=True)
    ap.add_argument("--out", type=Path, default=OUT, help="parent folder of the render folders (default k8s.out)")
    ap.add_argument("--checkov", type=Path, default=CHECKOV)
    args = ap.parse_args(argv)
    folder = args.out / args.env
    try:
        cfg = load_config(args.env)
        rendered = render(cfg)
    except ConfigError as err:
        print(f"k8s: {err}", file=sys.stderr)
        return 2
    version = cfg.local.kubernetes.kubernetes_version
    if args.command == "render":
        files = write(rendered, folder)
        print(f"k8s: wrote {len(files)} files, {len(rendered.docs())} documents to {folder}/")
    if args.command in ("render", "validate"):
        problems = validate_dir(folder, version)
        print(*problems, sep="\n", file=sys.stderr)
        print(f"k8s: {len(rendered.docs())} documents, Kubernetes {version} schemas: {len(problems)} problem(s)")
        return 1 if problems else 0
    if args.command == "scan":
        result = scan(folder, args.checkov)
        for f in result.failed:
            print(f"FAILED {f}", file=sys.stderr)
        for check, res, why in result.skipped:
            print(f"acknowledged {check} on {res}: {why}")
        print(f"checkov: {result.passed} passed, {len(result.failed)} failed, {len(result.skipped)} acknowledged")
        return 1 if result.failed else 0
    # review: render fresh, validate, scan when checkov is there, compare with the last reviewed render.
    write(rendered, folder)
    problems = validate_dir(folder, version)
    scanned = scan(folder, args.checkov) if args.checkov.is_file() else None
    previous = args.out / ".reviewed" / args.env
    _, left_out = plan_engines(cfg)
    page = build_review(
        args.env, folder, previous, version, problems, scanned, [f"{e.name} ({e.kind})" for e in left_out]
    )
    target = args.out / f"REVIEW-{args.env}.md"
    write_text_atomic(target, page)
    keep_as_previous(folder, previous)
    print(f"k8s: wrote {target}")
    return 1 if problems or (scanned and scanned.failed) else 0


if __name__ == "__main__":
    sys.exit(main())
