"""What the gateway's actors say to each other.

Actors share nothing but these messages (and the handles inside them, which are mailboxes).
Frozen dataclasses with slots: they are created per request on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watchgate.gateway.ports import CallSlot, ClientPort, UpstreamPort

if TYPE_CHECKING:
    import msgspec

    from actors import Reply
    from watchgate.config.schema import AccessRule, DiscoveryConfig, ProfileConfig
    from watchgate.hooks import CallContext
    from watchgate.protocol.curation import Curation
    from watchgate.protocol.jsonrpc import Message


# --- client -> router ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClientRequest:
    client: ClientPort
    msg: Message


@dataclass(frozen=True, slots=True)
class ClientNotification:
    client: ClientPort
    msg: Message


# --- router/client -> upstream -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ForwardRequest:
    """A client's request, already renamed to the upstream's own names (and past ``on_request``)."""

    client: ClientPort
    msg: Message
    method: str
    ctx: CallContext | None = None  # None when no message hooks are configured
    # the top level of msg.params as the router decoded it, so the upstream need not decode it
    # again (to swap a progress token); None when unknown or when a hook changed the message
    fields: dict[str, msgspec.Raw] | None = None
    slot: CallSlot | None = None  # its place under the caller's concurrency limit, freed with its answer


@dataclass(frozen=True, slots=True)
class InternalRequest:
    """A request the gateway itself makes (list calls, setLevel); the answer goes to ``reply``."""

    method: str
    params: Any
    reply: Reply[msgspec.Raw]


@dataclass(frozen=True, slots=True)
class ForwardCancel:
    """The client gave up on one of its requests: tell the upstream holding it, if any."""

    client: ClientPort
    request_id: int | str
    reason: str | None


@dataclass(frozen=True, slots=True)
class ForwardAnswer:
    """A client's response to a request the upstream sent it (id is still the client-side id)."""

    msg: Message


@dataclass(frozen=True, slots=True)
class ClientGone:
    """A client detached: its in-flight requests are cancelled upstream. ``settled``: it had
    nothing in flight or asked of it and the notifier never knew it (a 2026-07-28 HTTP request
    answered): only the router's own records of it go, no mail to each upstream."""

    client_id: int
    settled: bool = False


# --- upstream -> router / notifier ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UpstreamReady:
    server: str
    capabilities: dict[str, Any]
    server_info: dict[str, Any]
    instructions: str | None
    protocol_version: str


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    """A supervisor event for an upstream child (starting, exited, backoff, failed, stopped)."""

    server: str
    kind: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class UpstreamNotification:
    server: str
    msg: Message


@dataclass(frozen=True, slots=True)
class RefreshLists:
    """An upstream said ``*/list_changed``: re-list that kind and tell clients once it is done."""

    server: str
    kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListsFetched:
    server: str
    fetch_id: int
    lists: dict[str, list[dict[str, msgspec.Raw]]]
    withheld: dict[str, list[dict[str, msgspec.Raw]]] = field(default_factory=dict)  # hidden by plugins


# --- to the notification actor -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Broadcast:
    msg: Message


@dataclass(frozen=True, slots=True)
class Subscribers:
    """Who is subscribed to a (public) resource URI now; resources/updated goes only to them."""

    uri: str
    client_ids: frozenset[int]


@dataclass(frozen=True, slots=True)
class ClientAttached:
    client: ClientPort


@dataclass(frozen=True, slots=True)
class ClientDetached:
    client_id: int


# --- reload -> router ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AddUpstream:
    actor: UpstreamPort
    prefixed: bool = True  # its names carry its prefix


@dataclass(frozen=True, slots=True)
class RemoveUpstream:
    server: str


@dataclass(frozen=True, slots=True)
class SetProfiles:
    """The config's profiles changed (reload): lists and calls follow the new ones."""

    profiles: Mapping[str, ProfileConfig]
    discovery: DiscoveryConfig | None = None  # the config's: search mode follows a reload too
    access: tuple[AccessRule, ...] | None = None  # the config's access rules


@dataclass(frozen=True, slots=True)
class Recurate:
    """A running server's tool manager rules changed: its lists are shown anew, no restart."""

    server: str
    curation: Curation
