"""The account example: its behaviour as given-when-then, its repository on a real
event store, snapshots against replay from zero (a property), and the runnable story."""

from __future__ import annotations

import doctest
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import examples.account.account
from examples.account.__main__ import run
from examples.account.account import (
    Account,
    AccountAlreadyOpened,
    AccountError,
    AccountNotOpened,
    AccountOpened,
    InvalidAmount,
    MoneyDeposited,
    MoneyWithdrawn,
    WithdrawalAttempted,
    WithdrawalRejected,
)
from strangler_events.eventstore.factory import open_event_store
from strangler_events.repository import Repository, handle
from strangler_events.testing import AggregateFixture

account = AggregateFixture(Account, id="acc-1")
opened = AccountOpened("ada")


# --- behaviour ----------------------------------------------------------------------


def test_opening_an_account() -> None:
    after = account.given().when(lambda a: a.open("ada")).then(AccountOpened("ada"))
    assert (after.owner, after.balance) == ("ada", 0)
    account.given(opened).when(lambda a: a.open("bob")).then_raises(
        AccountAlreadyOpened, match="'acc-1' is already open \\(owner 'ada'\\)"
    )
    account.given().when(lambda a: a.open("  ")).then_raises(ValueError, match="blank")


def test_depositing() -> None:
    after = account.given(opened, MoneyDeposited(20)).when(lambda a: a.deposit(30))
    assert after.then(MoneyDeposited(30)).balance == 50
    account.given().when(lambda a: a.deposit(30)).then_raises(AccountNotOpened, match="not open")
    for bad in (0, -5, True):
        outcome = account.given(opened).when(lambda a: a.deposit(bad))  # noqa: B023 - run now
        outcome.then_raises(InvalidAmount, match=f"positive integer \\(cents\\), got {bad!r}")


def test_a_withdrawal_with_enough_money() -> None:
    after = (
        account.given(opened, MoneyDeposited(100))
        .when(lambda a: a.withdraw(100))
        .then(WithdrawalAttempted(100), MoneyWithdrawn(100))
    )
    assert (after.balance, after.rejected_withdrawals) == (0, 0)


def test_a_withdrawal_without_enough_money_is_rejected_and_recorded() -> None:
    after = (
        account.given(opened, MoneyDeposited(40))
        .when(lambda a: a.withdraw(50))
        .then(WithdrawalAttempted(50), WithdrawalRejected(50, balance=40))
    )
    assert (after.balance, after.rejected_withdrawals) == (40, 1)
    account.given().when(lambda a: a.withdraw(5)).then_raises(AccountNotOpened)


def test_the_balance_is_derived_from_the_events() -> None:
    history = (
        opened,
        MoneyDeposited(100),
        WithdrawalAttempted(30),
        MoneyWithdrawn(30),
        WithdrawalAttempted(500),
        WithdrawalRejected(500, balance=70),
        MoneyDeposited(5),
    )
    state = account.given(*history).aggregate
    assert (state.balance, state.rejected_withdrawals, state.version) == (75, 1, 7)


def test_the_module_example_runs() -> None:
    result = doctest.testmod(examples.account.account)
    assert (result.failed, result.attempted > 0) == (0, True)


# --- stored ---------------------------------------------------------------------------


async def test_commands_on_the_sqlite_store(tmp_path: Path) -> None:
    store = open_event_store(f"sqlite:///{tmp_path}/events.db")
    await store.init()
    try:
        accounts = Repository(store, Account, "account", snapshot_every=2)
        await handle(accounts, "acc-1", lambda a: a.open("ada"))
        await handle(accounts, "acc-1", lambda a: a.deposit(80))
        done = await handle(accounts, "acc-1", lambda a: a.withdraw(100))
        assert done.events == (WithdrawalAttempted(100), WithdrawalRejected(100, balance=80))
        snapshot = await store.load_snapshot("account-acc-1")
        assert snapshot is not None and snapshot.version == 4
        assert snapshot.state == {"owner": "ada", "balance": 80, "rejected_withdrawals": 1}
        assert (await accounts.load("acc-1")).balance == 80
    finally:
        await store.close()


async def test_the_runnable_story(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/story.db"
    assert await run(url) == [
        "balance of acc-1: 70",
        "  1 AccountOpened {'owner': 'ada'}",
        "  2 MoneyDeposited {'amount': 100}",
        "  3 WithdrawalAttempted {'amount': 30}",
        "  4 MoneyWithdrawn {'amount': 30}",
        "  5 WithdrawalAttempted {'amount': 500}",
        "  6 WithdrawalRejected {'amount': 500, 'balance': 70, 'reason': 'insufficient funds'}",
    ]
    again = await run(url)
    assert again[:2] == [
        "refused: account 'acc-1' is already open (owner 'ada')",
        "balance of acc-1: 140",
    ]


# --- snapshots against replay from zero ---------------------------------------------

Command = tuple[str, int]
commands = st.one_of(
    st.just(("open", 0)),
    st.tuples(st.just("deposit"), st.integers(-5, 100)),
    st.tuples(st.just("withdraw"), st.integers(1, 150)),
)
# Each batch is one load-decide-save, by the repository that snapshots or by the plain one.
batches = st.lists(st.tuples(st.lists(commands, min_size=1, max_size=4), st.booleans()), max_size=8)


def decide(a: Account, command: Command) -> None:
    kind, amount = command
    try:
        if kind == "open":
            a.open("ada")
        elif kind == "deposit":
            a.deposit(amount)
        else:
            a.withdraw(amount)
    except AccountError:
        pass  # refused: records nothing, as in production


@settings(max_examples=60, deadline=None)
@given(batches=batches, every=st.integers(1, 5))
async def test_snapshots_give_the_same_state_as_replaying_every_event(
    batches: list[tuple[list[Command], bool]], every: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = open_event_store(f"sqlite:///{directory}/events.db")
        await store.init()
        try:
            snapshotting = Repository(store, Account, "account", snapshot_every=every)
            replaying = Repository(store, Account, "account")
            model = Account("p-1")  # the same commands, in memory only
            snapshot_at = None  # the version the latest snapshot should cover
            for batch, with_snapshots in batches:
                repository = snapshotting if with_snapshots else replaying
                loaded = await repository.load("p-1")
                for command in batch:
                    decide(loaded, command)
                    decide(model, command)
                before = loaded.committed_version
                await repository.save(loaded)
                model.mark_saved()
                if with_snapshots and loaded.version // every > before // every:
                    snapshot_at = loaded.version
                fast, slow = await snapshotting.load("p-1"), await replaying.load("p-1")
                assert (fast.version, fast.snapshot()) == (slow.version, slow.snapshot())
                assert (slow.version, slow.snapshot()) == (model.version, model.snapshot())
            snapshot = await store.load_snapshot("account-p-1")
            assert (None if snapshot is None else snapshot.version) == snapshot_at
        finally:
            await store.close()
