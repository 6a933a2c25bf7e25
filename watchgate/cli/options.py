"""Options more than one command takes, checked the way argparse checks types."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:  # `ps` and `attach` parse these options too: the config loads only when given
    from watchgate.config import GatewayConfig

__all__ = ["listen_address", "with_http"]


def listen_address(text: str) -> str:
    """``--http``'s argument, checked as argparse checks types: a bad one is a usage error."""
    from watchgate.config.schema import check_listen

    try:
        return check_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("listen: ")) from None


def with_http(config: GatewayConfig, listen: str | None) -> GatewayConfig:
    """The config as ``--http HOST:PORT`` changes it: clients over HTTP on that address."""
    if listen is None:
        return config
    http = msgspec.structs.replace(config.proxy.http, listen=listen)
    proxy = msgspec.structs.replace(config.proxy, transport="http", http=http)
    return msgspec.structs.replace(config, proxy=proxy)
