"""``router:`` section — the hybrid router Lambda and its HTTP API (owned by the hybrid work)."""

from config.base import Section


class RouterConfig(Section):
    """Settings for the hybrid router."""
