/*
 * rn_addr.c: strict address literals (see rn_addr.h for the policy).
 *
 * Nothing here trusts a C string terminator: every parser takes an explicit
 * length and refuses embedded NULs, because the text comes from Python
 * strings that may contain them.
 */
#include "rn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

int
rn_ipv4_parse_dotted(const char *text, size_t len, struct in_addr *out)
{
    uint8_t octets[4];
    size_t pos = 0;

    if (len > RN_ADDR_TEXT_MAX)
        return -EINVAL;
    for (int part = 0; part < 4; part++) {
        size_t start = pos;
        unsigned value = 0;

        if (part > 0) {
            if (pos >= len || text[pos] != '.')
                return -EINVAL;
            start = ++pos;
        }
        while (pos < len && text[pos] >= '0' && text[pos] <= '9' &&
               pos - start < 3) {
            value = value * 10 + (unsigned)(text[pos] - '0');
            pos++;
        }
        size_t digits = pos - start;
        if (digits == 0 || value > 255)
            return -EINVAL;
        /* A leading zero would be octal to inet_aton: refuse it (D4). */
        if (digits > 1 && text[start] == '0')
            return -EINVAL;
        octets[part] = (uint8_t)value;
    }
    if (pos != len)
        return -EINVAL;
    memcpy(&out->s_addr, octets, sizeof(octets));
    return 0;
}

static int
parse_scope(const char *text, size_t len, uint32_t *scope_id)
{
    char name[IF_NAMESIZE];
    unsigned long index = 0;
    size_t i;

    if (len == 0 || len >= sizeof(name))
        return -EINVAL;
    for (i = 0; i < len && text[i] >= '0' && text[i] <= '9'; i++)
        index = index * 10 + (unsigned long)(text[i] - '0');
    if (i == len) {
        if (text[0] == '0' || len > 10 || index > UINT32_MAX)
            return -EINVAL;
        char probe[IF_NAMESIZE];
        if (if_indextoname((unsigned)index, probe) == NULL)
            return -ENXIO;
        *scope_id = (uint32_t)index;
        return 0;
    }
    memcpy(name, text, len);
    name[len] = '\0';
    unsigned found = if_nametoindex(name);
    if (found == 0)
        return -ENXIO;
    *scope_id = found;
    return 0;
}

static int
parse_ipv6(const char *text, size_t len, rn_addr_t *out)
{
    char literal[INET6_ADDRSTRLEN];
    const char *percent = memchr(text, '%', len);
    size_t addr_len = percent ? (size_t)(percent - text) : len;
    const struct in6_addr *a = &out->ip.v6;

    if (addr_len == 0 || addr_len >= sizeof(literal))
        return -EINVAL;
    memcpy(literal, text, addr_len);
    literal[addr_len] = '\0';
    if (inet_pton(AF_INET6, literal, &out->ip.v6) != 1)
        return -EINVAL;
    out->family = AF_INET6;

    if (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_MULTICAST(a) ||
        IN6_IS_ADDR_V4MAPPED(a) ||
        (IN6_IS_ADDR_V4COMPAT(a) && !IN6_IS_ADDR_LOOPBACK(a)))
        return -EADDRNOTAVAIL;
    /* Only link-local addresses are ambiguous without an interface. */
    if (IN6_IS_ADDR_LINKLOCAL(a) != (percent != NULL))
        return -EADDRNOTAVAIL;
    if (percent)
        return parse_scope(percent + 1, len - addr_len - 1, &out->scope_id);
    return 0;
}

int
rn_addr_parse(const char *text, size_t len, rn_addr_t *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (len == 0 || len > RN_ADDR_TEXT_MAX || memchr(text, '\0', len))
        return -EINVAL;
    if (memchr(text, ':', len)) {
        rc = parse_ipv6(text, len, out);
        if (rc < 0) {
            memset(out, 0, sizeof(*out));
            return rc;
        }
        return AF_INET6;
    }
    rc = rn_ipv4_parse_dotted(text, len, &out->ip.v4);
    if (rc < 0)
        return rc;
    out->family = AF_INET;
    uint8_t first = ((const uint8_t *)&out->ip.v4.s_addr)[0];
    if (first == 0 || first >= 224) {
        memset(out, 0, sizeof(*out));
        return -EADDRNOTAVAIL;
    }
    return AF_INET;
}

int
rn_addr_format(const rn_addr_t *addr, char *buf, size_t size)
{
    char text[INET6_ADDRSTRLEN];
    int written;

    if (inet_ntop(addr->family, &addr->ip, text, sizeof(text)) == NULL)
        return -errno;
    if (addr->family == AF_INET6 && addr->scope_id != 0) {
        char name[IF_NAMESIZE];
        if (if_indextoname(addr->scope_id, name) != NULL)
            written = snprintf(buf, size, "%s%%%s", text, name);
        else
            written = snprintf(buf, size, "%s%%%u", text, addr->scope_id);
    }
    else {
        written = snprintf(buf, size, "%s", text);
    }
    if (written < 0 || (size_t)written >= size)
        return -ENOSPC;
    return written;
}

socklen_t
rn_addr_to_sockaddr(const rn_addr_t *addr, uint16_t port,
                    struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (addr->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr = addr->ip.v4;
        return sizeof(*sin);
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = addr->ip.v6;
    sin6->sin6_scope_id = addr->scope_id;
    return sizeof(*sin6);
}

int
rn_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, rn_addr_t *out,
                      uint16_t *port)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET &&
        len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        out->family = AF_INET;
        out->ip.v4 = sin->sin_addr;
        *port = ntohs(sin->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6 &&
        len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        out->family = AF_INET6;
        out->ip.v6 = sin6->sin6_addr;
        if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr))
            out->scope_id = sin6->sin6_scope_id;
        *port = ntohs(sin6->sin6_port);
        return 0;
    }
    return -EAFNOSUPPORT;
}

void
rn_addr_any(sa_family_t family, rn_addr_t *out)
{
    memset(out, 0, sizeof(*out));
    out->family = family;
}

bool
rn_addr_equal(const rn_addr_t *a, const rn_addr_t *b)
{
    if (a->family != b->family || a->scope_id != b->scope_id)
        return false;
    if (a->family == AF_INET)
        return a->ip.v4.s_addr == b->ip.v4.s_addr;
    return memcmp(&a->ip.v6, &b->ip.v6, sizeof(a->ip.v6)) == 0;
}

bool
rn_addr_is_any(const rn_addr_t *addr)
{
    if (addr->family == AF_INET)
        return addr->ip.v4.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&addr->ip.v6);
}

bool
rn_addr_is_loopback(const rn_addr_t *addr)
{
    if (addr->family == AF_INET)
        return ((const uint8_t *)&addr->ip.v4.s_addr)[0] == 127;
    return IN6_IS_ADDR_LOOPBACK(&addr->ip.v6);
}
