"""Agent identities: one Ethereum account per agent.

Keys live in ``<data_dir>/ledger/keys/<agent>.key`` (hex private key, created 0600 by
``os.open``, in a 0700 folder) or come from settings (``CSP_LEDGER_KEYS``, a JSON object
``{"agent": "0x<key>"}``), which win. The agent ``platform`` is the platform's own key
(it deploys and owns ``AuditAnchor``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from infra.private import write_private

PLATFORM_AGENT = "platform"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class KeyError_(LookupError):
    """No key for an agent."""


def validate_agent(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"illegal agent name {name!r}: use 1-64 of [A-Za-z0-9_-]")
    return name


class Keystore:
    def __init__(self, folder: Path, configured: Mapping[str, str] | None = None) -> None:
        self.folder = folder
        self.configured = dict(configured or {})
        self._loaded: dict[str, LocalAccount] = {}

    def _path(self, agent: str) -> Path:
        return self.folder / f"{validate_agent(agent)}.key"

    def get(self, agent: str) -> LocalAccount | None:
        cached = self._loaded.get(agent)
        if cached is not None:
            return cached
        key = self.configured.get(agent)
        if key is None:
            path = self._path(agent)
            if not path.is_file():
                return None
            key = path.read_text().strip()
        account: LocalAccount = Account.from_key(key)
        self._loaded[agent] = account  # keys are never changed once made
        return account

    def require(self, agent: str) -> LocalAccount:
        account = self.get(agent)
        if account is None:
            raise KeyError_(f"no key for agent {agent!r} (create it: csp ledger keys create {agent})")
        return account

    def create(self, agent: str) -> LocalAccount:
        """The agent's account, made (and stored 0600) if it has none yet."""
        existing = self.get(agent)
        if existing is not None:
            return existing
        account: LocalAccount = Account.create()
        write_private(self._path(agent), account.key.hex() + "\n")
        return account

    def agents(self) -> dict[str, str]:
        """agent -> address of every known key."""
        names = {p.stem for p in self.folder.glob("*.key")} | set(self.configured)
        out: dict[str, str] = {}
        for name in sorted(names):
            account = self.get(name)
            if account is not None:
                out[name] = account.address
        return out


def keystore_for(data_dir: Path, configured: Mapping[str, str] | None = None) -> Keystore:
    return Keystore(data_dir / "ledger" / "keys", configured)
