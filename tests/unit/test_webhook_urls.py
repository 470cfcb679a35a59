"""The webhook URL rule (prepaid.domain.webhook_urls): https to a public host, nothing that reaches inside."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from prepaid.domain.webhook_urls import (
    WebhookTarget,
    WebhookUrlRefused,
    address_refusal,
    webhook_target,
    webhook_url_refusal,
)

REFUSED: dict[str, str] = {
    # What the attacker test got through before (the problem statement)
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/": "private_address",
    "https://10.0.0.5:8443/": "private_address",
    "https://192.168.1.1/": "private_address",
    "https://[::ffff:169.254.169.254]/": "private_address",
    "https://metadata.google.internal/computeMetadata/v1/": "internal_hostname",
    "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next": "not_https",  # the Lambda runtime API
    "http://localhost:22/": "not_https",
    "https://user:pass@example.com/": "has_userinfo",
    # IPv4 addresses in disguise: forms inet_aton (and so some clients) read as 127.0.0.1
    "https://2130706433/": "not_a_public_hostname",
    "https://0x7f.1/": "not_a_public_hostname",
    "https://127.1/": "not_a_public_hostname",
    "https://017700000001/": "not_a_public_hostname",
    "https://0x7f000001/": "not_a_public_hostname",
    "https://127.000.000.001/": "not_a_public_hostname",
    "https://0177.0.0.1/": "not_a_public_hostname",
    "https://hooks.example.com.127.0.0.1/": "not_a_public_hostname",
    # IPv4 literals that are not public
    "https://127.0.0.1/": "private_address",
    "https://0.0.0.0/": "private_address",
    "https://172.16.0.1/": "private_address",
    "https://100.100.100.200/": "private_address",  # shared address space (Alibaba Cloud's metadata)
    "https://224.0.0.1/": "private_address",  # multicast
    "https://240.0.0.1/": "private_address",  # reserved
    "https://255.255.255.255/": "private_address",
    # IPv6 literals that are not public, and IPv6 forms of IPv4 ones
    "https://[::1]/": "private_address",
    "https://[::]/": "private_address",
    "https://[fe80::1]/": "private_address",
    "https://[fe80::1%25eth0]/": "private_address",
    "https://[fc00::1]/": "private_address",
    "https://[fd00:ec2::254]/": "private_address",  # EC2's IPv6 metadata endpoint
    "https://[fec0::1]/": "private_address",  # site-local
    "https://[ff02::1]/": "private_address",  # multicast
    "https://[::ffff:10.0.0.1]/": "private_address",
    "https://[::ffff:7f00:1]/": "private_address",
    "https://[::10.0.0.1]/": "private_address",  # IPv4-compatible
    "https://[::ffff:0:a00:1]/": "private_address",  # IPv4-translated
    "https://[64:ff9b::a00:1]/": "private_address",  # NAT64 of 10.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/": "private_address",  # NAT64 of 169.254.169.254
    "https://[64:ff9b:1::1]/": "private_address",  # a local NAT64 translator
    "https://[2002:a00:1::]/": "private_address",  # 6to4 of 10.0.0.1
    "https://[2001::1]/": "private_address",  # Teredo
    "https://[2001:db8::1]/": "private_address",  # documentation
    # Internal and metadata names
    "https://localhost/": "internal_hostname",
    "https://api.localhost/": "internal_hostname",
    "https://printer.local/": "internal_hostname",
    "https://ip-10-0-0-5.ec2.internal/": "internal_hostname",
    "https://instance-data.ec2.internal/": "internal_hostname",
    "https://db.localdomain/": "internal_hostname",
    "https://router.home.arpa/": "internal_hostname",
    "https://LOCALHOST./": "internal_hostname",
    "https://metadata/": "internal_hostname",
    "https://intranet/": "internal_hostname",  # single label: the resolver's search domains complete it
    # Names that are not public host names
    "https://hooks.example.com./": "not_a_public_hostname",
    "https://hooks_.example.123/": "not_a_public_hostname",
    "https://-hooks.example.com/": "not_a_public_hostname",
    "https://hooks..example.com/": "not_a_public_hostname",
    "https://%31%32%37.0.0.1/": "not_a_public_hostname",
    # Schemes, ports, and the rest of the URL
    "http://hooks.example.com/x": "not_https",
    "ftp://hooks.example.com/x": "not_https",
    "file:///etc/passwd": "not_https",
    "gopher://127.0.0.1:6379/_INFO": "not_https",
    "//hooks.example.com/x": "not_https",
    "hooks.example.com/x": "not_https",
    "https:///x": "no_host",
    "https://:443/x": "no_host",
    "https:hooks.example.com/x": "no_host",
    "https://hooks.example.com:22/": "port_not_allowed",
    "https://hooks.example.com:80/": "port_not_allowed",
    "https://hooks.example.com:0/": "bad_port",
    "https://hooks.example.com:99999/": "bad_port",
    "https://hooks.example.com:443:80/": "bad_port",
    "https://hooks.example.com:+443/": "bad_port",
    "https://hooks.example.com/x#frag": "has_fragment",
    "https://hooks.example.com/x#": "has_fragment",
    "https://@hooks.example.com/": "has_userinfo",
    "https://hooks.example.com@10.0.0.5/": "has_userinfo",
    "https://[::1": "malformed_url",
    "https://[v1.x]/": "malformed_url",
    "https://hooks.example.com/" + "a" * 2030: "too_long",
    "https://hooks.example.com/a b": "bad_characters",
    "https://hooks.example.com/\tx": "bad_characters",
    "https://hooks.exam\nple.com/": "bad_characters",
    "https://hooks.example.com/\x00": "bad_characters",
    "https://hooks.example.com/\x7f": "bad_characters",
    "https://hööks.example.com/": "bad_characters",
    "https://hooks.example.com\\@10.0.0.5/": "bad_characters",
    " https://hooks.example.com/": "bad_characters",
    "": "not_https",
}

ACCEPTED = [
    "https://hooks.example.com/x?y=1",
    "https://93.184.216.34/",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/",
    "https://example.com:8443/",
    "https://example.com:443/credits?token=t0ken",
    "https://HOOKS.Example.COM/Path",
    "https://xn--hks-qoa.example.com/",
    "https://a-b.c_d.example.io/",
    "https://hooks.example.test/",
    "https://[64:ff9b::5db8:d822]/",  # NAT64 of the public 93.184.216.34
    "https://example.com",
    "https://example.com/" + "a" * (2048 - len("https://example.com/")),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED.items(), ids=[repr(u[:60]) for u in REFUSED])
def test_refused_urls_say_why(url: str, reason: str) -> None:
    # Given a URL that reaches inside, or is not https to a public host
    # When it is checked, with or without the local-http flag
    # Then it is refused, with the reason code
    assert webhook_url_refusal(url) == reason
    if not (url.startswith("http://") and urlsplit(url).hostname in {"127.0.0.1", "localhost"}):
        assert webhook_url_refusal(url, allow_local_http=True) == reason
    with pytest.raises(WebhookUrlRefused) as refused:
        webhook_target(url)
    assert refused.value.reason == reason


@pytest.mark.parametrize("url", ACCEPTED)
def test_https_urls_to_public_hosts_are_accepted(url: str) -> None:
    # Given an https URL to a public host on port 443 or 8443
    # When it is checked
    # Then it is accepted, and is sent to its host and port with its path and query
    assert webhook_url_refusal(url) is None
    target = webhook_target(url)
    parts = urlsplit(url)
    assert target == WebhookTarget("https", parts.hostname or "", parts.port or 443, target.request_target)
    assert target.request_target == (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    assert not target.local_http


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("http://127.0.0.1:9001/hooks?token=x", "127.0.0.1", 9001),
        ("http://[::1]:8080/", "::1", 8080),
        ("http://localhost/", "localhost", 80),
        ("http://LOCALHOST:22/", "localhost", 22),
    ],
)
def test_plain_http_to_this_machine_needs_the_local_flag(url: str, host: str, port: int) -> None:
    # Given a plain-http URL to this machine
    # When it is checked without the flag, then with it
    # Then it is refused without, and accepted with it (any port), as a local-http target
    assert webhook_url_refusal(url) == "not_https"
    target = webhook_target(url, allow_local_http=True)
    assert (target.scheme, target.host, target.port, target.local_http) == ("http", host, port, True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2/",
        "http://10.0.0.5/",
        "http://localhost./",
        "http://api.localhost/",
        "http://2130706433/",
        "http://hooks.example.com/",
        "http://[::ffff:127.0.0.1]/",
        "http://user:pass@127.0.0.1/",
        "http://127.0.0.1/#x",
        "http://127.0.0.1:0/",
    ],
)
def test_the_local_flag_allows_nothing_but_plain_http_to_this_machine(url: str) -> None:
    # Given the local flag, and an http URL that is not to 127.0.0.1, [::1] or localhost (or has more in it)
    # When it is checked
    # Then it is refused
    assert webhook_url_refusal(url, allow_local_http=True) is not None


def test_https_to_this_machine_is_refused_even_with_the_local_flag() -> None:
    # Given the local flag
    # When an https URL to a loopback address is checked
    # Then it is refused: the flag is about plain http to local receivers only
    assert webhook_url_refusal("https://127.0.0.1/", allow_local_http=True) == "private_address"
    assert webhook_url_refusal("https://localhost:8443/", allow_local_http=True) == "internal_hostname"


@pytest.mark.parametrize(
    ("address", "local_http", "reason"),
    [
        ("93.184.216.34", False, None),
        ("2606:2800:220:1:248:1893:25c8:1946", False, None),
        ("10.0.0.5", False, "private_address"),
        ("169.254.169.254", False, "private_address"),
        ("127.0.0.1", False, "private_address"),
        ("::1", False, "private_address"),
        ("fe80::1%eth0", False, "private_address"),
        ("::ffff:169.254.169.254", False, "private_address"),
        ("64:ff9b::a9fe:a9fe", False, "private_address"),
        ("2002:a9fe:a9fe::1", False, "private_address"),
        ("127.0.0.1", True, None),
        ("::1", True, None),
        ("10.0.0.5", True, "not_loopback"),
        ("93.184.216.34", True, "not_loopback"),
        ("not-an-address", False, "malformed_url"),
    ],
)
def test_a_resolved_address_is_checked_with_the_same_rule(address: str, local_http: bool, reason: str | None) -> None:
    # Given one address a webhook host resolved to
    # When the sender asks whether it may connect to it (for an https target, or a local-http one)
    # Then a public address is allowed for https, a loopback one only for local http
    assert address_refusal(address, local_http=local_http) == reason


# -- properties ------------------------------------------------------------------------------------------------------

hosts = st.sampled_from(
    [
        "hooks.example.com",
        "example.com",
        "93.184.216.34",
        "[2606:2800:220:1:248:1893:25c8:1946]",
        "127.0.0.1",
        "[::1]",
        "localhost",
        "10.0.0.5",
        "169.254.169.254",
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a00:1]",
        "metadata.google.internal",
        "2130706433",
        "0x7f.1",
        "",
    ]
) | st.text(alphabet="abcdefxn0123456789.-_[]:%@", max_size=20)
url_parts = st.tuples(
    st.sampled_from(["https", "http", "HTTPS", "ftp", "", "javascript"]),
    st.sampled_from(["://", ":", ":///", "//"]),
    st.sampled_from(["", "user@", "user:pass@", "@", ":@"]),
    hosts,
    st.sampled_from(["", ":443", ":8443", ":80", ":9001", ":", ":0", ":x"]),
    st.text(max_size=30),
)


@given(url_parts, st.booleans())
@example(("https", "://", "", "hooks.example.com", "", "/x"), False)
@example(("http", "://", "", "127.0.0.1", ":9001", "/x"), True)
def test_any_accepted_url_is_https_or_local_http_with_the_flag_and_has_no_userinfo(
    parts: tuple[str, str, str, str, str, str], allow_local_http: bool
) -> None:
    # Given any URL put together from good and bad pieces, or any text as its path
    url = "".join(parts)
    # When the rule accepts it
    if webhook_url_refusal(url, allow_local_http=allow_local_http) is not None:
        return
    # Then it is https, or plain http to this machine with the flag; with no userinfo; to a public address when
    # its host is an address
    split = urlsplit(url)
    host = split.hostname or ""
    if split.scheme == "http":
        assert allow_local_http
        assert host in {"127.0.0.1", "::1", "localhost"}
    else:
        assert split.scheme == "https"
        assert split.port in (None, 443, 8443)
        try:
            address = ip_address(host)
        except ValueError:
            assert "." in host and host != "localhost"
        else:
            assert address.is_global and not address.is_loopback
    assert split.username is None and split.password is None and "@" not in split.netloc
    assert "#" not in url and len(url) <= 2048


@given(st.text(max_size=200), st.booleans())
def test_any_text_is_refused_with_a_reason_or_accepted_never_an_error(text: str, allow_local_http: bool) -> None:
    # Given any text at all
    # When it is checked
    # Then the answer is a reason code or None; nothing raises
    reason = webhook_url_refusal(text, allow_local_http=allow_local_http)
    assert reason is None or (reason.replace("_", "").isalpha() and reason.islower())
    assert reason is not None or text.lower().startswith(("https://", "http://"))
