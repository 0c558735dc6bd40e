"""Write cdk.out/REVIEW.md for an ops reviewer from a synthesized assembly and the typed config.

    python -m stacks.review --env prod --assembly cdk.out/prod --out cdk.out/REVIEW.md

The data paths between the premises and AWS (stacks/data_paths.py). Per stack: resources, every IAM statement per role, cdk-nag and cfn-lint results (with each acknowledgement's
reason), the scaling behaviour in words, a monthly cost range, and what changed since the previous review.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from config import ConfigError, DeploymentConfig, load_config
from config.atomic import write_text_atomic
from config.instances import instance_table
from config.loader import with_engine
from config.schema import CONCURRENCY_TARGET_FILL
from stacks.container_env import container_environment
from stacks.data_paths import data_paths_section

HOURS_PER_MONTH = 730
Template = dict[str, Any]


def render(value: Any) -> str:
    """Readable form of a CloudFormation value with intrinsics (Ref, GetAtt, Join, ImportValue, Sub)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(render(v) for v in value)
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"<{arg}>"
        if fn == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>" if isinstance(arg, list) else f"<{arg}>"
        if fn == "Fn::Join":
            return str(arg[0]).join(render(v) for v in arg[1])
        if fn == "Fn::ImportValue":
            return f"<import:{render(arg)}>"
        if fn == "Fn::Sub":
            return render(arg if isinstance(arg, str) else arg[0])
        if fn == "Fn::FindInMap":
            return f"<map:{render(arg[0])}>"
    return json.dumps(value, sort_keys=True)


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def role_statements(template: Template) -> dict[str, list[dict[str, Any]]]:
    """Map each role's logical id to the statements that apply to it (inline, attached policies, managed)."""
    resources: dict[str, Any] = template.get("Resources", {})
    roles = {lid for lid, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    out: dict[str, list[dict[str, Any]]] = {r: [] for r in roles}
    for lid in roles:
        props = resources[lid].get("Properties", {})
        for pol in props.get("Policies", []):
            out[lid] += [{"via": f"inline {pol.get('PolicyName')}", **s} for s in pol["PolicyDocument"]["Statement"]]
        for arn in props.get("ManagedPolicyArns", []):
            out[lid].append({"via": "AWS-managed", "Effect": "Allow", "Action": render(arn), "Resource": "(managed)"})
    for lid, r in resources.items():
        if r["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        props = r.get("Properties", {})
        for ref in props.get("Roles", []):
            target = ref.get("Ref") if isinstance(ref, dict) else None
            if target in out:
                out[target] += [{"via": lid, **s} for s in props["PolicyDocument"]["Statement"]]
    return out


def acknowledgements(metadata_file: Path) -> list[tuple[str, str, str]]:
    """(construct path, finding id, reason) for every acknowledged nag/annotation finding of one stack."""
    if not metadata_file.is_file():
        return []
    meta: dict[str, list[dict[str, Any]]] = json.loads(metadata_file.read_text(encoding="utf-8"))
    acks = []
    for path, entries in meta.items():
        for e in entries:
            if e.get("type") == "aws:cdk:acknowledged-rules":
                for rule, reason in e.get("data", {}).items():
                    acks.append((path, rule.removeprefix("Annotation::"), reason))
    return sorted(acks)


def engine_in_words(cfg: DeploymentConfig) -> list[str]:
    """Which serving engine runs, with which image and options (the environment synth generated)."""
    ep, m = cfg.endpoint, cfg.model
    image = ep.image.uri or f"<DLC account>.dkr.ecr.<region>.amazonaws.com/{ep.image_repository}:{ep.image_tag}"
    source = (
        f"the hub id {m.hub_id} (downloaded by the container)"
        if ep.engine == "lmi" and ep.lmi.model_source == "hub"
        else f"s3://<artifact bucket>/{m.s3_key} ({'uncompressed prefix' if m.uncompressed else 'model.tar.gz'})"
    )
    precision = m.quantization if m.quantization != "none" else m.dtype
    if ep.engine == "lmi":
        lines = [
            f"Engine `lmi`: vLLM on the Large Model Inference container ({ep.lmi.mode.replace('_', ' ')} mode), "
            f"image `{image}`.",
            f"Model {m.name} ({m.params_billions:g}B at {precision}, ~{cfg.weights_gib:.1f} GiB of weights) from "
            f"{source}; tensor parallel over {ep.tensor_parallel_degree} of {ep.instance.gpus} GPU(s) "
            f"({ep.model_copies} model cop{'y' if ep.model_copies == 1 else 'ies'} per instance), up to "
            f"{ep.runtime.max_batch_size} sequences in the rolling batch per copy, context {ep.max_model_len} tokens.",
        ]
        if m.quantization in ("awq", "gptq"):
            lines.append(f"{m.quantization} is read from the checkpoint's config by vLLM (LMI: do not set it again).")
    else:
        lines = [
            f"Engine `handler`: our inference.py on the PyTorch inference container, image `{image}`.",
            f"Model {m.name} ({m.params_billions:g}B at {precision}, ~{cfg.weights_gib:.1f} GiB of weights) from "
            f"{source}; one model copy per GPU, batches of up to {ep.runtime.max_batch_size} prompts.",
        ]
    lines.append(
        f"Start-up: {cfg.model_download_timeout_s} s to download the model, {cfg.health_check_timeout_s} s until "
        "the container must answer /ping."
    )
    env = container_environment(cfg)
    lines.append("Container environment: " + ", ".join(f"`{k}={v}`" for k, v in env.items()) + ".")
    return lines


def scaling_in_words(cfg: DeploymentConfig) -> list[str]:
    ep = cfg.endpoint
    lines = [
        f"{ep.min_instances}–{ep.max_instances} × {ep.instance_type}; adds instances when a minute averages more "
        f"than {ep.target_qps_per_instance:g} requests/s per instance (TargetValue "
        f"{ep.target_invocations_per_instance_per_minute:g} SageMakerVariantInvocationsPerInstance per minute, "
        "the reference guide's QPS rule); "
        f"waits {ep.scale_out_cooldown_s} s between scale-outs and {ep.scale_in_cooldown_s} s before removing "
        "instances.",
    ]
    if ep.concurrency_enabled:
        why = "so long generations scale out before QPS rises"
        if ep.engine == "lmi" and ep.concurrency_scaling.target_concurrent_requests is None:
            why = (
                f"= {int(CONCURRENCY_TARGET_FILL * 100)}% of the {ep.runtime.max_batch_size * ep.model_copies} "
                "rolling-batch slots per instance, so instances are added while a new request still joins a batch "
                "at once instead of queueing; an LLM answer holds its slot for seconds, so QPS alone reacts late"
            )
        lines.append(
            f"Also tracks {ep.concurrency_target:g} concurrent requests per instance (TargetValue of "
            f"SageMakerVariantConcurrentRequestsPerModelHighResolution, a 10-second metric) {why}. With two "
            "target-tracking policies, Application Auto Scaling scales out when either asks and in only when both "
            "allow."
        )
    for w in ep.scheduled_scaling:
        lines.append(
            f"Scheduled window '{w.name}': minimum raised to {w.min_instances} at {w.start} and restored to "
            f"{ep.min_instances} at {w.end} ({w.timezone})."
        )
    lines.append("Deploys keep the current instance count (RetainAllVariantProperties).")
    return lines


def cost_lines(cfg: DeploymentConfig) -> list[str]:
    table = instance_table()
    inst = table.instances[cfg.endpoint.instance_type]
    lo = cfg.endpoint.min_instances * inst.usd_per_hour * HOURS_PER_MONTH
    hi = cfg.endpoint.max_instances * inst.usd_per_hour * HOURS_PER_MONTH
    return [
        f"Endpoint instances: ${lo:,.0f} – ${hi:,.0f} per month ({cfg.endpoint.min_instances}–"
        f"{cfg.endpoint.max_instances} × {inst.name} at ${inst.usd_per_hour}/h × {HOURS_PER_MONTH} h).",
        f"Prices: {table.price_region} on-demand, as of {table.prices_as_of}, from {table.source_prices} "
        "(config/instances.yaml). Storage, KMS, CloudWatch and data transfer are extra and usually small.",
    ]


def template_changes(old: Template | None, new: Template) -> list[str]:
    if old is None:
        return ["(no previous review: everything is new)"]
    o, n = old.get("Resources", {}), new.get("Resources", {})
    lines = [f"+ {lid} ({n[lid]['Type']})" for lid in sorted(n.keys() - o.keys())]
    lines += [f"- {lid} ({o[lid]['Type']})" for lid in sorted(o.keys() - n.keys())]
    for lid in sorted(n.keys() & o.keys()):
        op, np_ = o[lid].get("Properties", {}), n[lid].get("Properties", {})
        changed = sorted(k for k in op.keys() | np_.keys() if op.get(k) != np_.get(k))
        if changed:
            lines.append(f"~ {lid} ({n[lid]['Type']}): {', '.join(changed)}")
    return lines or ["(no changes)"]


def build_review(cfg: DeploymentConfig, assembly: Path, previous: Path | None) -> str:
    templates = sorted(assembly.glob("*.template.json"))
    if not templates:
        raise FileNotFoundError(f"assembly: no templates in {assembly}; run `make synth ENV={cfg.environment}`")
    lint_file = assembly / "cfn-lint.json"
    lint = json.loads(lint_file.read_text(encoding="utf-8")) if lint_file.is_file() else None
    report_file = assembly / "validation-report.json"
    report = json.loads(report_file.read_text(encoding="utf-8")) if report_file.is_file() else {}
    unacked = sum(len(p.get("violations", [])) for p in report.get("pluginReports", []))
    out = [
        f"# Deployment review — {cfg.environment}",
        "",
        f"Endpoint `{cfg.endpoint_name}` serving `{cfg.model.name}` ({cfg.model.params_billions:g}B, "
        f"{cfg.model.quantization if cfg.model.quantization != 'none' else cfg.model.dtype}).",
        "",
        "## Engine",
        *[f"- {line}" for line in engine_in_words(cfg)],
        "",
        "## Scaling",
        *[f"- {line}" for line in scaling_in_words(cfg)],
        "",
        "## Monthly cost range",
        *[f"- {line}" for line in cost_lines(cfg)],
        "",
        *data_paths_section(cfg, assembly),
        "## Checks",
        f"- cdk-nag (AwsSolutions, HIPAA Security): {unacked} unacknowledged findings.",
        "- cfn-lint: " + ("not run" if lint is None else f"{len(lint)} findings (errors + warnings)"),
    ]
    for f in lint or []:
        out.append(f"  - {f['Level']} {f['Rule']['Id']}: {f['Message']}")
    for tpath in templates:
        stack = tpath.name.removesuffix(".template.json")
        template: Template = json.loads(tpath.read_text(encoding="utf-8"))
        resources = template.get("Resources", {})
        out += ["", f"## Stack `{stack}`", "", "### Resources", "", "| type | count |", "|---|---|"]
        for rtype, count in sorted(Counter(r["Type"] for r in resources.values()).items()):
            out.append(f"| {rtype} | {count} |")
        out += ["", "### IAM statements per role"]
        for role, statements in sorted(role_statements(template).items()):
            out += [
                "",
                f"**{role}**",
                "",
                "| effect | actions | resources | condition | via |",
                "|---|---|---|---|---|",
            ]
            for s in statements:
                actions = ", ".join(map(render, _as_list(s.get("Action", []))))
                res = ", ".join(map(render, _as_list(s.get("Resource", []))))
                cond = "; ".join(
                    f"{op} {k}={render(v)}" for op, kv in s.get("Condition", {}).items() for k, v in kv.items()
                )
                out.append(f"| {s.get('Effect')} | {actions} | {res} | {cond} | {s['via']} |")
        acks = acknowledgements(assembly / f"{stack}.metadata.json")
        out += ["", "### Acknowledged findings", ""]
        out += [f"- `{rule}` on `{path}` — {reason}" for path, rule, reason in acks] or ["- none"]
        old_t = previous / tpath.name if previous else None
        old = json.loads(old_t.read_text(encoding="utf-8")) if old_t and old_t.is_file() else None
        out += ["", "### Changes since the previous review", "", "```", *template_changes(old, template), "```"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write an ops review of the synthesized templates")
    ap.add_argument("--env", default="dev")
    ap.add_argument("--engine", choices=["handler", "lmi"], help="the endpoint.engine override synth used")
    ap.add_argument("--assembly", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("cdk.out/REVIEW.md"))
    ap.add_argument("--state", type=Path, default=None, help="where the previous review's templates are kept")
    args = ap.parse_args(argv)
    try:
        # LLM_DEPLOY_CONFIG_DIR: another folder of <env>.yaml files, as for app.py (e.g. config/examples)
        config_dir = os.environ.get("LLM_DEPLOY_CONFIG_DIR")
        cfg = load_config(args.env, Path(config_dir)) if config_dir else load_config(args.env)
        if args.engine:
            cfg = with_engine(cfg, args.engine, f"config/{args.env}.yaml with --engine {args.engine}")
    except ConfigError as err:
        print(f"config error:\n{err}", file=sys.stderr)
        return 2
    state = args.state or args.out.parent / "review-state" / args.env
    try:
        text = build_review(cfg, args.assembly, state if state.is_dir() else None)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    write_text_atomic(args.out, text)
    # Keep this review's templates as the baseline for the next one.
    state.mkdir(parents=True, exist_ok=True)
    for t in args.assembly.glob("*.template.json"):
        shutil.copyfile(t, state / t.name)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
