"""Instance facts (GPU count and memory, local NVMe, hourly price) from ``config/instances.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

INSTANCES_FILE = Path(__file__).with_name("instances.yaml")


@dataclass(frozen=True)
class InstanceType:
    """One SageMaker instance type as listed in the data file."""

    name: str
    gpus: int
    gpu: str | None
    gpu_memory_gib: float
    vcpus: int
    memory_gib: float
    nvme: bool
    usd_per_hour: float
    bf16: bool = False

    @property
    def total_gpu_memory_gib(self) -> float:
        return self.gpus * self.gpu_memory_gib

    @property
    def family(self) -> str:
        """``ml.g5.2xlarge`` -> ``ml.g5``."""
        return self.name.rsplit(".", 1)[0]


@dataclass(frozen=True)
class InstanceTable:
    instances: dict[str, InstanceType]
    source_specs: str
    source_prices: str
    prices_as_of: str
    price_region: str

    def get(self, name: str) -> InstanceType | None:
        return self.instances.get(name)


@cache
def instance_table(path: Path = INSTANCES_FILE) -> InstanceTable:
    """Load (once) and return the instance table."""
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    bf16_gpus = set(raw["bf16_gpus"])
    instances = {
        name: InstanceType(name=name, **facts, bf16=facts["gpu"] in bf16_gpus)
        for name, facts in raw["instances"].items()
    }
    return InstanceTable(
        instances=instances,
        source_specs=raw["source_specs"],
        source_prices=raw["source_prices"],
        prices_as_of=str(raw["prices_as_of"]),
        price_region=raw["price_region"],
    )
