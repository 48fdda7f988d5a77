"""The stories a run tells: reproducible, covering every trigger, within the region's agencies."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from contracts.registry import AgencyRegistry
from services.runtime.errors import UserError
from services.simulation.plan import Response, Story, Timing, make_plans


def test_the_same_seed_tells_the_same_stories(registry: AgencyRegistry) -> None:
    timing = Timing.paced(5, 200)
    first = make_plans(registry, 8, 200, timing, seed=1)
    again = make_plans(registry, 8, 200, timing, seed=1)
    other = make_plans(registry, 8, 200, timing, seed=2)
    assert [(p.case_id, p.story, p.receivers) for p in first] == [
        (p.case_id, p.story, p.receivers) for p in again
    ]
    assert [p.case_id for p in first] != [p.case_id for p in other]


def test_a_thousand_cases_cover_every_story_and_team_response(registry: AgencyRegistry) -> None:
    plans = make_plans(registry, 8, 1000, Timing.paced(5, 1000), seed=7)
    assert set(Counter(p.story for p in plans)) == set(Story)
    assert set(Counter(p.response for p in plans if p.escalates)) == set(Response)
    assert all(p.opener not in p.receivers for p in plans)
    bounced = [p for p in plans if p.story is Story.BOUNCED]
    assert all(len(p.receivers) == 3 for p in bounced)  # the ping-pong limit's third rejection


def test_only_the_first_n_agencies_take_part(registry: AgencyRegistry) -> None:
    first_three = {a.code for a in registry.agencies[:3]}
    plans = make_plans(registry, 3, 300, Timing.paced(5, 300), seed=1)
    assert {p.opener for p in plans} | {r for p in plans for r in p.receivers} <= first_three


@pytest.mark.parametrize("agencies", [1, 99])
def test_a_region_needs_two_to_all_agencies(registry: AgencyRegistry, agencies: int) -> None:
    with pytest.raises(UserError, match="--agencies"):
        make_plans(registry, agencies, 10, Timing.paced(5, 10), seed=1)


def test_the_pace_is_real_time_so_the_speed_scales_every_duration(
    registry: AgencyRegistry,
) -> None:
    slow, fast = Timing.paced(1, 100), Timing.paced(3600, 100)
    assert fast.handoff_deadline == 3600 * slow.handoff_deadline
    category = registry.categories[0]
    path = fast.path_for(category.escalation_path)
    assert path is not None
    assert [(lv.agency, lv.team) for lv in path.levels] == [
        (lv.agency, lv.team) for lv in category.escalation_path.levels
    ]
    assert path.levels[0].acknowledge_within == timedelta(hours=2)
