"""api_reference: a Markdown reference of the sample's public API, built with ast."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets.apiref import api_reference
from mcphive.mcp_servers.workspace import build_workspace_server


def test_the_reference_lists_the_public_functions_with_signatures_and_summaries(jail: Jail) -> None:
    result = api_reference(jail, "pricefeed")
    text = result["markdown"]
    assert "## `pricefeed.pricing`" in text
    assert "- `apply_discount(unit_price: float, quantity: int) -> float`: Total price of ``quantity`` units;" in text
    assert "- `convert(amount: float, rate: float) -> float` *(undocumented)*" in text
    assert "### class `PriceCache`" in text and "- `get(symbol: str) -> float | None`" in text
    assert "## `tests" not in api_reference(jail)["markdown"]  # test modules are not API
    assert result["counts"]["modules"] == 7 and result["counts"]["functions"] == 9
    assert result["unparsed_files"] == []


def test_all_limits_the_reference_and_private_modules_are_skipped(jail: Jail, workspace: Path) -> None:
    (workspace / "lib").mkdir()
    (workspace / "lib" / "api.py").write_text(
        '"""The API."""\n__all__ = ["shown"]\n\n\ndef shown(x, *, y=1):\n    """Shown."""\n\n\n'
        "def hidden():\n    pass\n\n\nclass Thing:\n    def method(self, a=2):\n        pass\n"
    )
    (workspace / "lib" / "_internal.py").write_text("def secret():\n    pass\n")
    (workspace / "lib" / "broken.py").write_text("def f(:\n")
    result = api_reference(jail, "lib")
    assert result["counts"] == {"modules": 1, "classes": 0, "functions": 1, "methods": 0, "undocumented": 0}
    assert "- `shown(x, *, y=1)`: Shown." in result["markdown"]
    assert "hidden" not in result["markdown"] and "secret" not in result["markdown"]
    assert result["unparsed_files"] == ["lib/broken.py"]


def test_a_path_outside_the_workspace_is_refused(jail: Jail) -> None:
    with pytest.raises(ToolError, match="outside the workspace"):
        api_reference(jail, "../elsewhere")


@pytest.mark.anyio
async def test_the_workspace_server_serves_the_reference_as_a_read_only_tool(workspace: Path) -> None:
    async with Client(build_workspace_server(workspace)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool("api_reference", {"path": "pricefeed"})
    annotations = tools["api_reference"].annotations
    assert annotations is not None and annotations.read_only_hint and not annotations.destructive_hint
    assert result.structured_content is not None and "apply_discount" in result.structured_content["markdown"]
