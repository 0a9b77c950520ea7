"""The county's MQTT broker as the server drives it: settings, credentials files, reload, a paho client.

The server owns two files the broker reads: the password file (one line per
station, in Mosquitto's PBKDF2-SHA512 `$7$` format, so no plaintext token is
kept) and the ACL file (each station reads and writes only its own topics).
On every registration or revocation the server rewrites both atomically,
keeping the old files' owner and mode (Mosquitto drops to its own user and
must still read them), then sends SIGHUP to the broker's pid file: Mosquitto
reloads both files and disconnects clients whose credentials went away.

The broker must run with `use_username_as_clientid true` on its listener: the
client id is then the user name, so one station cannot take over another's
session (Mosquitto drops the older client of a client id). The server
therefore logs in under one user name per role (`alert_username` for the
alert sender), so its listener and an alert being sent never share a client id.
Any MQTT 3.1.1/5 broker with a file-based or dynamic-security backend can
take the same role; only `reload_broker` is Mosquitto-specific.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import signal
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from outreach.station.protocol import STATION_READS, STATION_WRITES, TOPIC_ROOT, StationError

BROKER_FILE = "broker.toml"
_ENV = {"url": "OUTREACH_BROKER_URL", "username": "OUTREACH_BROKER_USERNAME",
        "password": "OUTREACH_BROKER_PASSWORD", "password_file": "OUTREACH_BROKER_PASSWORD_FILE",
        "acl_file": "OUTREACH_BROKER_ACL_FILE", "pid_file": "OUTREACH_BROKER_PID_FILE"}
_PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker listens, the server's own account, and the files the server writes for it."""

    url: str
    username: str = "outreach-server"
    password: str = ""
    password_file: Path | None = None
    acl_file: Path | None = None
    pid_file: Path | None = None

    @property
    def alert_username(self) -> str:
        """The server's second account (same password), for alerts sent while the listener is connected.

    With `use_username_as_clientid`, two clients of one user name would knock each
    other off; tools that watch the broker by hand log in under this name too.
    """
        return f"{self.username}-alert"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 1883


def load_broker_settings(workspace: Path) -> BrokerSettings | None:
    """`[broker]` from `workspace/broker.toml`, each key overridden by its OUTREACH_BROKER_* variable.

    None when no broker URL is set anywhere (stations then work over HTTP only).
    """
    data: dict[str, str] = {}
    path = Path(workspace) / BROKER_FILE
    if path.is_file():
        try:
            data = dict(tomllib.loads(path.read_text(encoding="utf-8")).get("broker", {}))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise StationError(f"{path}：不是有效的 TOML（{exc}）；请修正语法") from exc
        unknown = sorted(set(data) - set(_ENV))
        if unknown:
            raise StationError(f"{path}：[broker] 里有未知的键 {unknown[0]}；可用的键：{', '.join(_ENV)}")
    for key, env in _ENV.items():
        if os.environ.get(env):
            data[key] = os.environ[env]
    if not data.get("url"):
        return None
    if urlsplit(data["url"]).scheme not in ("mqtt", "tcp"):
        raise StationError(f"[broker] url {data['url']!r}：请写成 mqtt://HOST:PORT")
    files = {k: Path(data[k]) if data.get(k) else None for k in ("password_file", "acl_file", "pid_file")}
    return BrokerSettings(url=data["url"], username=data.get("username") or "outreach-server",
                          password=data.get("password", ""), **files)


def mosquitto_hash(password: str, *, salt: bytes | None = None) -> str:
    """A Mosquitto 2.0 password-file hash (`$7$` = PBKDF2-SHA512) of `password`."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS)
    return f"$7${_PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(server_user: str) -> str:
    """The ACL: the server reads and writes every station topic; each station only its own leaves."""
    lines = ["# 由 outreach（outreach/delivery/stations/broker.py）生成；手工修改会被覆盖。",
             f"user {server_user}", f"topic readwrite {TOPIC_ROOT}/#", "",
             f"user {server_user}-alert", f"topic readwrite {TOPIC_ROOT}/#", ""]
    lines += [f"pattern write {TOPIC_ROOT}/%u/{leaf.value}" for leaf in STATION_WRITES]
    lines += [f"pattern read {TOPIC_ROOT}/%u/{leaf.value}" for leaf in STATION_READS]
    return "\n".join(lines) + "\n"


def _write_keeping_owner(path: Path, text: str) -> None:
    # The broker runs as its own user: a new file must keep the old one's owner and mode.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        st = path.stat()
        os.chmod(tmp, st.st_mode & 0o777)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
    except FileNotFoundError:
        os.chmod(tmp, 0o640)
    os.replace(tmp, path)


def write_auth_files(settings: BrokerSettings, stations: Iterable[tuple[str, str]], *, server_hash: str) -> bool:
    """Write the password file (server account + `(station_id, broker_hash)` of active stations) and the ACL.

    Returns False when the settings name no files (a broker managed some other way).
    """
    if settings.password_file is None or settings.acl_file is None:
        return False
    lines = [f"{settings.username}:{server_hash}", f"{settings.alert_username}:{server_hash}"]
    lines += [f"{sid}:{h}" for sid, h in sorted(stations)]
    _write_keeping_owner(settings.password_file, "\n".join(lines) + "\n")
    _write_keeping_owner(settings.acl_file, acl_text(settings.username))
    return True


def reload_broker(settings: BrokerSettings) -> bool:
    """SIGHUP the broker named by `pid_file` so it rereads password and ACL files; False if there is none."""
    if settings.pid_file is None:
        return False
    try:
        pid = int(settings.pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise StationError(f"无法通知 {settings.pid_file} 里记录的消息服务器（Mosquitto）重新加载：{exc}；"
                           "Mosquitto 是否在运行，并设置了 `pid_file`？密码和 ACL 文件已写好，重启 Mosquitto 即可加载") from exc
    return True


def server_client(settings: BrokerSettings, *, role: str = "listener"):  # type: ignore[no-untyped-def]
    """A paho-mqtt (MQTT 5) client logged in as the server; not yet connected.

    `role` "listener" (the one long-lived subscriber of `outreach serve`) or "alert"
    (a short-lived publisher). The client id is the user name, as the broker enforces it.
    """
    import paho.mqtt.client as mqtt

    username = settings.alert_username if role == "alert" else settings.username
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, settings.password)
    return client


@contextlib.contextmanager
def connected(settings: BrokerSettings, *, role: str = "alert") -> Iterator[Any]:
    """A connected paho client of the server (`server_client`), with its network loop running.

    Raises StationError naming the broker when it cannot be reached.
    """
    client = server_client(settings, role=role)
    try:
        client.connect(settings.host, settings.port, keepalive=30)
    except OSError as exc:
        raise StationError(f"连不上消息服务器（Mosquitto）{settings.url}：{exc}；Mosquitto 是否在运行？") from exc
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_retained(settings: BrokerSettings, topic_name: str, payload: str, *, timeout_s: float = 10.0) -> None:
    """Publish one retained QoS 1 message as the server (its alert account) and wait for the broker's ack.

    A retained message replaces the topic's last one, so a fresh subscriber reads it first.
    Raises StationError when the broker cannot be reached or does not acknowledge in time.
    """
    with connected(settings) as client:
        info = client.publish(topic_name, payload, qos=1, retain=True)
        info.wait_for_publish(timeout=timeout_s)
        if not info.is_published():
            raise StationError(f"消息服务器 {settings.url} 在 {timeout_s:.0f} 秒内没有确认收到 {topic_name}"
                               "（[broker] 的 username/password 是否有误？）")

