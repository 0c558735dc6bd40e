"""Shared pydantic base for every config section: unknown keys are errors, values are frozen once read."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base class of every config section (strict about unknown keys, immutable after validation)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
