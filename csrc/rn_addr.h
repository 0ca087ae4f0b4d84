/*
 * rn_addr.h: strict parsing and formatting of IPv4/IPv6 literals.
 *
 * Policy (spec D4, D13, D24): IPv4 is ASCII dotted-decimal with four parts
 * of 1-3 digits, no sign, no whitespace, no leading zero, each 0-255, first
 * octet neither 0 nor >= 224.  IPv6 is what inet_pton accepts, minus the
 * unspecified address, multicast, v4-mapped and v4-compatible forms;
 * link-local addresses need a "%scope" suffix and only they may carry one.
 * Addresses compare as parsed values, so "::1" and "0::1" are equal.
 */
#ifndef RN_ADDR_H
#define RN_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest literal accepted, "%scope" included; longer input is -EINVAL. */
#define RN_ADDR_TEXT_MAX 64
/* Buffer size that rn_addr_format always fits in (NUL included). */
#define RN_ADDR_FORMAT_SIZE (INET6_ADDRSTRLEN + 1 + 16)

typedef struct rn_addr {
    /* AF_INET or AF_INET6; the struct is zeroed first so it can be hashed. */
    sa_family_t family;
    uint32_t scope_id; /* IPv6 link-local only, else 0 */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } ip;
} rn_addr_t;

/* Strict dotted-decimal syntax only (no usability policy): 0 or -EINVAL. */
int rn_ipv4_parse_dotted(const char *text, size_t len, struct in_addr *out);

/*
 * Parses a literal an API caller may use as a local or destination address.
 * Returns AF_INET or AF_INET6, -EINVAL for text that is not a literal of
 * either family, -EADDRNOTAVAIL for a literal the policy refuses (0.x,
 * >= 224.x, ::, multicast, v4-mapped, link-local without scope or scope
 * on anything else) and -ENXIO for a scope naming no interface.
 */
int rn_addr_parse(const char *text, size_t len, rn_addr_t *out);

/* Writes the canonical text (with "%scope" when set); returns its length
 * or -ENOSPC. */
int rn_addr_format(const rn_addr_t *addr, char *buf, size_t size);

/* Fills *out for bind/connect/sendto; returns the sockaddr length. */
socklen_t rn_addr_to_sockaddr(const rn_addr_t *addr, uint16_t port,
                              struct sockaddr_storage *out);

/* Reads an AF_INET/AF_INET6 sockaddr; 0 or -EAFNOSUPPORT. */
int rn_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                          rn_addr_t *out, uint16_t *port);

/* The wildcard (0.0.0.0 or ::) of a family. */
void rn_addr_any(sa_family_t family, rn_addr_t *out);

bool rn_addr_equal(const rn_addr_t *a, const rn_addr_t *b);
bool rn_addr_is_any(const rn_addr_t *addr);
/* Accounting loopback: 127.0.0.0/8 for IPv4, exactly ::1 for IPv6. */
bool rn_addr_is_loopback(const rn_addr_t *addr);

#endif /* RN_ADDR_H */
