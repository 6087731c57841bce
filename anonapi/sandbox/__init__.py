"""A local IDIS-compatible anonymization server for trying anonapi and for tests.

``from anonapi.sandbox import Sandbox`` imports the server parts only when
used, because they need the ``sandbox`` extra (``pip install anonapi[sandbox]``)
and this package is also imported by the pytest plugin of every installation.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Sandbox", "SandboxConfig", "SandboxServer", "Faults"]


def __getattr__(name: str) -> Any:
    if name == "Sandbox":
        from anonapi.sandbox.context import Sandbox

        return Sandbox
    if name in ("SandboxConfig", "SandboxServer"):
        from anonapi.sandbox import server

        return getattr(server, name)
    if name == "Faults":
        from anonapi.sandbox.faults import Faults

        return Faults
    raise AttributeError(f"module 'anonapi.sandbox' has no attribute {name!r}")
