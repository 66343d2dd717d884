"""Scripted models shared by tests (used as ``from _writers import ...``): one that writes, for the approval
tests, and one that only finishes."""

from __future__ import annotations

from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, tool_call

NOTES = "NOTES.md"


def writer_model() -> FunctionModel:
    """For a task about notes, writes NOTES.md once (unless its outcome is already in view); then finishes."""

    def reply(request: ChatRequest) -> ChatResponse | str:
        if request.tool_choice == "none":
            return "done"
        seen = request.messages[-1].content or ""
        if "notes" not in seen or NOTES in seen:
            return tool_call("finish")
        return tool_call("write_file", path=NOTES, content="hello\n")

    return FunctionModel(reply)


def finisher_model() -> FunctionModel:
    """Chooses ``finish`` at once and answers "done": a task does its survey and nothing else."""
    return FunctionModel(lambda r: "done" if r.tool_choice == "none" else tool_call("finish"))
