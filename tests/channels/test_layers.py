"""Imports point one way (config <- storage <- flows <- bot, workers): the channel adapters know
their provider, not the survey nor the workers, and nothing below them reaches up into them (the
Zalo router is an internal detail of the Zalo adapters: flows/ never imports it). Read from the
source with ast, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

from config.settings import PROJECT_ROOT

# What a channel adapter may take from flows/: phone number forms, a property of the address.
ADAPTER_MAY_USE_FROM_FLOWS = frozenset({"flows.phones"})


def _imported(folder: str) -> dict[str, set[str]]:
    """file (relative to the project) -> the absolute modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
        modules: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
        found[str(Path(path).relative_to(PROJECT_ROOT))] = modules
    return found


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_channel_adapters_import_neither_the_workers_nor_the_survey() -> None:
    adapters = _imported("bot/channels")
    assert "bot/channels/zalo/router.py" in adapters  # the walk sees the Zalo packages
    wrong = {
        (file, module)
        for file, modules in adapters.items()
        for module in modules
        if _under(module, "workers")
        or (_under(module, "flows") and module not in ADAPTER_MAY_USE_FROM_FLOWS)
        or (_under(module, "bot") and not _under(module, "bot.channels") and module not in _BOT_COMMON)
    }
    assert wrong == set()


# What the adapters share with the rest of the web process: request bodies, errors, the context.
_BOT_COMMON = frozenset({"bot.bodies", "bot.errors", "bot.context"})


def test_nothing_below_the_adapters_imports_them() -> None:
    for folder in ("flows", "storage", "config"):
        wrong = {
            (file, module)
            for file, modules in _imported(folder).items()
            for module in modules
            if _under(module, "bot") or _under(module, "workers")
        }
        assert wrong == set(), folder
