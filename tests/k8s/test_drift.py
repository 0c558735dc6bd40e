"""Facts the manifests share with other files of the repository stay the same in both places."""

from __future__ import annotations

import re

from config.kubernetes_section import DEFAULT_IMAGES
from local.k8s import render as r
from tests.k8s.conftest import REPO


def test_pods_run_as_the_uid_the_gateway_image_creates() -> None:
    dockerfile = (REPO / "local" / "Dockerfile").read_text(encoding="utf-8")
    (uid,) = re.findall(r"useradd [^\n]*--uid (\d+)", dockerfile)
    assert int(uid) == r.RUN_AS


def test_engine_images_match_compose() -> None:
    compose = (REPO / "local" / "compose.yaml").read_text(encoding="utf-8")
    vllm_tag = re.search(r"image: vllm/vllm-openai:\$\{VLLM_TAG:-([^}]+)\}", compose)
    sglang_tag = re.search(r"image: lmsysorg/sglang:\$\{SGLANG_TAG:-([^}]+)\}", compose)
    assert vllm_tag and sglang_tag
    assert DEFAULT_IMAGES["vllm"] == f"vllm/vllm-openai:{vllm_tag.group(1)}"
    assert DEFAULT_IMAGES["sglang"] == f"lmsysorg/sglang:{sglang_tag.group(1)}"


def test_engine_ports_match_the_gateway_profile_defaults() -> None:
    from config.local_section import LocalConfig

    urls = {e.kind: e.base_url for e in LocalConfig(profile="gpu").resolved_engines()}
    for kind, port in r.ENGINE_PORTS.items():
        assert str(urls[kind]).endswith(f":{port}")
