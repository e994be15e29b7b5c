"""The account aggregate (pure): the balance is nothing but the account's events.

Events: ``AccountOpened``, ``MoneyDeposited``, and for a withdrawal
``WithdrawalAttempted`` followed by its outcome, ``MoneyWithdrawn`` or
``WithdrawalRejected`` (insufficient funds).  A rejection is a fact the business
keeps, so it is an event, not an error; errors are for requests that make no sense
(an amount that is not positive, an account that is not open, opening twice).

    >>> account = Account("acc-1")
    >>> _ = account.open("ada"), account.deposit(100)
    >>> [type(e).__name__ for e in account.withdraw(150)]
    ['WithdrawalAttempted', 'WithdrawalRejected']
    >>> account.balance, account.version
    (100, 4)

Amounts are integers in the smallest unit of the currency (cents), never floats.
"""

from __future__ import annotations

from dataclasses import dataclass

from strangler_events.aggregate import Aggregate, DomainEvent, applies, command

INSUFFICIENT_FUNDS = "insufficient funds"


@dataclass(frozen=True)
class AccountOpened(DomainEvent):
    owner: str


@dataclass(frozen=True)
class MoneyDeposited(DomainEvent):
    amount: int


@dataclass(frozen=True)
class WithdrawalAttempted(DomainEvent):
    amount: int


@dataclass(frozen=True)
class MoneyWithdrawn(DomainEvent):
    amount: int


@dataclass(frozen=True)
class WithdrawalRejected(DomainEvent):
    amount: int
    balance: int
    reason: str = INSUFFICIENT_FUNDS


class AccountError(Exception):
    """A request the account refuses outright (nothing is recorded)."""


class AccountNotOpened(AccountError):
    pass


class AccountAlreadyOpened(AccountError):
    pass


class InvalidAmount(AccountError, ValueError):
    pass


class Account(Aggregate):
    """A bank account; stream ``account-{id}``.

    account = Account("acc-1")
    account.open("ada")
    account.deposit(100)
    account.withdraw(30)  # [WithdrawalAttempted(30), MoneyWithdrawn(30)]
    """

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner: str | None = None
        self.balance = 0
        self.rejected_withdrawals = 0

    # --- commands: decide ---------------------------------------------------------

    @command
    def open(self, owner: str) -> list[DomainEvent]:
        if self.owner is not None:
            raise AccountAlreadyOpened(
                f"account {self.id!r} is already open (owner {self.owner!r})"
            )
        if not owner.strip():
            raise ValueError(f"account {self.id!r}: owner must not be blank, got {owner!r}")
        return [AccountOpened(owner)]

    @command
    def deposit(self, amount: int) -> list[DomainEvent]:
        self._check(amount)
        return [MoneyDeposited(amount)]

    @command
    def withdraw(self, amount: int) -> list[DomainEvent]:
        self._check(amount)
        if amount > self.balance:
            return [WithdrawalAttempted(amount), WithdrawalRejected(amount, self.balance)]
        return [WithdrawalAttempted(amount), MoneyWithdrawn(amount)]

    def _check(self, amount: int) -> None:
        if self.owner is None:
            raise AccountNotOpened(f"account {self.id!r} is not open")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidAmount(
                f"account {self.id!r}: amount must be a positive integer (cents), got {amount!r}"
            )

    # --- events: apply ------------------------------------------------------------

    @applies(AccountOpened)
    def _opened(self, event: AccountOpened) -> None:
        self.owner = event.owner

    @applies(MoneyDeposited)
    def _deposited(self, event: MoneyDeposited) -> None:
        self.balance += event.amount

    @applies(WithdrawalAttempted)
    def _attempted(self, event: WithdrawalAttempted) -> None:
        pass  # the request itself; its outcome is the next event

    @applies(MoneyWithdrawn)
    def _withdrawn(self, event: MoneyWithdrawn) -> None:
        self.balance -= event.amount

    @applies(WithdrawalRejected)
    def _rejected(self, event: WithdrawalRejected) -> None:
        self.rejected_withdrawals += 1
