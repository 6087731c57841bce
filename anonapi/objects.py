"""Objects shared by the client, the settings and batches."""

from __future__ import annotations

from typing import Any, Dict


class RemoteAnonServer:
    """An anonymization server that anonapi talks to, known by a short name and its base URL."""

    def __init__(self, name: str, url: str):
        self.name = name
        self.url = url

    def to_dict(self) -> Dict[str, str]:
        """Return the server as ``{"name": ..., "url": ...}``, the form batch files store."""
        return {"name": self.name, "url": self.url}

    @classmethod
    def from_dict(cls, dict_in: Dict[str, Any]) -> "RemoteAnonServer":
        """Create a server from the output of ``to_dict``.

        :raises ValueError: if ``name`` or ``url`` is missing
        """
        try:
            return cls(name=str(dict_in["name"]), url=str(dict_in["url"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"A server needs a 'name' and a 'url', got {dict_in!r}") from error

    def __str__(self) -> str:
        return f"{self.name}: {self.url}"

    def __repr__(self) -> str:
        return f"RemoteAnonServer(name={self.name!r}, url={self.url!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RemoteAnonServer)
            and self.name == other.name
            and self.url == other.url
        )

    def __hash__(self) -> int:
        return hash((self.name, self.url))
