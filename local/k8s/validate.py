"""Validate rendered documents offline against the Kubernetes OpenAPI schemas of a pinned version.

Built-in kinds go through ``kubernetes_validate`` (its wheel ships the schemas; strict mode: unknown fields fail).
Custom resources go through our own schemas (``crd_schemas.py``) and their pod templates through the real
``PodTemplateSpec`` schema, wrapped as a ``v1/PodTemplate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry

from local.k8s.crd_schemas import CUSTOM_RESOURCES, POD_TEMPLATE_PATHS

Doc = dict[str, Any]
# Files in a render folder that are not Kubernetes resources.
NOT_RESOURCES = {"kustomization.yaml"}


def _where(doc: Doc) -> str:
    return f"{doc.get('kind', '?')}/{doc.get('metadata', {}).get('name', '?')}"


def _k8s(doc: Doc, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(p) for p in err.path) or "<root>"
        return [f"{_where(doc)}: {path}: {err.message}"]
    except kubernetes_validate.SchemaNotFoundError as err:
        return [f"{_where(doc)}: {err.message}"]
    return []


def _dig(doc: Doc, path: tuple[str, ...]) -> Any:
    node: Any = doc
    for p in path:
        node = node.get(p) if isinstance(node, dict) else None
    return node


def validate_doc(doc: Doc, version: str) -> list[str]:
    """Problems with one document (empty when valid): ``Kind/name: field.path: message``.

    Raises:
        kubernetes_validate.VersionNotSupportedError: ``version`` is newer than the shipped schemas.
    """
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    schema = CUSTOM_RESOURCES.get(key)
    if schema is None:
        return _k8s(doc, version)
    # An empty registry: nothing in these schemas may be fetched from a file or URL.
    validator = jsonschema.Draft202012Validator(schema, registry=Registry())
    errors = [
        f"{_where(doc)}: {'.'.join(str(p) for p in e.path) or '<root>'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]
    for path in POD_TEMPLATE_PATHS.get(key[1], []):
        template = _dig(doc, path)
        if template is None:
            continue
        wrapped = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": doc["metadata"]["name"], "namespace": doc["metadata"].get("namespace")},
            "template": template,
        }
        errors += [
            e.replace("PodTemplate/", f"{_where(doc)} {'.'.join(path)} as PodTemplate/", 1)
            for e in _k8s(wrapped, version)
        ]
    return errors


def load_dir(folder: Path) -> list[tuple[str, Doc]]:
    """(file name, document) for every resource in a render folder, in file order."""
    out = []
    for f in sorted(folder.glob("*.yaml")):
        if f.name in NOT_RESOURCES:
            continue
        out += [(f.name, d) for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d]
    return out


def validate_dir(folder: Path, version: str) -> list[str]:
    """Every problem in a render folder, each prefixed by its file; also checks kustomization.yaml's list."""
    problems = [f"{name}: {p}" for name, doc in load_dir(folder) for p in validate_doc(doc, version)]
    kfile = folder / "kustomization.yaml"
    if not kfile.is_file():
        return [*problems, "kustomization.yaml: missing"]
    listed = set(yaml.safe_load(kfile.read_text(encoding="utf-8")).get("resources", []))
    present = {f.name for f in folder.glob("*.yaml")} - NOT_RESOURCES
    if listed != present:
        problems.append(f"kustomization.yaml: resources {sorted(listed)} differ from the files {sorted(present)}")
    return problems
