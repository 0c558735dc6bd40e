"""``edge:`` section — distillation, quantization and export (owned by the edge work)."""

from config.base import Section


class EdgeConfig(Section):
    """Settings for `make edge-export`."""
