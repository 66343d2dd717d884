"""The public SDK surface is deliberate: adding or removing a name must be a conscious change."""

import mcphive


def test_all_lists_exactly_the_public_names() -> None:
    assert sorted(mcphive.__all__) == sorted(
        [
            "ApprovalDecision",
            "ApprovalRequest",
            "Change",
            "ConfigError",
            "Event",
            "Finding",
            "Hive",
            "InvalidTask",
            "MCPHiveError",
            "ModelUnavailable",
            "Principal",
            "Priority",
            "QueueFull",
            "Route",
            "RunError",
            "Settings",
            "Step",
            "Task",
            "TaskFailed",
            "TaskHandle",
            "TaskResult",
            "TaskStatus",
            "ToolCall",
            "ToolError",
            "UnknownAgent",
            "Usage",
            "UsageError",
            "WorkspaceError",
            "__version__",
            "load_settings",
        ]
    )


def test_every_public_name_resolves() -> None:
    for name in mcphive.__all__:
        assert getattr(mcphive, name) is not None


def test_importing_mcphive_does_not_import_heavy_dependencies() -> None:
    import subprocess
    import sys

    heavy = "('torch', 'chromadb', 'langgraph', 'llama_cpp')"
    code = f"import sys, mcphive; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
