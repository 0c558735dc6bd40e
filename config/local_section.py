"""``local:`` section — the on-prem gateway and its engines (owned by the local-stack work)."""

from config.base import Section


class LocalConfig(Section):
    """Settings for `make local-up` and the OpenAI-compatible gateway."""
