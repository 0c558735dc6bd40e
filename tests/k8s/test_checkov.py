"""checkov's Kubernetes checks: zero unacknowledged failures, each acknowledgement with its reason in the manifest."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from config.loader import parse_config
from local.k8s.render import Rendered, render, write
from local.k8s.scan import CHECKOV, ScanResult, scan
from tests.k8s.conftest import raw

DIGEST = "@sha256:" + "0" * 64
# Each scan is a checkov run of ~10-20 s on this machine.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _checkov_installed() -> None:
    if not CHECKOV.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHECKOV} missing: `make test` builds it (make checkov-setup)")
        pytest.skip("checkov not installed here: run `make checkov-setup`")


@pytest.mark.parametrize("which", ["prod_dir", "gpu_dir"])
def test_no_unacknowledged_findings(which: str, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(which)
    result = scan(folder)
    assert result.failed == []
    assert result.passed > 200
    # The only acknowledgement: images pinned by tag, each naming the config field that would remove it.
    assert result.skipped
    for check, resource, reason in result.skipped:
        assert check == "CKV_K8S_43", (check, resource)
        assert "pinned by version tag in config (local.kubernetes." in reason


@pytest.fixture(scope="module")
def digest_pinned_with_a_broken_worker(tmp_path_factory: pytest.TempPathFactory) -> ScanResult:
    """The multi-GPU example with every image pinned by digest, and one LeaderWorkerSet worker made writable."""
    data = copy.deepcopy(raw("onprem-gpu"))
    k = data["local"]["kubernetes"]
    k["gateway"]["image"] = "registry.bank.example/llm/llm-deploy-gateway" + DIGEST
    for name in k["engines"]:
        k["engines"][name]["image"] = "registry.bank.example/llm/engine" + DIGEST
    rendered: Rendered = render(parse_config(data, "onprem-gpu.yaml"))
    lws = next(d for d in rendered.docs() if d["kind"] == "LeaderWorkerSet")
    worker = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
    worker["securityContext"]["readOnlyRootFilesystem"] = False
    out = tmp_path_factory.mktemp("scan") / "onprem-gpu"
    write(rendered, out)
    return scan(out)


def test_digest_pinned_images_need_no_acknowledgement(digest_pinned_with_a_broken_worker: ScanResult) -> None:
    assert digest_pinned_with_a_broken_worker.skipped == []


def test_leader_worker_set_pods_are_scanned(digest_pinned_with_a_broken_worker: ScanResult) -> None:
    """checkov does not look inside LeaderWorkerSets itself: our Pod copies must carry the finding."""
    (failed,) = digest_pinned_with_a_broken_worker.failed
    assert failed.startswith("CKV_K8S_22 ") and "Pod.llm-onprem.llama70b-worker" in failed
