# Hybrid network path (docs/NETWORK.md): on-prem settings from the config and the deployed hybrid stack's outputs.
.PHONY: onprem-env

onprem-env: .venv/.stamp ## write local/aws-private/{aws-private.env,allowlist.txt} for ENV from cdk.out/ENV-outputs.json
	$(PY) -m stacks.onprem_env --env $(ENV) --outputs cdk.out/$(ENV)-outputs.json --out local/aws-private
