"""URLs as they may be shown: in errors, ``ps``, logs and config messages, a URL never carries
the ``user:password@`` someone may have written into it."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["shown_host", "shown_url"]


def shown_host(url: str) -> str:
    """``host:port`` of a URL, without the ``user:password@`` it may carry."""
    return urlsplit(url).netloc.rpartition("@")[2]


def shown_url(url: str) -> str:
    """A URL as it may be shown: its ``user:password@`` left out."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
