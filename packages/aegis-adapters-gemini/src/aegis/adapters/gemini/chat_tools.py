"""OpenAI ``tools`` and ``tool_choice`` -> Gemini ``functionDeclarations`` and ``toolConfig``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aegis.core import read_function_tool, read_tool_choice

from ._checks import CHECKS

__all__ = ["translate_tool_choice", "translate_tools"]


def translate_tools(tools: Sequence[Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """Function declarations for ``tools``, and the names they declare."""
    declarations: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, raw in enumerate(tools):
        tool = read_function_tool(CHECKS, raw, f"tools[{i}]")
        declaration: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            declaration["description"] = tool.description
        if tool.parameters is not None:
            declaration["parametersJsonSchema"] = tool.parameters
        declarations.append(declaration)
        names.add(tool.name)
    return declarations, names


def translate_tool_choice(
    choice: Any, known: set[str], declarations: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The ``toolConfig`` for ``choice`` (or ``None``), and the declarations to send."""
    read = read_tool_choice(CHECKS, choice, known)
    if read.mode == "none":
        return ({"functionCallingConfig": {"mode": "NONE"}} if known else None), declarations
    if read.mode == "auto":
        if read.names is None:
            return None, declarations
        # AUTO takes no allowedFunctionNames: offer only the allowed declarations instead.
        return None, [d for d in declarations if d["name"] in read.names]
    config: dict[str, Any] = {"mode": "ANY"}
    if read.names is not None:
        config["allowedFunctionNames"] = list(read.names)
    return {"functionCallingConfig": config}, declarations
