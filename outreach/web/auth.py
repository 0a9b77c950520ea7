"""Dashboard users (users.json, argon2 hashes, session versions), the session secret, CSRF tokens and the login rate limit."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hmac
import json
import os
import secrets
import threading
import unicodedata
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from outreach.authoring.accounts import MAX_PASSWORD_CHARS, USERS_FILE, normalize_name, read_users
from outreach.errors import OutreachError
from outreach.files import write_text_atomic
from outreach.web.permissions import Action, Role, allows

__all__ = [
    "Role", "User", "UserError", "UserStore", "LoginLimiter", "Attempt", "Refusal", "load_secret", "new_csrf_token", "csrf_ok",
    "USERS_FILE", "SECRET_FILE", "MIN_PASSWORD_CHARS",
]

SECRET_FILE = ".outreach-secret"
MIN_PASSWORD_CHARS = 8
MAX_NAME_CHARS = 64


class UserError(OutreachError):
    """A dashboard user name, role, password or users.json is invalid."""


@dataclass(frozen=True)
class User:
    """One dashboard account as stored in users.json."""

    name: str
    role: Role
    password_hash: str
    created: str = ""
    # Bumped by every logout; a session cookie carrying an older number is dead.
    session_version: int = 0

    def may(self, action: Action) -> bool:
        """Whether this user's role may do `action` (the table in outreach.web.permissions)."""
        return allows(self.role, action)

    @property
    def can_edit(self) -> bool:
        """Draft and edit scripts, confirm broadcasts, log handouts (the editor's work)."""
        return self.may(Action.DRAFT_SCRIPT)

    @property
    def can_review(self) -> bool:
        """Approve or reject scripts (never one they wrote or last edited)."""
        return self.may(Action.REVIEW_SCRIPT)

    @property
    def can_admin(self) -> bool:
        """Add and remove users and change their roles."""
        return self.may(Action.MANAGE_USERS)


def check_name(name: str) -> str:
    """Validate and normalise a user name. Raises UserError saying what is wrong."""
    name = normalize_name(name)
    if not name:
        raise UserError("用户名是空的；请填写一个名字，例如 wangxl 或 王秀兰")
    if len(name) > MAX_NAME_CHARS:
        raise UserError(f"用户名有 {len(name)} 个字符，太长了；最多 {MAX_NAME_CHARS} 个")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in name):
        raise UserError(f"用户名 {name!r} 里有空格或控制字符；请删掉")
    return name


def check_password(password: str) -> None:
    """Raises UserError if `password` is too short or too long."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"密码只有 {len(password)} 个字符；至少要 {MIN_PASSWORD_CHARS} 个")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError(f"密码超过了 {MAX_PASSWORD_CHARS} 个字符；请换一个短一些的")


def _stored_user(u: Any) -> User:
    """A users.json record as a User (ValueError, KeyError or TypeError when it is not one)."""
    return User(name=u["name"], role=Role(u["role"]), password_hash=u["hash"], created=u.get("created", ""),
                session_version=int(u.get("session", 0)))


class UserStore:
    """The users of one workspace, kept in `<workspace>/users.json` (mode 0600).

    The file is re-read on every look-up, so a user removed or demoted with the
    CLI loses access at their next request, without restarting the server.
    Changes are read-modify-write under an exclusive lock on `users.json.lock`,
    so `serve` (logouts) and the CLI (`user add/remove`) never lose each other's.
    """

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self.hasher = hasher or PasswordHasher()
        self._lock = threading.Lock()
        self._dummy: str | None = None

    @property
    def _dummy_hash(self) -> str:
        # Verified against when the user does not exist, so a wrong name costs
        # as much time as a wrong password and names cannot be probed.
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    def _read(self) -> list[User]:
        return read_users(self.path, _stored_user, UserError)

    def _write(self, users: list[User]) -> None:
        data = {"users": [{"name": u.name, "role": str(u.role), "hash": u.password_hash, "created": u.created,
                           "session": u.session_version} for u in users]}
        write_text_atomic(self.path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
        os.chmod(self.path, 0o600)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across threads and processes for one read-modify-write of users.json."""
        with self._lock:
            try:
                fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise UserError(f"{self.path.parent}：无法锁定用户文件（{exc.strerror}）；"
                                "请让工作区文件夹可写") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock

    def users(self) -> list[User]:
        """Every user, in the order they were added."""
        return self._read()

    def get(self, name: str) -> User | None:
        """The user called `name`, or None."""
        name = normalize_name(name)
        return next((u for u in self._read() if u.name == name), None)

    def add(self, name: str, role: str, password: str, *, now: datetime) -> User:
        """Add a user with an argon2 hash of `password`.

        Raises UserError for a bad name, role or password, or a name already taken.
        """
        name = check_name(name)
        try:
            role_ = Role(role)
        except ValueError:
            raise UserError(f"未知的角色 {role!r}；请用 {'、'.join(r.value for r in Role)}") from None
        check_password(password)
        with self._locked():
            users = self._read()
            if any(u.name == name for u in users):
                raise UserError(f"用户 {name!r} 已经在 {self.path} 里了；要替换，请先删除这个用户")
            user = User(name, role_, self.hasher.hash(password), now.isoformat(timespec="seconds"))
            self._write([*users, user])
        return user

    def remove(self, name: str) -> None:
        """Delete a user. Raises UserError if there is no such user."""
        name = normalize_name(name)
        with self._locked():
            users = self._read()
            kept = [u for u in users if u.name != name]
            if len(kept) == len(users):
                raise UserError(f"{self.path} 里没有用户 {name!r}；请运行 `outreach user list` 查看")
            self._write(kept)

    def set_role(self, name: str, role: str) -> User:
        """Give `name` another role; their sessions end (they log in again with the new rights).

        Raises UserError for an unknown user or role.
        """
        name = normalize_name(name)
        try:
            role_ = Role(role)
        except ValueError:
            raise UserError(f"未知的角色 {role!r}；请用 {'、'.join(r.value for r in Role)}") from None
        with self._locked():
            users = self._read()
            user = next((u for u in users if u.name == name), None)
            if user is None:
                raise UserError(f"{self.path} 里没有用户 {name!r}；请运行 `outreach user list` 查看")
            changed = dataclasses.replace(user, role=role_, session_version=user.session_version + 1)
            self._write([changed if u.name == name else u for u in users])
        return changed

    def end_sessions(self, name: str) -> None:
        """End every session of `name` (every browser): bump their session version. Unknown names are ignored."""
        name = normalize_name(name)
        with self._locked():
            users = self._read()
            if any(u.name == name for u in users):
                self._write([dataclasses.replace(u, session_version=u.session_version + 1) if u.name == name else u
                             for u in users])

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if `password` is theirs, else None; the work done is the same either way."""
        user = self.get(name) if name else None
        if len(password) > MAX_PASSWORD_CHARS:
            password = password[:MAX_PASSWORD_CHARS + 1]  # still wrong; only bounds the hashing work
        try:
            self.hasher.verify(user.password_hash if user else self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user


def load_secret(workspace: Path) -> str:
    """The session-signing secret in `<workspace>/.outreach-secret`, created (mode 0600) on first use."""
    path = Path(workspace) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UserError(f"{path}：无法创建登录会话密钥（{exc.strerror}）；"
                        "请让工作区文件夹可写") from exc
    else:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_urlsafe(48) + "\n")
    try:
        secret = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}：读不出登录会话密钥；请删掉这个文件后重新启动") from exc
    if len(secret) < 32:
        raise UserError(f"{path}：登录会话密钥太短；请删掉这个文件后重新启动")
    return secret


def new_csrf_token() -> str:
    """A fresh random token for the session's forms."""
    return secrets.token_urlsafe(32)


def csrf_ok(session: dict[str, Any], submitted: str | None) -> bool:
    """True when `submitted` equals the token stored in the session (constant-time)."""
    expected = session.get("csrf")
    if not isinstance(expected, str) or not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


@dataclass(frozen=True)
class Refusal:
    """Why a login attempt was refused: too many failures for the account or from the address."""

    scope: Literal["account", "address"]
    limit: int
    retry_after_s: int


@dataclass(frozen=True)
class Attempt:
    """A login attempt as the limiter counted it: refused (and why), or allowed with its ticket number."""

    refusal: Refusal | None
    ticket: int = 0


class LoginLimiter:
    """Failed logins counted per account and per client address in a sliding `window`.

    `attempt` counts an attempt as failed *before* its password is checked and
    refuses it once either count is at its limit; `succeeded` takes that count
    back and forgets the account's earlier failures (not the ones made while it
    was being checked). Check and count happen under one lock, so parallel
    requests cannot all pass the check before any failure is recorded. The counts
    live in the `serve` process's memory: one server process per workspace.
    """

    def __init__(self, *, max_failures: int = 5, max_per_address: int = 20,
                 window: timedelta = timedelta(minutes=5), max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.max_per_address = max_per_address
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[tuple[str, str], deque[tuple[datetime, int]]] = {}
        self._tickets = 0
        self._lock = threading.Lock()

    @staticmethod
    def _keys(name: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("account", normalize_name(name).casefold()[:MAX_NAME_CHARS * 2]), ("address", address)

    def _prune(self, key: tuple[str, str], now: datetime) -> deque[tuple[datetime, int]] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0][0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _refusal(self, name: str, address: str, now: datetime) -> Refusal | None:
        for key, limit in zip(self._keys(name, address), (self.max_failures, self.max_per_address), strict=True):
            times = self._prune(key, now)
            if times is not None and len(times) >= limit:
                wait = max(1, int((times[-limit][0] + self.window - now).total_seconds()) + 1)
                return Refusal(key[0], limit, wait)  # type: ignore[arg-type]
        return None

    def retry_after(self, name: str, address: str, now: datetime) -> int:
        """Seconds until this name and address may try again; 0 if they may now."""
        with self._lock:
            refusal = self._refusal(name, address, now)
            return refusal.retry_after_s if refusal else 0

    def attempt(self, name: str, address: str, now: datetime) -> Attempt:
        """Count a login attempt as failed, unless it must be refused (then count nothing and say why)."""
        with self._lock:
            refusal = self._refusal(name, address, now)
            if refusal is not None:
                return Attempt(refusal)
            self._tickets += 1
            for key in self._keys(name, address):
                self._add(key, now, self._tickets)
            return Attempt(None, self._tickets)

    def _add(self, key: tuple[str, str], now: datetime, ticket: int) -> None:
        if key not in self._failures and len(self._failures) >= self.max_keys:
            for old in list(self._failures):
                self._prune(old, now)
            if len(self._failures) >= self.max_keys:  # still full: forget the oldest key
                self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(key, deque()).append((now, ticket))

    def succeeded(self, name: str, address: str, ticket: int) -> None:
        """The attempt with `ticket` was right: take back its count and the account's earlier failures."""
        account, addr = self._keys(name, address)
        with self._lock:
            for key, keep in ((account, lambda t: t > ticket), (addr, lambda t: t != ticket)):
                times = self._failures.get(key)
                if times is None:
                    continue
                kept = deque(e for e in times if keep(e[1]))
                if kept:
                    self._failures[key] = kept
                else:
                    del self._failures[key]
