"""Who may do what (``access:``): the first rule matching a caller's principal gives it its view
(a forced profile, servers, tool and prompt globs; a profile the client picks only narrows it)
and its rate limits. When the list exists, a caller no rule matches gets nothing.

Rate limits are token buckets per caller and per caller and tool, on the gateway's clock; over a
limit a ``tools/call`` is answered -32012 naming the limit and when it frees (the HTTP listener
sends that answer with 429 and ``Retry-After``). Buckets live in this process, so behind a load
balancer each replica counts its own, unless ``proxy.state.redis`` shares them (`SharedBuckets`;
a call Redis cannot count is counted here). A concurrency limit counts the calls of a caller
running in this process (a `Slot` each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from watchgate.config.schema import AccessRule, NameGlobs, ProfileConfig, RateConfig
from watchgate.errors import JsonRpcError
from watchgate.gateway.router.shared import SharedBuckets, SharedStateDown
from watchgate.protocol.identity import Principal
from watchgate.protocol.profiles import Profile

__all__ = ["NOTHING", "RATE_LIMITED", "Access", "Slot"]

RATE_LIMITED: Final = -32012
#: a view of nothing: no server, no tool, no prompt
NOTHING: Final = ProfileConfig(
    servers=(), tools=NameGlobs(allow=()), prompts=NameGlobs(allow=()), resources=NameGlobs(allow=())
)
_BUCKETS: Final = 10_000  # at most this many callers x tools remembered (the oldest go first)


class Access:
    def __init__(
        self,
        rules: Sequence[AccessRule] | None,
        profiles: Mapping[str, ProfileConfig],
        shared: SharedBuckets | None = None,
    ) -> None:
        self.configure(rules, profiles)
        self.shared = shared
        self._buckets: dict[tuple[object, ...], tuple[float, float]] = {}  # key -> (tokens, at)
        self._running: dict[tuple[int, str], int] = {}  # (rule, caller) -> calls not yet answered

    def configure(self, rules: Sequence[AccessRule] | None, profiles: Mapping[str, ProfileConfig]) -> None:
        """The rules and profiles of the config (a reload keeps the buckets)."""
        self.rules = tuple(rules) if rules is not None else None
        self._profiles = dict(profiles)
        self._views: dict[tuple[int | None, str | None], Profile] = {}

    @property
    def enabled(self) -> bool:
        return self.rules is not None

    def rule_for(self, principal: Principal) -> tuple[int, AccessRule] | None:
        """The first rule for ``principal``; None when no rule matches (it may do nothing)."""
        for index, rule in enumerate(self.rules or ()):
            match = rule.match
            if principal.is_one_of(match.user, match.users, match.groups, match.claims):
                return index, rule
        return None

    def view(self, principal: Principal, chosen: str | None) -> Profile:
        """What a caller sees: its rule's forced profile, the rule's own globs, and the profile
        it chose (each can only take away)."""
        found = self.rule_for(principal)
        key = (found[0] if found is not None else None, chosen)
        view = self._views.get(key)
        if view is not None:
            return view
        if found is None:
            view = Profile(f"no access for {principal.name}", NOTHING)
        else:
            index, rule = found
            layers: list[ProfileConfig | AccessRule] = [rule]
            if rule.profile is not None:
                layers.append(self._profiles.get(rule.profile, NOTHING))
            if chosen is not None:
                layers.append(self._profiles.get(chosen, NOTHING))
            view = Profile(chosen or rule.profile or f"access[{index}]", *layers)
        self._views[key] = view
        return view

    async def admit(self, principal: Principal, tool: str, now: float) -> Slot | None:
        """Count a ``tools/call`` of ``tool`` against the caller's limits; -32012 when over. With
        a concurrency limit, the call holds the `Slot` returned until its answer comes."""
        found = self.rule_for(principal)
        if found is None:
            raise JsonRpcError(-32010, f"no access rule lets {principal.name!r} call anything")
        index, rule = found
        caller = (index, principal.name)
        if rule.concurrency is not None and self._running.get(caller, 0) >= rule.concurrency:
            raise JsonRpcError(
                RATE_LIMITED,
                f"concurrency limit: {rule.concurrency} calls at once for {principal.name!r}; "
                "call again when one of them has answered",
                {"running": self._running[caller]},
            )
        for key, rate, what in (
            ((index, principal.name), rule.rate, "calls"),
            ((index, principal.name, tool), rule.tool_rate, f"calls of {tool!r}"),
        ):
            if rate is None:
                continue
            wait = (
                await self._take_shared(key, rate, now)
                if self.shared is not None
                else self._take(key, rate, now)
            )
            if wait is not None:
                raise JsonRpcError(
                    RATE_LIMITED,
                    f"rate limit: {rate.calls} {what} per {rate.per:g} s for {principal.name!r}; "
                    f"the next frees in {wait:.1f} s",
                    {"retryAfter": round(wait, 3)},
                )
        if rule.concurrency is None:
            return None
        self._running[caller] = self._running.get(caller, 0) + 1
        return Slot(self._running, caller)

    async def _take_shared(self, key: tuple[object, ...], rate: RateConfig, now: float) -> float | None:
        """From the bucket every replica shares: named by the caller, the tool and the limit
        itself (not the rule's place in the list, which may differ between replicas mid-rollout;
        a changed limit starts a fresh bucket)."""
        assert self.shared is not None
        name = ":".join(f"{len(str(part))}={part}" for part in key[1:])  # unambiguous whatever the names hold
        try:
            return await self.shared.take(
                f"watchgate:rate:{rate.calls}/{rate.per:g}:{name}", rate.calls, rate.per
            )
        except SharedStateDown:
            return self._take(key, rate, now)

    def _take(self, key: tuple[object, ...], rate: RateConfig, now: float) -> float | None:
        """One token from ``key``'s bucket: None if there was one, else the seconds until one is."""
        refill = rate.calls / rate.per
        tokens, at = self._buckets.pop(key, (float(rate.calls), now))
        tokens = min(float(rate.calls), tokens + (now - at) * refill)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            wait = None
        else:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / refill
        while len(self._buckets) > _BUCKETS:
            del self._buckets[next(iter(self._buckets))]
        return wait


class Slot:
    """One running call of a caller with a concurrency limit. Released exactly once: when the
    call's answer (or its end: cancelled, timed out, server gone) leaves the upstream's table, or
    at once when the call is answered without reaching a server."""

    __slots__ = ("_key", "_running", "handed_on")

    def __init__(self, running: dict[tuple[int, str], int], key: tuple[int, str]) -> None:
        self._running: dict[tuple[int, str], int] | None = running
        self._key = key
        self.handed_on = False  # the upstream holds it now, and releases it

    def release(self) -> None:
        if self._running is None:
            return
        left = self._running.get(self._key, 1) - 1
        if left > 0:
            self._running[self._key] = left
        else:
            self._running.pop(self._key, None)
        self._running = None
