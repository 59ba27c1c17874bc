"""A question's rubric: the evidence that earns each score level, in ru and en."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Rubric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
