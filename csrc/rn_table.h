/*
 * rn_table.h: the bookkeeping tables of seed 000.
 *
 * tcp_conn_table holds (localip, localport, remoteip, remoteport) per open
 * connection; tcp_listen_table and udp_listen_table hold (localip,
 * localport) per listener.  One hashed implementation serves all three: a
 * listener's key has a zeroed remote end.  Insert, lookup and remove are
 * O(1); a per-(family, port) index makes the wildcard-aware conflict check
 * (spec D15) O(1) too.  Every function takes the table's own mutex, so the
 * tables may be used from any thread without the GIL.
 */
#ifndef RN_TABLE_H
#define RN_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "rn_addr.h"

typedef struct rn_endpoint {
    rn_addr_t addr;
    uint16_t port;
} rn_endpoint_t;

typedef struct rn_tuple {
    rn_endpoint_t local;
    rn_endpoint_t remote; /* all zero for listeners */
} rn_tuple_t;

typedef struct rn_table rn_table_t;

/* Returns a new empty table, or NULL when out of memory. */
rn_table_t *rn_table_new(void);
void rn_table_free(rn_table_t *table);

/* 0, -EEXIST when the exact tuple is present, -ENOMEM. */
int rn_table_insert(rn_table_t *table, const rn_tuple_t *key, void *value);
/* Inserts even when the exact tuple is present (Linux may hand a new
 * connection the tuple of one still open here, see py_sockets.c): each
 * entry is then removed by its value.  0 or -ENOMEM. */
int rn_table_insert_shared(rn_table_t *table, const rn_tuple_t *key,
                           void *value);
/* 0 or -ENOENT. */
int rn_table_remove(rn_table_t *table, const rn_tuple_t *key);
/* Removes the entry of key that maps to value: 0 or -ENOENT. */
int rn_table_remove_value(rn_table_t *table, const rn_tuple_t *key,
                          const void *value);
/* The value of the exact tuple, or NULL. */
void *rn_table_lookup(rn_table_t *table, const rn_tuple_t *key);
/* The value of the exact tuple's only entry, or NULL when it has none or
 * several (see rn_table_insert_shared). */
void *rn_table_lookup_unique(rn_table_t *table, const rn_tuple_t *key);

/*
 * Whether an entry conflicts with key's local end: same family and port
 * and either the same address or one of the two is the wildcard.  The
 * remote end of key is ignored.
 */
bool rn_table_local_conflict(rn_table_t *table, const rn_tuple_t *key);

size_t rn_table_count(rn_table_t *table);

/* Builds a listener key (remote end zeroed). */
void rn_tuple_local(rn_tuple_t *out, const rn_addr_t *addr, uint16_t port);

#endif /* RN_TABLE_H */
