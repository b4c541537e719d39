"""Outgoing HTTP to addresses we are given (subscriber URLs): where we may connect, and for how long.

SSRF: a subscriber URL must not reach this machine, the private network or the cloud's metadata service.
The URL is checked when it is saved (`check_url`) and, what matters, again at the moment of connecting: the
address the socket actually connected to is checked before a byte is sent (`post`), so a name that resolves
to a public address for the check and to 127.0.0.1 for the connection (DNS rebinding) gets nowhere.

Time: `requests`' timeout bounds each read, not the whole exchange: a subscriber that drips one byte at a time
could hold a worker for ever. `post` closes the connection at an overall deadline.
"""

import contextlib
import ipaddress
import socket
import threading
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils.translation import gettext
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# The IPv6 forms that carry an IPv4 address a router may turn into that address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class UrlNotAllowed(ValueError):
    pass


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo:
        found.extend(address.teredo)
    if address in _NAT64 or address in _IPV4_COMPATIBLE or address in _NAT64_LOCAL:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def address_refused(address) -> bool:
    """True for what a subscriber may not be: private, loopback, link-local, multicast, reserved... also when
    hidden in an IPv6 form (mapped, 6to4, Teredo, NAT64), unless WEBHOOK_ALLOWED_NETWORKS lets it through."""
    address = ipaddress.ip_address(str(address).split("%", 1)[0])
    allowed = [ipaddress.ip_network(n, strict=False) for n in settings.WEBHOOK_ALLOWED_NETWORKS]
    if any(address.version == network.version and address in network for network in allowed):
        return False
    candidates = [address, *(_embedded_ipv4(address) if address.version == 6 else [])]
    return any(not a.is_global or a.is_multicast for a in candidates)


def check_url(url: str) -> None:
    """Refuses what a subscriber URL must not be: not http(s), credentials in it, no host or port 0, or a host
    that resolves to an address `address_refused` refuses."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # e.g. "http://[::1/", a port out of range
        raise UrlNotAllowed(gettext("The URL is not well formed.")) from None
    if parts.scheme not in ("http", "https"):
        raise UrlNotAllowed(gettext("The URL must start with http:// or https://."))
    if not parts.hostname:
        raise UrlNotAllowed(gettext("The URL has no host."))
    if parts.username or parts.password:
        raise UrlNotAllowed(gettext("The URL must not carry a user name or password."))
    if port == 0:
        raise UrlNotAllowed(gettext("The URL's port must be 1 to 65535."))
    try:
        infos = socket.getaddrinfo(
            parts.hostname, port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise UrlNotAllowed(
            gettext("The host %(host)r does not resolve (%(error)s).") % {"host": parts.hostname, "error": exc}
        ) from None
    for info in infos:
        if address_refused(info[4][0]):
            raise UrlNotAllowed(
                gettext("The host %(host)r resolves to %(address)s, a private, loopback or link-local address.")
                % {"host": parts.hostname, "address": info[4][0]}
            )


# --- Connecting only where allowed, for a bounded time -----------------------------------------------


class _Guarded:
    """A urllib3 connection that checks the address it connected to before anything is sent (TLS included),
    and hands its socket to the deadline watchdog."""

    sockets: list  # set per session by _session()

    def _new_conn(self):
        sock = super()._new_conn()
        peer = sock.getpeername()[0]
        if address_refused(peer):
            sock.close()
            raise UrlNotAllowed(f"The host {self.host!r} connected to {peer}, a private or loopback address.")
        self.sockets.append(sock)
        return sock


def _session(sockets: list) -> requests.Session:
    http = type("GuardedHTTPConnection", (_Guarded, HTTPConnection), {"sockets": sockets})
    https = type("GuardedHTTPSConnection", (_Guarded, HTTPSConnection), {"sockets": sockets})
    adapter = HTTPAdapter(max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {
        "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
    }
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc from the environment
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def deadline_seconds() -> float:
    """The whole exchange (connect, send, wait for the answer, read up to 500 bytes) ends by then."""
    return 2 * settings.WEBHOOK_TIMEOUT


def post(url: str, *, body: bytes, headers: dict) -> tuple[int, str]:
    """POSTs `body` to `url` without following redirects; returns (status code, the first 500 characters of
    the answer). Raises UrlNotAllowed, or requests.RequestException (the deadline passed, no connection...)."""
    check_url(url)
    sockets: list = []
    expired = threading.Event()

    def cut_off():
        expired.set()
        for sock in list(sockets):
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(deadline_seconds(), cut_off)
    watchdog.daemon = True
    watchdog.start()
    try:
        with _session(sockets) as session:
            answer = session.post(
                url, data=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT, allow_redirects=False, stream=True
            )
            text = answer.raw.read(500, decode_content=True).decode("utf-8", errors="replace")
            answer.close()
    except (requests.RequestException, OSError) as exc:
        if expired.is_set():
            raise requests.Timeout(f"no complete answer within {deadline_seconds():g} s") from exc
        if isinstance(exc, requests.RequestException):
            raise
        raise requests.ConnectionError(str(exc)) from exc
    finally:
        watchdog.cancel()
    if expired.is_set():
        raise requests.Timeout(f"no complete answer within {deadline_seconds():g} s")
    return answer.status_code, text
