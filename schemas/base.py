"""The one base of every strict model: an unknown key is an error (a typo in a rule file or a
message must not pass silently), and what was loaded does not change afterwards."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
