"""Who is calling: one `Principal` per client, however it was proven.

A client of the HTTP listener proves itself with a bearer token the config names (``proxy.http.
auth.tokens``: a name and groups per token); one on the daemon's socket by its uid (the kernel's
``SO_PEERCRED``); ``watchgate run`` on stdio is the user who runs it. The principal goes with the
client's calls into the plugins' context, the audit log and ``ps --clients``; a token never does.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Mapping

import msgspec

__all__ = ["ANONYMOUS", "Principal", "kept_claims", "local_user", "of_uid"]


#: claims of a token that say nothing of who the caller is (kept out of `Principal.claims`)
_PROTOCOL_CLAIMS = frozenset(
    {"iss", "aud", "exp", "nbf", "iat", "jti", "azp", "client_id", "scope", "scp", "sid"}
)
_MAX_CLAIMS = 32  # claims kept per principal, each at most _MAX_CLAIM values of _MAX_VALUE chars
_MAX_CLAIM = 32
_MAX_VALUE = 256


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    groups: tuple[str, ...] = ()
    proven_by: str  # token | oauth | uid | process | none
    #: what its token said of it beyond name and groups (``tenant``, ``roles``…), for the
    #: ``claims`` of access rules; each value as strings. Never logged, audited or exported.
    claims: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def is_one_of(
        self,
        user: str | None = None,
        users: tuple[str, ...] = (),
        groups: tuple[str, ...] = (),
        claims: Mapping[str, str | tuple[str, ...]] | None = None,
    ) -> bool:
        """A rule's ``match``: every key given must hold (``groups``: any one of them; each of
        ``claims``: one of its values, or for a list claim, one of the claim's values)."""
        if user is not None and self.name != user:
            return False
        if users and self.name not in users:
            return False
        if groups and not set(groups) & set(self.groups):
            return False
        for name, wanted in (claims or {}).items():
            accepted = {wanted} if isinstance(wanted, str) else set(wanted)
            if not accepted & set(self.claim(name)):
                return False
        return True

    def claim(self, name: str) -> tuple[str, ...]:
        """The values of claim ``name`` (none when the token did not carry it)."""
        for key, values in self.claims:
            if key == name:
                return values
        return ()


def kept_claims(
    claims: dict[str, object], *, besides: tuple[str, ...] = ()
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The claims worth keeping of a token: strings, numbers, booleans and lists of them, as
    strings; not the protocol's own (issuer, audience, times, scopes) nor ``besides``; bounded."""
    kept: list[tuple[str, tuple[str, ...]]] = []
    for key, value in claims.items():
        if key in _PROTOCOL_CLAIMS or key in besides or len(kept) >= _MAX_CLAIMS:
            continue
        items = value if isinstance(value, list) else [value]
        values = tuple(
            _text(item)[:_MAX_VALUE]
            for item in items[:_MAX_CLAIM]
            if isinstance(item, str | int | float | bool)
        )
        if values:
            kept.append((key, values))
    return tuple(kept)


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


#: a client nothing proved (a loopback HTTP listener without tokens)
ANONYMOUS = Principal(name="anonymous", proven_by="none")


def of_uid(uid: int, *, proven_by: str = "uid") -> Principal:
    """The user of ``uid`` with its OS groups (the uid itself when the system has no name for it)."""
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return Principal(name=f"uid {uid}", proven_by=proven_by)
    try:
        gids = os.getgrouplist(entry.pw_name, entry.pw_gid)
    except OSError:
        gids = [entry.pw_gid]
    groups = []
    for gid in gids:
        try:
            groups.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            groups.append(str(gid))
    return Principal(name=entry.pw_name, groups=tuple(dict.fromkeys(groups)), proven_by=proven_by)


def local_user() -> Principal:
    """The user who runs this process (``watchgate run`` on stdio)."""
    return of_uid(os.getuid(), proven_by="process")
