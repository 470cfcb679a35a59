"""Which URLs a webhook may be sent to, and which resolved addresses a send may connect to.

A webhook URL is set by a customer and POSTed to from inside AWS, so it must not reach what sits next to the
function: the instance metadata service, the Lambda runtime API on 127.0.0.1, a VPC's private hosts. The rule:
`https` to a public host on port 443 or 8443, no userinfo, no fragment, printable ASCII only, at most 2,048
characters. Plain `http` only to this machine (127.0.0.1, [::1], localhost; any port) and only when the caller
says so (`allow_local_http`: the local stack and the tests; the template never does).

A name that passes here can still resolve to a private address: the sender checks every resolved address with
`address_refusal` and connects to the one it checked. Pure: no I/O, no environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
HTTPS_PORTS = frozenset({443, 8443})
LOCAL_HTTP_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

# Reason codes (stable: they are returned to API clients and recorded on failed deliveries).
TOO_LONG = "too_long"
BAD_CHARACTERS = "bad_characters"  # whitespace, control, non-ASCII or a backslash
MALFORMED_URL = "malformed_url"
NOT_HTTPS = "not_https"
HAS_FRAGMENT = "has_fragment"
HAS_USERINFO = "has_userinfo"
NO_HOST = "no_host"
BAD_PORT = "bad_port"
PORT_NOT_ALLOWED = "port_not_allowed"
PRIVATE_ADDRESS = "private_address"
INTERNAL_HOSTNAME = "internal_hostname"
NOT_A_PUBLIC_HOSTNAME = "not_a_public_hostname"
NOT_LOOPBACK = "not_loopback"  # a local-http URL's name resolved off this machine (send time only)

# Names that are internal by definition (RFC 6761, RFC 6762, RFC 8375, cloud conventions) or by wide custom.
INTERNAL_SUFFIXES = (
    "localhost",
    "local",
    "localdomain",
    "internal",
    "intranet",
    "lan",
    "home",
    "corp",
    "home.arpa",
    "arpa",
    "invalid",
)
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data"})

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
# A top-level label is letters, or an IDN's punycode: never numeric, so `127.1`, `0x7f.1` or `2130706433` (IPv4
# addresses in the forms inet_aton accepts, which some resolvers and HTTP clients honour) are never names.
_TOP_LABEL = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")

# IPv6 ranges that stand for an IPv4 address inside them: the IPv4 address decides.
_NAT64 = IPv6Network("64:ff9b::/96")  # RFC 6052, DNS64 answers for IPv4-only hosts
_SIX_TO_FOUR = IPv6Network("2002::/16")  # RFC 3056
_IPV4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_IPV4_COMPATIBLE = IPv6Network("::/96")  # RFC 4291, deprecated
_LOCAL_NAT64 = IPv6Network("64:ff9b:1::/48")  # RFC 8215: a local translator, whatever it embeds
_SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")  # carrier-grade NAT; Alibaba Cloud's metadata service


class WebhookUrlRefused(ValueError):
    """A URL the rule refuses; `reason` is one of the reason codes above."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WebhookTarget:
    """A URL the rule accepted, as the sender needs it."""

    scheme: str  # "https", or "http" to this machine (with the local flag)
    host: str  # a lower-case name, or an IP address without brackets
    port: int
    request_target: str  # path and query, as sent on the request line

    @property
    def local_http(self) -> bool:
        return self.scheme == "http"


def webhook_target(url: str, *, allow_local_http: bool = False) -> WebhookTarget:
    """The URL split for sending, or `WebhookUrlRefused` with the reason it may not be a webhook URL."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlRefused(TOO_LONG)
    # Checked on the raw text: urlsplit silently drops tabs and newlines, and a backslash is a path separator to
    # some parsers and part of the host to others.
    if any(not "!" <= character <= "~" or character == "\\" for character in url):
        raise WebhookUrlRefused(BAD_CHARACTERS)
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed "[", or brackets around what is not an IP address
        raise WebhookUrlRefused(MALFORMED_URL) from None
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        raise WebhookUrlRefused(BAD_PORT) from None
    host = parts.hostname or ""
    local_http = parts.scheme == "http" and allow_local_http and host in LOCAL_HTTP_HOSTS
    if parts.scheme != "https" and not local_http:
        raise WebhookUrlRefused(NOT_HTTPS)
    if "#" in url:
        raise WebhookUrlRefused(HAS_FRAGMENT)
    if "@" in parts.netloc:
        raise WebhookUrlRefused(HAS_USERINFO)
    if not host:
        raise WebhookUrlRefused(NO_HOST)
    if port == 0:
        raise WebhookUrlRefused(BAD_PORT)
    if not local_http:
        if port is not None and port not in HTTPS_PORTS:
            raise WebhookUrlRefused(PORT_NOT_ALLOWED)
        refusal = _host_refusal(host, bracketed="[" in parts.netloc)
        if refusal:
            raise WebhookUrlRefused(refusal)
    request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookTarget(parts.scheme, host, port or (80 if local_http else 443), request_target)


def webhook_url_refusal(url: str, *, allow_local_http: bool = False) -> str | None:
    """None when `url` may be a webhook URL, else the reason code it may not."""
    try:
        webhook_target(url, allow_local_http=allow_local_http)
    except WebhookUrlRefused as refused:
        return refused.reason
    return None


def address_refusal(address: str, *, local_http: bool = False) -> str | None:
    """None when a send may connect to `address` (one resolved IP address, as getaddrinfo gives it), else the
    reason code. A public address for https; a loopback one for a local-http target (`WebhookTarget.local_http`)."""
    try:
        ip = ip_address(address)
    except ValueError:
        return MALFORMED_URL
    if local_http:
        return None if ip.is_loopback else NOT_LOOPBACK
    return None if is_public_address(ip) else PRIVATE_ADDRESS


def is_public_address(ip: IPv4Address | IPv6Address) -> bool:
    """Globally reachable unicast: not loopback, private, link-local, unique-local, site-local, shared, reserved,
    multicast or unspecified, nor an IPv6 form (mapped, compatible, translated, NAT64, 6to4, Teredo) of one."""
    if isinstance(ip, IPv6Address):
        embedded = _embedded_ipv4(ip)
        if not all(is_public_address(inner) for inner in embedded):
            return False
        if ip in _NAT64 or ip in _SIX_TO_FOUR:
            return True  # it stands for the (public) IPv4 address inside it
        if ip in _LOCAL_NAT64 or ip.is_site_local:
            return False
    elif ip in _SHARED_ADDRESS_SPACE:
        return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _embedded_ipv4(ip: IPv6Address) -> list[IPv4Address]:
    """Every IPv4 address the IPv6 address carries by a translation or tunnelling scheme."""
    found: list[IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64 or ip in _IPV4_TRANSLATED or ip in _IPV4_COMPATIBLE:
        found.append(IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _host_refusal(host: str, *, bracketed: bool) -> str | None:
    """Why an https URL's host is refused (None: it is a public address, or a name that may resolve to one)."""
    try:
        ip = ip_address(host)
    except ValueError:
        if bracketed:  # "[v1.x]" (RFC 3986's IPvFuture) and the like: only IPv6 addresses go in brackets
            return MALFORMED_URL
    else:
        return None if is_public_address(ip) else PRIVATE_ADDRESS
    return _hostname_refusal(host)


def _hostname_refusal(host: str) -> str | None:
    name = host.removesuffix(".")
    if name in METADATA_HOSTNAMES or any(name == s or name.endswith("." + s) for s in INTERNAL_SUFFIXES):
        return INTERNAL_HOSTNAME
    labels = name.split(".")
    # A trailing dot is refused too: rare in webhook URLs, and certificates name hosts without it.
    if host.endswith(".") or len(name) > 253 or not _TOP_LABEL.match(labels[-1]):
        return NOT_A_PUBLIC_HOSTNAME
    if len(labels) == 1:  # completed by the resolver's search domains: an intranet name
        return INTERNAL_HOSTNAME
    if not all(_LABEL.match(label) for label in labels):
        return NOT_A_PUBLIC_HOSTNAME
    return None
