/* Unit tests of rn_addr.c: strict literals (D4, D13, D24). */
#include "rn.h"
#include "rn_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>

static int
parse(const char *text)
{
    rn_addr_t addr;
    return rn_addr_parse(text, strlen(text), &addr);
}

/* For RN_CHECK_PARSES_AS: any failure, whatever its errno. */
#define ANY_ERROR INT_MIN

/* The first of texts[0..n) whose parse() is not `expected` (ANY_ERROR:
 * not negative), or NULL when every verdict holds. */
static const char *
first_wrong_verdict(const char *const *texts, size_t n, int expected)
{
    for (size_t i = 0; i < n; i++) {
        int rc = parse(texts[i]);
        if (expected == ANY_ERROR ? rc >= 0 : rc != expected)
            return texts[i];
    }
    return NULL;
}

/* Checks that every literal of the array texts parses to `expected`; a
 * failure names the literal. */
#define RN_CHECK_PARSES_AS(texts, expected)                                   \
    do {                                                                      \
        const char *wrong_ = first_wrong_verdict(                             \
            texts, sizeof(texts) / sizeof((texts)[0]), expected);             \
        if (wrong_ != NULL) {                                                 \
            rn_test_fail(__FILE__, __LINE__, wrong_);                         \
            return;                                                           \
        }                                                                     \
    } while (0)

static const char *
roundtrip(const char *text, char *buf, size_t size)
{
    rn_addr_t addr;
    if (rn_addr_parse(text, strlen(text), &addr) < 0)
        return "(parse failed)";
    if (rn_addr_format(&addr, buf, size) < 0)
        return "(format failed)";
    return buf;
}

RN_TEST(ipv4_canonical_literals_parse)
{
    static const char *const literals[] = {
        "127.0.0.1",
        "1.2.3.4",
        "223.255.255.255",
        "10.0.0.0",
        /* D4 drops the original's '192.168.0.0' string quirk. */
        "192.168.0.0",
    };
    RN_CHECK_PARSES_AS(literals, AF_INET);
}

RN_TEST(ipv4_malformed_literals_are_einval)
{
    static const char *const bad[] = {
        "",           "1",          "1.2.3",     "1.2.3.4.5",
        "1..2.3",     ".1.2.3",     "1.2.3.",    "256.1.1.1",
        "1.2.3.256",  "1.2.3.1000", "01.2.3.4",  "1.2.3.010",
        "127.0.0.01", " 1.2.3.4",   "1.2.3.4 ",  "1.2.3. 4",
        "+1.2.3.4",   "1.-0.2.3",   "1.2.3.4\n", "1_0.2.3.4",
        "0x7f.0.0.1", "a.b.c.d",    "1.2.3.4/8", "\xd9\xa1.2.3.4",
        "localhost",  "1.2.3.4:80",
    };
    RN_CHECK_PARSES_AS(bad, -EINVAL);
}

RN_TEST(ipv4_unusable_first_octet_is_eaddrnotavail)
{
    static const char *const literals[] = {
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "255.255.255.255",
    };
    RN_CHECK_PARSES_AS(literals, -EADDRNOTAVAIL);
}

RN_TEST(embedded_nul_and_overlong_input_are_einval)
{
    rn_addr_t addr;
    RN_CHECK_EQ(rn_addr_parse("127.0.0.1\0junk", 14, &addr), -EINVAL);
    RN_CHECK_EQ(rn_addr_parse("::1\0", 4, &addr), -EINVAL);
    char longtext[256];
    memset(longtext, '1', sizeof(longtext));
    RN_CHECK_EQ(rn_addr_parse(longtext, sizeof(longtext), &addr), -EINVAL);
    memcpy(longtext, "::", 2);
    RN_CHECK_EQ(rn_addr_parse(longtext, sizeof(longtext), &addr), -EINVAL);
    /* Only len bytes are read: a prefix of a valid literal is judged alone. */
    RN_CHECK_EQ(rn_addr_parse("127.0.0.1", 7, &addr), -EINVAL);
}

RN_TEST(dotted_syntax_alone_accepts_zero_and_high_octets)
{
    struct in_addr in;
    RN_CHECK_EQ(rn_ipv4_parse_dotted("0.0.0.0", 7, &in), 0);
    RN_CHECK_EQ(rn_ipv4_parse_dotted("255.255.255.255", 15, &in), 0);
    RN_CHECK_EQ(in.s_addr, 0xffffffffu);
    RN_CHECK_EQ(rn_ipv4_parse_dotted("127.0.0.010", 11, &in), -EINVAL);
}

RN_TEST(ipv6_literals_parse)
{
    static const char *const literals[] = {
        "::1",       "0::1",       "2001:db8::1", "2001:DB8:0:0:0:0:0:1",
        "fe80::1%1", "fe80::1%lo",
    };
    RN_CHECK_PARSES_AS(literals, AF_INET6);
}

RN_TEST(ipv6_policy_refusals)
{
    static const char *const literals[] = {
        "::",      "ff02::1", "::ffff:127.0.0.1", "::1.2.3.4",
        "fe80::1", "::1%1",   "2001:db8::1%lo",
    };
    RN_CHECK_PARSES_AS(literals, -EADDRNOTAVAIL);
}

RN_TEST(ipv6_malformed_literals)
{
    static const char *const bad[] = {
        ":",   ":::",     "1::2::3",           "::1 ", " ::1", "[::1]",
        "::g", "12345::", "1:2:3:4:5:6:7:8:9", "%1",   "::1%",
    };
    RN_CHECK_PARSES_AS(bad, ANY_ERROR);
    RN_CHECK_EQ(parse("fe80::1%"), -EINVAL);
    RN_CHECK_EQ(parse("fe80::1%01"), -EINVAL);
    RN_CHECK_EQ(parse("fe80::1%nosuchif0"), -ENXIO);
    RN_CHECK_EQ(parse("fe80::1%4000000000"), -ENXIO);
}

RN_TEST(format_gives_canonical_text)
{
    char buf[RN_ADDR_FORMAT_SIZE];
    RN_CHECK_STR(roundtrip("0::1", buf, sizeof(buf)), "::1");
    RN_CHECK_STR(roundtrip("2001:DB8:0:0:0:0:0:1", buf, sizeof(buf)),
                 "2001:db8::1");
    RN_CHECK_STR(roundtrip("127.0.0.1", buf, sizeof(buf)), "127.0.0.1");
    RN_CHECK_STR(roundtrip("fe80::1%1", buf, sizeof(buf)), "fe80::1%lo");
    rn_addr_t addr;
    rn_addr_parse("127.0.0.1", 9, &addr);
    RN_CHECK_EQ(rn_addr_format(&addr, buf, 5), -ENOSPC);
}

RN_TEST(addresses_compare_as_values)
{
    rn_addr_t a, b;
    rn_addr_parse("::1", 3, &a);
    rn_addr_parse("0:0::1", 6, &b);
    RN_CHECK(rn_addr_equal(&a, &b));
    rn_addr_parse("127.0.0.1", 9, &b);
    RN_CHECK(!rn_addr_equal(&a, &b));
    rn_addr_parse("127.0.0.2", 9, &a);
    RN_CHECK(!rn_addr_equal(&a, &b));
}

RN_TEST(loopback_is_127_slash_8_and_exactly_ipv6_one)
{
    rn_addr_t addr;
    rn_addr_parse("127.255.0.9", 11, &addr);
    RN_CHECK(rn_addr_is_loopback(&addr));
    rn_addr_parse("128.0.0.1", 9, &addr);
    RN_CHECK(!rn_addr_is_loopback(&addr));
    rn_addr_parse("::1", 3, &addr);
    RN_CHECK(rn_addr_is_loopback(&addr));
    rn_addr_parse("::1:5", 5, &addr);
    RN_CHECK(!rn_addr_is_loopback(&addr));
}

RN_TEST(sockaddr_roundtrip_keeps_port_and_scope)
{
    struct sockaddr_storage ss;
    rn_addr_t addr, back;
    uint16_t port = 0;

    rn_addr_parse("fe80::1%1", 9, &addr);
    socklen_t len = rn_addr_to_sockaddr(&addr, 63100, &ss);
    RN_CHECK_EQ(len, sizeof(struct sockaddr_in6));
    RN_CHECK_EQ(((struct sockaddr_in6 *)&ss)->sin6_scope_id, 1);
    RN_CHECK_EQ(
        rn_addr_from_sockaddr((struct sockaddr *)&ss, len, &back, &port), 0);
    RN_CHECK_EQ(port, 63100);
    RN_CHECK(rn_addr_equal(&addr, &back));

    rn_addr_parse("127.0.0.1", 9, &addr);
    len = rn_addr_to_sockaddr(&addr, 1, &ss);
    RN_CHECK_EQ(len, sizeof(struct sockaddr_in));
    RN_CHECK_EQ(
        rn_addr_from_sockaddr((struct sockaddr *)&ss, len, &back, &port), 0);
    RN_CHECK_EQ(port, 1);
    RN_CHECK(rn_addr_equal(&addr, &back));
    ss.ss_family = AF_UNIX;
    RN_CHECK_EQ(
        rn_addr_from_sockaddr((struct sockaddr *)&ss, len, &back, &port),
        -EAFNOSUPPORT);
}

RN_TEST(wildcards)
{
    rn_addr_t any;
    rn_addr_any(AF_INET6, &any);
    RN_CHECK(rn_addr_is_any(&any));
    rn_addr_any(AF_INET, &any);
    RN_CHECK(rn_addr_is_any(&any));
    rn_addr_t one;
    rn_addr_parse("127.0.0.1", 9, &one);
    RN_CHECK(!rn_addr_is_any(&one));
}
