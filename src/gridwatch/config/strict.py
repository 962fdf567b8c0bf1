"""The base of every config section.

One definition, so every section of the YAML behaves the same: an unknown key is an error
(a typo such as ``min_cout`` must not silently fall back to a default) and a loaded config is
frozen (a worker never mutates the config it was given; it builds a new one on reload).

>>> from pydantic import Field, ValidationError
>>> class Example(Strict):
...     min_count: int = Field(default=5, title="Minimum count", description="People.")
>>> try:
...     Example.model_validate({"min_cout": 3})
... except ValidationError as e:
...     print(e.errors()[0]["type"], e.errors()[0]["loc"])
extra_forbidden ('min_cout',)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gridwatch.alerts.subjects import TOKEN_RE

Id = Annotated[
    str,
    Field(
        pattern=TOKEN_RE.pattern,
        min_length=1,
        max_length=64,
        title="Identifier",
        description="Letters, digits, '-' and '_' (it becomes a NATS subject token).",
    ),
]
"""An id that becomes a NATS subject token (cameras, grids, zones, rules)."""


class Strict(BaseModel):
    """A config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
