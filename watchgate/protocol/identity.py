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

import msgspec

__all__ = ["ANONYMOUS", "Principal", "local_user", "of_uid"]


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    groups: tuple[str, ...] = ()
    proven_by: str  # token | uid | process | none


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
