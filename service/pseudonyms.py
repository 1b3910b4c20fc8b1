"""Customers as Prefect artifacts, events and logs name them: by a keyed pseudonym, never
the id, unless the settings opt in. The ids stay in the service's SQL tables.

A pseudonym is the first 12 hex digits of HMAC-SHA256 of the id: whoever holds the key
can find a customer's pseudonym (hash the id), nobody without it can go back. Without a
configured key each process draws a random one, so pseudonyms link nothing across runs."""

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

PSEUDONYM_DIGITS = 12


def pseudonym(customer_id: str, key: bytes) -> str:
    return hmac.new(key, customer_id.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_DIGITS]


@functools.cache
def process_key() -> bytes:
    """A random key, one per process."""
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class CustomerNames:
    """How a table outside SQL names customers: by pseudonym under `key`, or by id (None)."""

    key: bytes | None = field(default=None, repr=False)

    @property
    def column(self) -> str:
        return "customer_id" if self.key is None else "pseudonym"

    def __call__(self, customer_id: str) -> str:
        return customer_id if self.key is None else pseudonym(customer_id, self.key)

    def listed(self, customer_ids: list[str], more: bool = False) -> str:
        """'pseudonyms 1a2b.., 3c4d..' (or 'ids ...'), ending in '...' when there are `more`."""
        shown = ", ".join(map(self, customer_ids)) + (", ..." if more else "")
        return f"{'ids' if self.key is None else 'pseudonyms'} {shown}"


BY_ID = CustomerNames()
