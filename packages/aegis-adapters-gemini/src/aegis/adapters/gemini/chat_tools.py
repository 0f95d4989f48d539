"""OpenAI ``tools`` and ``tool_choice`` -> Gemini ``functionDeclarations`` and ``toolConfig``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._checks import array, fail, mapping, only_keys, string, unsupported

__all__ = ["translate_tool_choice", "translate_tools"]


def translate_tools(tools: Sequence[Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """Function declarations for ``tools``, and the names they declare."""
    declarations: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, raw in enumerate(tools):
        where = f"tools[{i}]"
        tool = mapping(raw, where)
        if tool.get("type") != "function":
            unsupported(f"{where}.type", "only function tools are supported")
        only_keys(tool, frozenset({"type", "function"}), where)
        function = mapping(tool.get("function"), f"{where}.function")
        only_keys(
            function,
            frozenset({"name", "description", "parameters", "strict"}),
            f"{where}.function",
        )
        name = string(function.get("name"), f"{where}.function.name")
        if not name:
            fail(f"{where}.function.name", "must not be empty")
        declaration: dict[str, Any] = {"name": name}
        if function.get("description") is not None:
            declaration["description"] = string(
                function["description"], f"{where}.function.description"
            )
        if function.get("parameters") is not None:
            params = mapping(function["parameters"], f"{where}.function.parameters")
            declaration["parametersJsonSchema"] = dict(params)
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            fail(f"{where}.function.strict", "must be a boolean")
        declarations.append(declaration)
        names.add(name)
    return declarations, names


def _named(choice: Mapping[str, Any], where: str, known: set[str]) -> str:
    if choice.get("type") != "function":
        unsupported(f"{where}.type", "only function tools can be chosen")
    function = mapping(choice.get("function"), f"{where}.function")
    name = string(function.get("name"), f"{where}.function.name")
    if name not in known:
        fail(f"{where}.function.name", f"names no tool in tools: {name!r}")
    return name


def translate_tool_choice(
    choice: Any, known: set[str], declarations: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The ``toolConfig`` for ``choice`` (or ``None``), and the declarations to send."""
    if choice is None or choice == "auto":
        return None, declarations
    if choice == "none":
        return ({"functionCallingConfig": {"mode": "NONE"}} if known else None), declarations
    if not known:
        fail("tool_choice", "needs tools")
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}, declarations
    if isinstance(choice, str):
        fail("tool_choice", "must be none, auto, required or an object")
    choice = mapping(choice, "tool_choice")
    if choice.get("type") == "allowed_tools":
        allowed = mapping(choice.get("allowed_tools"), "tool_choice.allowed_tools")
        mode = allowed.get("mode")
        if mode not in ("auto", "required"):
            fail("tool_choice.allowed_tools.mode", "must be auto or required")
        where = "tool_choice.allowed_tools.tools"
        names = [
            _named(mapping(t, f"{where}[{k}]"), f"{where}[{k}]", known)
            for k, t in enumerate(array(allowed.get("tools"), where))
        ]
        if mode == "required":
            return {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}
            }, declarations
        # AUTO takes no allowedFunctionNames: offer only the allowed declarations instead.
        return None, [d for d in declarations if d["name"] in names]
    only_keys(choice, frozenset({"type", "function"}), "tool_choice")
    name = _named(choice, "tool_choice", known)
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}, declarations
