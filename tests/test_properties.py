"""Property tests of the parsers: address literals and restrictions files.

Hypothesis draws the inputs; every example is bounded (max_examples below)
so the default run stays short, and nothing here opens a socket or asks a
resolver: addresses go only through ``_repynet._parse_address``, the C
parser every API call uses (spec D4, D13, D24), and restrictions only
through ``Restrictions.parse`` (spec 6.1, D20, D28).
"""

import ipaddress
import math
import socket

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from repynet import Restrictions, RestrictionsError, _repynet, errors
from repynet.restrictions import LIMIT_NAMES, MAX_INTEGER, SCHEMA, Kind

INTEGER_RESOURCES = frozenset(r.name for r in SCHEMA if r.kind is Kind.COUNT)
DECIMAL_RESOURCES = frozenset(r.name for r in SCHEMA if r.kind is Kind.DECIMAL)
PORT_RESOURCES = frozenset(r.name for r in SCHEMA if r.kind is Kind.PORTSET)

BOUNDED = settings(max_examples=300, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


def parse_literal(text: str) -> "tuple[int, str] | None":
    """The parser's verdict: (family, canonical text), or None when refused."""
    try:
        return _repynet._parse_address(text)
    except errors.RepyArgumentError:
        return None


# --- IPv4 -------------------------------------------------------------------


def usable_ipv4(address: ipaddress.IPv4Address) -> bool:
    # D4: the first octet is neither 0 nor 224 and above.
    first_octet = address.packed[0]
    return 0 < first_octet < 224


dotted_text = st.text(alphabet="0123456789.", min_size=1, max_size=20)


@BOUNDED
@given(dotted_text)
@example("1.2.3.04")
@example("1.2.3")
@example("1..2.3")
@example("256.1.1.1")
def test_ipv4_parser_is_no_looser_than_ipaddress(text):
    # Whatever digits-and-dots text the parser takes, ipaddress takes as the
    # same address: no octal, no short forms, no leading zeros (D4).
    verdict = parse_literal(text)
    try:
        expected = ipaddress.IPv4Address(text)
    except ValueError:
        assert verdict is None
        return
    if usable_ipv4(expected):
        assert verdict == (socket.AF_INET, str(expected))
    else:
        assert verdict is None


@BOUNDED
@given(st.ip_addresses(v=4).filter(usable_ipv4),
       st.sampled_from([" ", "\t", "\n", "\x00", "+", "-", "0x", "."]),
       st.booleans())
def test_ipv4_literals_with_decoration_are_refused(address, decoration, before):
    text = decoration + str(address) if before else str(address) + decoration
    assert parse_literal(text) is None


# --- IPv6 -------------------------------------------------------------------


def usable_ipv6(address: ipaddress.IPv6Address) -> bool:
    # D24: not ::, not multicast, not v4-mapped or v4-compatible, and not
    # link-local (which needs a scope suffix).
    if address.is_unspecified or address.is_multicast or address.is_link_local:
        return False
    if address.ipv4_mapped is not None:
        return False
    v4_compatible = int(address) >> 32 == 0 and address != ipaddress.IPv6Address("::1")
    return not v4_compatible


# --- both families ------------------------------------------------------------

FAMILY = {4: (socket.AF_INET, usable_ipv4), 6: (socket.AF_INET6, usable_ipv6)}


# Twice BOUNDED's examples: the draws are shared by the two families.
@settings(BOUNDED, max_examples=2 * BOUNDED.max_examples)
@given(st.ip_addresses())
@example(ipaddress.IPv4Address("127.0.0.1"))
@example(ipaddress.IPv4Address("223.255.255.255"))
@example(ipaddress.IPv4Address("224.0.0.0"))
@example(ipaddress.IPv4Address("0.255.255.255"))
@example(ipaddress.IPv6Address("::1"))
@example(ipaddress.IPv6Address("::"))
@example(ipaddress.IPv6Address("::ffff:1.2.3.4"))
@example(ipaddress.IPv6Address("::1.2.3.4"))
@example(ipaddress.IPv6Address("fe80::1"))
@example(ipaddress.IPv6Address("ff02::1"))
@example(ipaddress.IPv6Address("2001:db8::"))
def test_literals_round_trip_through_ipaddress(address):
    family, usable = FAMILY[address.version]
    compressed = parse_literal(address.compressed)
    exploded = parse_literal(address.exploded)
    if usable(address):
        # Both spellings parse to the same value; the canonical text is the
        # RFC 5952 form ipaddress prints (for IPv4 the two are one text).
        assert compressed == (family, address.compressed)
        assert exploded == compressed
    else:
        assert compressed is None
        assert exploded is None


@BOUNDED
@given(st.text(alphabet="0123456789abcdefABCDEF:.%", min_size=1, max_size=45))
@example(":::1")
@example("1::2::3")
@example("::1%1")
@example("2001:db8::1%lo")
def test_ipv6_parser_is_no_looser_than_ipaddress(text):
    verdict = parse_literal(text)
    if verdict is None:
        return
    family, canonical = verdict
    if family == socket.AF_INET:
        assert ipaddress.IPv4Address(text) == ipaddress.IPv4Address(canonical)
        return
    address_text, _, scope = text.partition("%")
    expected = ipaddress.IPv6Address(address_text)
    # Only link-local addresses take a scope, and only they need one.
    assert bool(scope) == expected.is_link_local
    assert ipaddress.IPv6Address(canonical.partition("%")[0]) == expected


# --- restrictions files -----------------------------------------------------


decimals = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=MAX_INTEGER)
port_sets = st.frozensets(st.integers(min_value=1, max_value=65535), max_size=20)


def _value_strategy(name: str) -> st.SearchStrategy:
    if name in PORT_RESOURCES:
        return port_sets
    if name in INTEGER_RESOURCES:
        return counts
    assert name in DECIMAL_RESOURCES
    return decimals


restriction_values = st.fixed_dictionaries(
    {name: _value_strategy(name) for name in LIMIT_NAMES})


def format_restrictions(values: dict, noise: "list[str]", newline: str) -> str:
    """A restrictions file holding ``values``, one directive a line."""
    lines = ["# written by test_properties"]
    for name, value in values.items():
        if name in PORT_RESOURCES:
            lines += [f"resource {name} {port}  # port" for port in sorted(value)]
        else:
            lines.append(f"resource\t{name}   {value!r}")
    # Comments, blank lines and legacy call rules change nothing (D20).
    lines += noise
    return newline.join(lines) + newline


noise_lines = st.lists(st.sampled_from([
    "", "   ", "# resource insockets 1", "call gethostbyname allow", "\t# tab comment",
    "call sendmessage deny  # ignored",
]), max_size=5)


@BOUNDED
@given(restriction_values, noise_lines, st.sampled_from(["\n", "\r\n"]))
def test_restrictions_round_trip_through_the_file_format(values, noise, newline):
    parsed = Restrictions.parse(format_restrictions(values, noise, newline))
    limits = parsed.limits()
    assert limits.keys() == values.keys()
    for name, value in values.items():
        if name in PORT_RESOURCES:
            assert limits[name] == set(value)
        elif name in INTEGER_RESOURCES:
            assert type(limits[name]) is int and limits[name] == value
        else:
            assert type(limits[name]) is float and limits[name] == value
    # What build() makes of the same values is the same restrictions.
    assert Restrictions.build(**values).limits() == limits


@BOUNDED
@given(st.text(max_size=300))
@example("resource insockets 1_000")
@example("resource netsend nan")
@example("resource netsend inf")
@example("resource insockets \u0661")
@example("resource netsend 1e999")
@example("resource connport 0")
@example("resource connport 65536")
def test_restrictions_parse_raises_only_restrictions_error(text):
    try:
        parsed = Restrictions.parse(text)
    except RestrictionsError:
        return
    for name, value in parsed.limits().items():
        if name in PORT_RESOURCES:
            assert all(1 <= port <= 65535 for port in value)
        else:
            assert value >= 0 and math.isfinite(value)


@BOUNDED
@given(restriction_values, st.sampled_from(sorted(set(LIMIT_NAMES) - PORT_RESOURCES)),
       st.sampled_from(["-1", "1_0", "0x10", "1e", ".", "١", "nan", "inf", "1 2", "+1"]))
def test_a_malformed_number_names_its_line(values, broken, token):
    text = format_restrictions(values, [], "\n")
    lines = text.split("\n")
    number = next(index for index, line in enumerate(lines, start=1)
                  if line.startswith(f"resource\t{broken} "))
    lines[number - 1] = f"resource {broken} {token}"
    with pytest.raises(RestrictionsError) as raised:
        Restrictions.parse("\n".join(lines))
    assert f":{number}:" in str(raised.value)
