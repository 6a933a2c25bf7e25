"""Security plugins on the message path (design.md §7, issue 4).

Write a plugin by subclassing :class:`Plugin` (see ``docs/development/plugin-development.md``);
configure plugins under ``plugins:`` (``docs/plugins.md``). The pipeline that runs them is
``watchgate.plugins.pipeline``; the built-ins live in this package, one module each.
"""

from watchgate.plugins.api import (
    ALLOW,
    Allow,
    Deny,
    Modify,
    NoConfig,
    Plugin,
    PluginContext,
    PluginMessage,
    PluginSetup,
    Verdict,
    allow,
    deny,
    modify,
)

__all__ = [
    "ALLOW",
    "Allow",
    "Deny",
    "Modify",
    "NoConfig",
    "Plugin",
    "PluginContext",
    "PluginMessage",
    "PluginSetup",
    "Verdict",
    "allow",
    "deny",
    "modify",
]
