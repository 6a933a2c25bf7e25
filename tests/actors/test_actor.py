"""Actor: mailbox semantics, ask/reply, stop, and incarnations."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
import trio.testing

from actors import Actor, AskTimeout, MailboxFull, Reply


@dataclass
class Put:
    value: int


@dataclass
class Get:
    reply: Reply[list[int]]


@dataclass
class Boom:
    reply: Reply[int]


@dataclass
class Crash:
    pass


@dataclass
class Block:
    release: trio.Event


Msg = Put | Get | Boom | Crash | Block


class Store(Actor[Msg]):
    def __init__(self, name: str = "store", *, mailbox_size: int = 128) -> None:
        super().__init__(name, mailbox_size=mailbox_size)
        self.values: list[int] = []
        self.starts = 0

    async def on_start(self) -> None:
        self.starts += 1

    async def handle(self, msg: Msg) -> None:
        match msg:
            case Put(value):
                self.values.append(value)
            case Get(reply):
                reply.set(list(self.values))
            case Boom(reply):
                reply.fail(KeyError("nope"))
            case Crash():
                raise ValueError("crash requested")
            case Block(release):
                await release.wait()


class Silent(Actor[Get]):
    async def handle(self, msg: Get) -> None:
        """Never answers."""


async def test_tell_is_handled_in_order() -> None:
    store = Store()
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for i in range(5):
            await store.tell(Put(i))
        assert await store.ask(Get, timeout=1) == [0, 1, 2, 3, 4]
        store.stop()


async def test_ask_reraises_reply_failure() -> None:
    store = Store()
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        with pytest.raises(KeyError, match="nope"):
            await store.ask(Boom, timeout=1)
        store.stop()


async def test_ask_times_out(autojump_clock: trio.testing.MockClock) -> None:
    silent = Silent("silent")
    async with trio.open_nursery() as nursery:
        await nursery.start(silent.run)
        start = trio.current_time()
        with pytest.raises(AskTimeout, match="silent"):
            await silent.ask(Get, timeout=2.5)
        assert trio.current_time() - start == pytest.approx(2.5)
        silent.stop()


async def test_ask_timeout_covers_waiting_for_mailbox_space(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = Store(mailbox_size=1)
    store.tell_nowait(Put(1))  # not running: the mailbox stays full
    with pytest.raises(AskTimeout):
        await store.ask(Get, timeout=1)
    assert store.mailbox_depth() == 1


async def test_tell_nowait_raises_mailbox_full() -> None:
    store = Store("tiny", mailbox_size=2)
    store.tell_nowait(Put(1))
    store.tell_nowait(Put(2))
    assert store.mailbox_depth() == 2
    with pytest.raises(MailboxFull, match="tiny"):
        store.tell_nowait(Put(3))
    assert store.mailbox_depth() == 2


async def test_full_mailbox_blocks_tell_until_consumed() -> None:
    store = Store(mailbox_size=1)
    release = trio.Event()
    delivered: list[int] = []

    async def producer() -> None:
        await store.tell(Put(2))
        delivered.append(2)

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.tell(Block(release))  # the actor picks this up and blocks in handle()
        await trio.testing.wait_all_tasks_blocked()
        await store.tell(Put(1))  # fills the single slot
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        assert delivered == []  # backpressure: still waiting, nothing dropped
        assert store.mailbox_depth() == 1
        release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert delivered == [2]
        assert await store.ask(Get, timeout=1) == [1, 2]
        store.stop()


async def test_stop_returns_normally_and_is_idempotent() -> None:
    store = Store()
    store.stop()  # not running: no-op
    assert not store.running
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        assert store.running
        store.stop()
        store.stop()
    assert not store.running


async def test_mailbox_persists_across_incarnations() -> None:
    store = Store()
    await store.tell(Put(1))
    await store.tell(Crash())
    await store.tell(Put(2))  # queued behind the crash: must survive it
    with pytest.raises(ValueError, match="crash requested"):
        await store.run()
    assert not store.running
    assert store.values == [1]
    assert store.mailbox_depth() == 1
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        assert await store.ask(Get, timeout=1) == [1, 2]
        store.stop()
    assert store.starts == 2


async def test_run_twice_concurrently_is_refused() -> None:
    store = Store("dup")
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        with pytest.raises(RuntimeError, match="already running"):
            await store.run()
        assert store.running  # the failed attempt did not clobber the live one
        store.stop()


class Pump(Actor[int]):
    """Overrides run() to drain the mailbox in batches, as a subprocess-owning actor would."""

    def __init__(self) -> None:
        super().__init__("pump", mailbox_size=8)
        self.batches: list[list[int]] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.incarnation():
            task_status.started()
            while True:
                batch = [await self.receive()]
                while True:
                    try:
                        batch.append(self.receive_nowait())
                    except trio.WouldBlock:
                        break
                self.batches.append(batch)

    async def handle(self, msg: int) -> None:
        raise NotImplementedError


async def test_overridden_run_uses_receive_and_stop() -> None:
    pump = Pump()
    with pytest.raises(trio.WouldBlock):
        pump.receive_nowait()
    for i in range(3):
        pump.tell_nowait(i)
    async with trio.open_nursery() as nursery:
        await nursery.start(pump.run)
        await trio.testing.wait_all_tasks_blocked()
        pump.tell_nowait(3)
        await trio.testing.wait_all_tasks_blocked()
        assert pump.running
        pump.stop()
    assert pump.batches == [[0, 1, 2], [3]]
    assert not pump.running


async def test_reply_is_one_shot() -> None:
    reply: Reply[int] = Reply()
    assert not reply.done
    with pytest.raises(trio.WouldBlock):
        reply.get_nowait()
    reply.set(3)
    assert reply.done
    assert await reply.wait() == 3
    assert reply.get_nowait() == 3
    with pytest.raises(RuntimeError, match="already"):
        reply.set(4)
    with pytest.raises(RuntimeError, match="already"):
        reply.fail(ValueError())
    failed: Reply[int] = Reply()
    failed.fail(ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        await failed.wait()
    with pytest.raises(ValueError, match="bad"):
        failed.get_nowait()


async def test_a_reply_waited_for_before_it_is_delivered_wakes_each_waiter() -> None:
    reply: Reply[int] = Reply()
    got: list[int] = []

    async def waiter() -> None:
        got.append(await reply.wait())

    with trio.fail_after(5):  # a waiter left asleep fails here rather than hanging the suite
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            reply.set(7)
    assert got == [7, 7]


def test_repr_shows_name_and_depth() -> None:
    store = Store("shown")
    store.tell_nowait(Put(1))
    assert repr(store) == "<Store 'shown' depth=1>"


async def test_receive_batch_takes_what_is_queued_up_to_the_limit() -> None:
    from actors import Actor

    class Quiet(Actor[int]):
        async def handle(self, msg: int) -> None:  # pragma: no cover - never run
            raise AssertionError

    actor = Quiet("q", mailbox_size=10)
    for n in range(5):
        actor.tell_nowait(n)
    assert await actor.receive_batch(3) == [0, 1, 2]
    assert await actor.receive_batch(10) == [3, 4]
    assert actor.drain_nowait() == []
    actor.tell_nowait(9)
    assert actor.drain_nowait() == [9]
    for n in range(4):
        actor.tell_nowait(n)
    assert actor.drain_nowait(3) == [0, 1, 2]
    assert actor.drain_nowait(3) == [3]


class Relay(Actor[int]):
    """Passes each message on to ``to``: a stage in a pipeline of actors."""

    def __init__(self, to: Actor[int]) -> None:
        super().__init__("relay")
        self.to = to

    async def handle(self, msg: int) -> None:
        self.to.tell_nowait(msg)


async def test_a_burst_crosses_an_actor_as_one_burst() -> None:
    """What is queued is handled without a scheduler pass in between, so the next stage can
    batch it (one write for the burst instead of one per message)."""
    pump = Pump()
    relay = Relay(pump)
    async with trio.open_nursery() as nursery:
        await nursery.start(pump.run)
        await nursery.start(relay.run)
        for i in range(5):
            relay.tell_nowait(i)
        await trio.testing.wait_all_tasks_blocked()
        relay.stop()
        pump.stop()
    assert pump.batches == [[0, 1, 2, 3, 4]]


async def test_has_unreceived_counts_a_message_handed_straight_to_a_waiting_actor() -> None:
    pump = Pump()
    assert not pump.has_unreceived
    pump.tell_nowait(1)
    assert pump.has_unreceived and pump.mailbox_depth() == 1  # queued
    async with trio.open_nursery() as nursery:
        await nursery.start(pump.run)
        await trio.testing.wait_all_tasks_blocked()
        assert not pump.has_unreceived  # taken; the actor waits again
        pump.tell_nowait(2)  # handed to the waiting actor, which has not run yet
        assert pump.has_unreceived and pump.mailbox_depth() == 0
        await trio.testing.wait_all_tasks_blocked()
        assert not pump.has_unreceived
        pump.stop()
    assert pump.batches == [[1], [2]]


async def test_a_tell_cancelled_on_a_full_mailbox_is_not_counted_and_drained_ones_are_not_either() -> None:
    """The count of unreceived mail is the actor's own (no statistics object per question): a
    message that never went in leaves it as it was, and whatever is taken out lowers it."""
    pump: Actor[int] = Actor("box", mailbox_size=1)
    pump.tell_nowait(1)
    with trio.move_on_after(0):  # the mailbox is full: this tell waits, then gives up
        await pump.tell(2)
    assert pump.drain_nowait() == [1]
    assert not pump.has_unreceived and pump.drain_nowait() == []
    async with trio.open_nursery() as nursery:
        pump.tell_nowait(3)
        nursery.start_soon(pump.tell, 4)  # waits for room: counted once it is in
        await trio.testing.wait_all_tasks_blocked()
        assert pump.has_unreceived and pump.receive_nowait() == 3
        await trio.testing.wait_all_tasks_blocked()
        assert pump.has_unreceived and pump.drain_nowait() == [4]
    assert not pump.has_unreceived


async def test_idle_only_while_waiting_with_nothing_handed_over() -> None:
    """The idle-writer bypass may write past the mailbox only while this holds."""
    gate = trio.Event()

    class SlowPump(Actor[int]):
        async def handle(self, msg: int) -> None:
            await gate.wait()  # busy with a message: a bypass now could overtake its write

    pump = SlowPump("pump")
    assert not pump.idle  # not running: nobody waits for mail
    async with trio.open_nursery() as nursery:
        await nursery.start(pump.run)
        await trio.testing.wait_all_tasks_blocked()
        assert pump.idle
        pump.tell_nowait(1)  # handed straight to the waiting actor, which has not run yet
        assert not pump.idle
        await trio.testing.wait_all_tasks_blocked()
        assert not pump.idle  # inside handle
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert pump.idle
        pump.stop()


async def test_an_actor_with_neither_handle_nor_run_says_so_on_its_first_message() -> None:
    class Mute(Actor[int]):
        pass

    mute = Mute("mute")
    mute.tell_nowait(1)
    with pytest.raises(NotImplementedError, match="Mute overrides neither handle"):
        await mute.run()
