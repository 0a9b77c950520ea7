"""Who approves from the command line: the dashboard's accounts (users.json), checked without the web app.

The browser knows its reviewer by their login; `outreach scripts approve --by NAME` knows them by
the same account and password. The file is the one `outreach user add` and the web's `UserStore`
write; this module is its one reader (`read_users`, which `UserStore` calls too), which keeps the
CLI's approval below the web layer.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from outreach.authoring.review import ReviewError
from outreach.content.names import did_you_mean
from outreach.errors import OutreachError

__all__ = ["APPROVER_ROLES", "MAX_PASSWORD_CHARS", "USERS_FILE", "Account", "approver", "check_password",
           "normalize_name", "read_accounts", "read_users"]

USERS_FILE = "users.json"
# The roles that may approve (the web's Action.REVIEW_SCRIPT; tests/authoring/test_cli_approval.py checks they agree).
APPROVER_ROLES = ("reviewer", "admin")
# The longest password the dashboard accepts (web.auth.check_password).
MAX_PASSWORD_CHARS = 256
T = TypeVar("T")


@dataclass(frozen=True)
class Account:
    """One dashboard account: its name, role and argon2 password hash."""

    name: str
    role: str
    password_hash: str


def normalize_name(name: str) -> str:
    """The stored form of a user name: NFC, surrounding spaces removed."""
    return unicodedata.normalize("NFC", name).strip()


def read_users(users_file: Path, entry: Callable[[Any], T], error: type[OutreachError]) -> list[T]:
    """Every user of users.json made by `entry` from its stored record ([] when there is no file).

    Raises `error` when the file cannot be read or is not a users file: `entry` raising ValueError,
    KeyError or TypeError says a record is not what `outreach user add` writes.
    """
    try:
        raw = Path(users_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise error(f"{users_file}：读不出来（{exc.strerror}）；请检查文件权限") from exc
    try:
        return [entry(u) for u in json.loads(raw)["users"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise error(f"{users_file}：不是有效的用户文件（{exc}）；请修好它，或删掉后用 `outreach user add` "
                    "重新添加用户") from exc


def read_accounts(users_file: Path) -> list[Account]:
    """Every account in users.json ([] when there is no file).

    Raises ReviewError when the file cannot be read or is not a users file.
    """
    return read_users(users_file, lambda u: Account(str(u["name"]), str(u["role"]), str(u["hash"])), ReviewError)


def approver(users_file: Path, name: str, hint: str) -> Account:
    """The account `name` if it may approve scripts (reviewer or admin).

    `hint` is the command that adds a reviewer, shown in every refusal.
    Raises ReviewError: no accounts yet, no such account (with the closest names), or a role that may not approve.
    """
    accounts = read_accounts(users_file)
    if not accounts:
        raise ReviewError(f"还没有审核人账号，无法确认“{name}”的身份；先运行 `{hint}`，再用 --by 姓名 批准")
    wanted = normalize_name(name)
    account = next((a for a in accounts if a.name == wanted), None)
    reviewers = [a.name for a in accounts if a.role in APPROVER_ROLES]
    if account is None:
        named = did_you_mean(wanted, dict.fromkeys(reviewers, ""), cutoff=0.3) or (
            f"审核人有：{'、'.join(reviewers)}；" if reviewers else "")
        raise ReviewError(f"“{wanted}”不是已登记的用户；{named}新审核人请用 `{hint}` 添加")
    if account.role not in APPROVER_ROLES:
        who = f"审核人有：{'、'.join(reviewers)}" if reviewers else f"先用 `{hint}` 添加审核人"
        raise ReviewError(f"“{account.name}”的角色是 {account.role}，不能批准稿件；只有 reviewer 或 admin 可以批准；{who}")
    return account


def check_password(account: Account, password: str) -> None:
    """Raise ReviewError unless `password` is the account's (the one they log in to the dashboard with)."""
    try:
        # A longer password is wrong anyway; cut it so it cannot make the hashing slow.
        PasswordHasher().verify(account.password_hash, password[:MAX_PASSWORD_CHARS + 1])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise ReviewError(f"“{account.name}”的密码不对，没有批准；请输入登录管理后台用的密码"
                          "（忘了密码，请管理员删除账号后用 `outreach user add` 重新添加）") from None
