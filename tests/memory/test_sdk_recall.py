"""The SDK exposes episode recall on its own: ``hive.memory.recall(query, scope=..., k=...)``."""

import pytest

from mcphive import Hive, Settings
from mcphive.inference.testing import ScriptedModel
from mcphive.memory import Episode, RecallScope

pytestmark = pytest.mark.anyio


async def test_hive_memory_recalls_episodes_by_scope(settings: Settings) -> None:
    async with Hive.open(settings, model=ScriptedModel([])) as hive:
        await hive.memory.episodes.record_many([
            Episode(tenant="acme", thread="c1", text="Caroline went to the LGBTQ support group on Tuesday"),
            Episode(tenant="acme", thread="c1", text="Melanie painted a sunrise over the lake"),
            Episode(tenant="other", thread="c1", text="Caroline went hiking in the support group outing"),
        ])  # fmt: skip
        hits = await hive.memory.recall(
            "when did Caroline go to the support group?", scope=RecallScope(tenant="acme"), k=2
        )
        tasks = await hive.memory.recall("support group")  # the plain form still lists past tasks
    assert hits[0].episode.text.startswith("Caroline went to the LGBTQ support group")
    assert all(hit.episode.tenant == "acme" for hit in hits)
    assert tasks == []
