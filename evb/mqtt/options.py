"""How an agent or ``evb ctl`` reaches the MQTT broker: the URL and the ``[mqtt]`` settings (pure)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path


class BrokerUrlError(ValueError):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # never shows the password
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user[:password]@]host[:port]`` (1883) or ``mqtts://…`` (TLS, 8883)."""
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port
    except ValueError as exc:
        raise BrokerUrlError(f"{url!r}: {exc}") from None
    if u.scheme not in ("mqtt", "mqtts"):
        raise BrokerUrlError(f"{url!r}: the scheme must be mqtt:// or mqtts://")
    if not u.hostname:
        raise BrokerUrlError(f"{url!r}: no host")
    if u.path not in ("", "/") or u.query or u.fragment:
        raise BrokerUrlError(f"{url!r}: nothing may follow host:port")
    tls = u.scheme == "mqtts"
    return BrokerAddress(
        host=u.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=urllib.parse.unquote(u.username) if u.username else None,
        password=urllib.parse.unquote(u.password) if u.password else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttOptions:
    """How to reach the broker (``[mqtt]`` of station.toml / bridge.toml, ``--mqtt URL``)."""

    broker: str  #: mqtt://[user[:password]@]host[:port] or mqtts://…
    username: str | None = None  #: overrides the URL's
    password_file: str | None = None  #: first line is the password (overrides the URL's)
    ca_file: str | None = None  #: mqtts: the CA that signed the broker's certificate (default: system CAs)
    client_id: str | None = None  #: default evb-station-HOST-IF / evb-bridge-NAME
    keepalive: int = 15  #: MQTT keep-alive, seconds (a dead broker is noticed in 1.5×)
    name: str | None = None  #: station: the host name in topics (default: this host's); bridge: its name

    def address(self) -> BrokerAddress:
        addr = parse_broker_url(self.broker)
        user, password = addr.username, addr.password
        if self.username:
            user = self.username
        if self.password_file:
            try:
                password = Path(self.password_file).read_text().splitlines()[0]
            except (OSError, IndexError) as exc:
                raise BrokerUrlError(f"password_file {self.password_file}: cannot read it ({exc})") from None
        return BrokerAddress(host=addr.host, port=addr.port, tls=addr.tls, username=user, password=password)
