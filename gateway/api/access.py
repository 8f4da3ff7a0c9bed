"""Users, API keys and retired systems, event-sourced on the ``gateway.access`` topic.

The state is a pure fold over ``AccessEvent`` records (:func:`fold`); :class:`AccessStore`
appends events and refreshes its fold by reading the topic from where it left off.
Secrets never reach the log: passwords as argon2id hashes, API keys as SHA-256 of the key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from confluent_kafka import KafkaError, Message, Producer

from schemas.codec import Codec
from streams.admin import ensure_topics
from streams.catalog import TopicSpec, spec_for
from streams.clients import producer_config
from streams.reader import read_to_end

ROLES = ("viewer", "developer", "admin")
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
KEY_PREFIX = "csp_"
_HASHER = PasswordHasher()


class AccessError(ValueError):
    """A user or key operation that cannot be done (unknown user, name taken, bad role...)."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    password_hash: str
    created_at: int
    disabled: bool = False


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    username: str
    key_hash: str
    created_at: int
    revoked: bool = False


@dataclass(frozen=True)
class AccessState:
    users: Mapping[str, User] = field(default_factory=dict)
    keys: Mapping[str, ApiKey] = field(default_factory=dict)
    retired: Mapping[str, int] = field(default_factory=dict)  # system -> retired at (ms)


def apply(state: AccessState, ev: Mapping[str, Any]) -> AccessState:
    """One event folded into the state (pure; events that do not apply are ignored)."""
    kind, name, ts = ev["kind"], ev["username"], int(ev["timestamp"])
    users, keys, retired = dict(state.users), dict(state.keys), dict(state.retired)
    if kind == "USER_CREATED" and name not in users and ev.get("role") in ROLES and ev.get("password_hash"):
        users[name] = User(name, ev["role"], ev["password_hash"], ts)
    elif kind == "USER_DISABLED" and name in users:
        users[name] = replace(users[name], disabled=True)
    elif kind == "PASSWORD_SET" and name in users and ev.get("password_hash"):
        users[name] = replace(users[name], password_hash=ev["password_hash"])
    elif kind == "KEY_CREATED" and ev.get("key_id") and ev.get("key_hash") and ev["key_id"] not in keys:
        keys[ev["key_id"]] = ApiKey(ev["key_id"], name, ev["key_hash"], ts)
    elif kind == "KEY_REVOKED" and ev.get("key_id") in keys:
        keys[ev["key_id"]] = replace(keys[ev["key_id"]], revoked=True)
    elif kind == "SYSTEM_RETIRED" and ev.get("system"):
        retired[ev["system"]] = ts
    else:
        return state
    return AccessState(users, keys, retired)


def fold(events: Iterable[Mapping[str, Any]], state: AccessState | None = None) -> AccessState:
    out = state or AccessState()
    for ev in events:
        out = apply(out, ev)
    return out


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key(key: str) -> str | None:
    """The key id of an API key ``csp_<id>_<secret>``, or None when it is not one."""
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key[len(KEY_PREFIX):].split("_", 1)
    return parts[0] if len(parts) == 2 and parts[0] and parts[1] else None


def access_spec(topic: str) -> TopicSpec:
    return replace(spec_for("gateway.access"), name=topic)


class AccessStore:
    """Appends AccessEvents and keeps their fold (thread-safe)."""

    def __init__(self, bootstrap: str, codec: Codec, topic: str = "gateway.access") -> None:
        self.bootstrap = bootstrap
        self.codec = codec
        self.topic = topic
        self._state = AccessState()
        self._next = 0
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._refreshed = 0.0
        ensure_topics(bootstrap, [access_spec(topic)])

    @property
    def state(self) -> AccessState:
        return self._state

    def refresh(self) -> AccessState:
        with self._lock:
            events = []
            for offset, _k, value, _ts in read_to_end(self.bootstrap, self.topic, 0, self._next):
                self._next = offset + 1
                if value is None:
                    continue
                try:
                    name, rec = self.codec.decode(value)
                except Exception:  # noqa: BLE001 - a record we cannot read is not an access event
                    continue
                if name == "AccessEvent":
                    events.append(rec)
            self._state = fold(events, self._state)
            self._refreshed = time.monotonic()
            return self._state

    def refresh_if_older(self, seconds: float) -> AccessState:
        if time.monotonic() - self._refreshed > seconds:
            return self.refresh()
        return self._state

    def append(self, kind: str, username: str, *, actor: str | None = None, **fields: Any) -> None:
        rec = {"event_id": uuid.uuid4().hex, "kind": kind, "username": username, "role": None,
               "password_hash": None, "key_id": None, "key_hash": None, "system": None, "actor": actor,
               "timestamp": int(time.time() * 1000)}  # fmt: skip
        rec.update(fields)
        value = self.codec.encode("AccessEvent", rec)
        got: dict[str, Any] = {}

        def done(err: KafkaError | None, _msg: Message) -> None:
            got["err"] = err

        with self._lock:
            if self._producer is None:
                self._producer = Producer(producer_config(self.bootstrap))
            self._producer.produce(self.topic, key=username.encode(), value=value, partition=0, on_delivery=done)
            self._producer.flush(30)
        if got.get("err", "missing") is not None:
            raise AccessError(f"could not write to {self.topic}: {got.get('err', 'no delivery report in 30s')}")
        self.refresh()

    # -- operations ----------------------------------------------------------------

    def create_user(self, username: str, password: str, role: str, *, actor: str | None = None) -> User:
        if not USERNAME.match(username):
            raise AccessError(f"user name {username!r}: use 1-64 characters from [A-Za-z0-9_.@-]")
        if role not in ROLES:
            raise AccessError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise AccessError("the password needs at least 8 characters")
        if username in self.refresh().users:
            raise AccessError(f"user {username!r} exists already")
        self.append("USER_CREATED", username, actor=actor, role=role, password_hash=hash_password(password))
        user = self._state.users.get(username)
        if user is None or user.role != role:
            raise AccessError(f"user {username!r} was taken concurrently")
        return user

    def create_key(self, username: str, *, actor: str | None = None) -> tuple[ApiKey, str]:
        """A new API key of ``username``: (its record, the key itself — shown once, never stored)."""
        if username not in self.refresh().users:
            raise AccessError(f"no user {username!r}")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        self.append("KEY_CREATED", username, actor=actor, key_id=key_id, key_hash=hash_key(key))
        return self._state.keys[key_id], key

    def revoke_key(self, key_id: str, *, actor: str | None = None) -> ApiKey:
        key = self.refresh().keys.get(key_id)
        if key is None:
            raise AccessError(f"no API key {key_id!r}")
        self.append("KEY_REVOKED", key.username, actor=actor, key_id=key_id)
        return self._state.keys[key_id]

    def retire_system(self, system: str, *, actor: str) -> None:
        self.append("SYSTEM_RETIRED", actor, actor=actor, system=system)

    def authenticate(self, username: str, password: str) -> User | None:
        user = self.refresh_if_older(1.0).users.get(username)
        if user is None:
            user = self.refresh().users.get(username)
        if user is None or user.disabled:
            hash_password(password)  # same cost whether or not the user exists
            return None
        return user if verify_password(user.password_hash, password) else None

    def user_of_key(self, key: str) -> User | None:
        key_id = parse_key(key)
        if key_id is None:
            return None
        rec = self.refresh_if_older(5.0).keys.get(key_id)  # revocations elsewhere: seen within 5 s
        if rec is None:
            rec = self.refresh_if_older(1.0).keys.get(key_id)
        if rec is None or rec.revoked or not secrets.compare_digest(rec.key_hash, hash_key(key)):
            return None
        user = self._state.users.get(rec.username)
        return None if user is None or user.disabled else user
