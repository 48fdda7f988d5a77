"""Who a console caller is once authenticated: an operator, or a member of one team."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contracts.events import TeamRef

Role = Literal["operator", "team"]


@dataclass(frozen=True)
class Principal:
    """A logged-in user or a token's holder."""

    name: str
    role: Role
    team: TeamRef | None  # set iff role == "team"

    @property
    def team_label(self) -> str | None:
        """`agency/team`, as the API and the users file write it."""
        return f"{self.team.agency}/{self.team.team}" if self.team is not None else None
