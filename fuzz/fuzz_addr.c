/*
 * fuzz_addr.c: libFuzzer target for rn_addr_parse, the strict literal
 * parser every address an API caller passes goes through.
 *
 * Invariants checked on every input:
 *   - the result is AF_INET, AF_INET6 or one of -EINVAL, -EADDRNOTAVAIL,
 *     -ENXIO (the documented contract), and nothing past len is read;
 *   - an accepted literal formats into its buffer, and the canonical text
 *     parses back to the same address (format/parse round trip);
 *   - an accepted IPv4 literal is what inet_pton reads from the same text;
 *   - the sockaddr conversion round-trips address and port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rn_addr.h"

#define FUZZ_CHECK(cond)                                                \
    do {                                                                \
        if (!(cond))                                                    \
            __builtin_trap();                                           \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy, so ASan sees any read past len. */
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);

    rn_addr_t addr;
    int family = rn_addr_parse(text, size, &addr);
    FUZZ_CHECK(family == AF_INET || family == AF_INET6 || family == -EINVAL ||
               family == -EADDRNOTAVAIL || family == -ENXIO);
    if (family < 0) {
        free(text);
        return 0;
    }
    FUZZ_CHECK(addr.family == family);
    FUZZ_CHECK(size <= RN_ADDR_TEXT_MAX);

    char canonical[RN_ADDR_FORMAT_SIZE];
    int length = rn_addr_format(&addr, canonical, sizeof(canonical));
    FUZZ_CHECK(length > 0 && (size_t)length < sizeof(canonical));
    FUZZ_CHECK(canonical[length] == '\0');

    rn_addr_t again;
    FUZZ_CHECK(rn_addr_parse(canonical, (size_t)length, &again) == family);
    FUZZ_CHECK(rn_addr_equal(&addr, &again));

    if (family == AF_INET) {
        char terminated[RN_ADDR_TEXT_MAX + 1];
        memcpy(terminated, text, size);
        terminated[size] = '\0';
        struct in_addr expected;
        FUZZ_CHECK(inet_pton(AF_INET, terminated, &expected) == 1);
        FUZZ_CHECK(expected.s_addr == addr.ip.v4.s_addr);
    }

    struct sockaddr_storage storage;
    uint16_t port = (uint16_t)(size * 257u + 1u);
    socklen_t sa_len = rn_addr_to_sockaddr(&addr, port, &storage);
    rn_addr_t back;
    uint16_t back_port = 0;
    FUZZ_CHECK(rn_addr_from_sockaddr((struct sockaddr *)&storage, sa_len, &back,
                                     &back_port) == 0);
    FUZZ_CHECK(back_port == port);
    FUZZ_CHECK(rn_addr_equal(&addr, &back));

    free(text);
    return 0;
}
