/*
 * rn_table.c: one hashed table type for the three seed-000 tables.
 *
 * Chained buckets keyed by the whole tuple, doubled at a load of 3/4, plus
 * a second, smaller hash from (family, local port) to the number of
 * entries on that port, so that "does anything hold this port, wildcard
 * or not" is answered without a scan.
 */
#include "rn.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct rn_entry {
    struct rn_entry *next;
    rn_tuple_t key;
    void *value;
} rn_entry_t;

/*
 * A count of entries sharing a local end.  by_port entries count every
 * entry on (family, port); exact entries count those on (addr, port).
 */
typedef enum { LOCAL_EXACT, LOCAL_BY_PORT } local_kind_t;

typedef struct rn_local_count {
    struct rn_local_count *next;
    local_kind_t kind;
    rn_endpoint_t local;
    size_t count;
} rn_local_count_t;

#define RN_LOCAL_BUCKETS 1024

struct rn_table {
    pthread_mutex_t lock;
    rn_entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    rn_local_count_t *locals[RN_LOCAL_BUCKETS];
};

#define RN_TABLE_INITIAL_BUCKETS 64

static uint64_t
fnv1a(const void *data, size_t len, uint64_t hash)
{
    const unsigned char *bytes = data;
    for (size_t i = 0; i < len; i++) {
        hash ^= bytes[i];
        hash *= 1099511628211ULL;
    }
    return hash;
}

static uint64_t
endpoint_hash(const rn_endpoint_t *ep, uint64_t hash)
{
    hash = fnv1a(&ep->addr.family, sizeof(ep->addr.family), hash);
    hash = fnv1a(&ep->addr.scope_id, sizeof(ep->addr.scope_id), hash);
    if (ep->addr.family == AF_INET)
        hash = fnv1a(&ep->addr.ip.v4, sizeof(ep->addr.ip.v4), hash);
    else if (ep->addr.family == AF_INET6)
        hash = fnv1a(&ep->addr.ip.v6, sizeof(ep->addr.ip.v6), hash);
    return fnv1a(&ep->port, sizeof(ep->port), hash);
}

static uint64_t
tuple_hash(const rn_tuple_t *key)
{
    return endpoint_hash(&key->remote,
                         endpoint_hash(&key->local, 14695981039346656037ULL));
}

static bool
endpoint_equal(const rn_endpoint_t *a, const rn_endpoint_t *b)
{
    if (a->port != b->port || a->addr.family != b->addr.family)
        return false;
    return a->addr.family == 0 || rn_addr_equal(&a->addr, &b->addr);
}

static bool
tuple_equal(const rn_tuple_t *a, const rn_tuple_t *b)
{
    return endpoint_equal(&a->local, &b->local) &&
           endpoint_equal(&a->remote, &b->remote);
}

static void
local_key(rn_endpoint_t *out, local_kind_t kind, const rn_endpoint_t *local)
{
    *out = *local;
    if (kind == LOCAL_BY_PORT)
        rn_addr_any(local->addr.family, &out->addr);
}

static rn_local_count_t **
local_slot(rn_table_t *table, local_kind_t kind, const rn_endpoint_t *local)
{
    rn_endpoint_t key;
    local_key(&key, kind, local);
    uint64_t hash = endpoint_hash(&key, 14695981039346656037ULL) ^ kind;
    rn_local_count_t **slot = &table->locals[hash % RN_LOCAL_BUCKETS];
    while (*slot &&
           ((*slot)->kind != kind || !endpoint_equal(&(*slot)->local, &key)))
        slot = &(*slot)->next;
    return slot;
}

static size_t
local_count(rn_table_t *table, local_kind_t kind, const rn_endpoint_t *local)
{
    rn_local_count_t *entry = *local_slot(table, kind, local);
    return entry ? entry->count : 0;
}

/* Adds delta (+1 or -1) to a count; 0 or -ENOMEM. */
static int
local_adjust(rn_table_t *table, local_kind_t kind, const rn_endpoint_t *local,
             int delta)
{
    rn_local_count_t **slot = local_slot(table, kind, local);
    if (*slot == NULL) {
        *slot = calloc(1, sizeof(**slot));
        if (*slot == NULL)
            return -ENOMEM;
        (*slot)->kind = kind;
        local_key(&(*slot)->local, kind, local);
    }
    (*slot)->count += delta;
    if ((*slot)->count == 0) {
        rn_local_count_t *gone = *slot;
        *slot = gone->next;
        free(gone);
    }
    return 0;
}

rn_table_t *
rn_table_new(void)
{
    rn_table_t *table = calloc(1, sizeof(*table));
    if (table == NULL)
        return NULL;
    table->buckets = calloc(RN_TABLE_INITIAL_BUCKETS, sizeof(*table->buckets));
    if (table->buckets == NULL) {
        free(table);
        return NULL;
    }
    table->nbuckets = RN_TABLE_INITIAL_BUCKETS;
    pthread_mutex_init(&table->lock, NULL);
    return table;
}

void
rn_table_free(rn_table_t *table)
{
    if (table == NULL)
        return;
    for (size_t i = 0; i < table->nbuckets; i++) {
        rn_entry_t *entry = table->buckets[i];
        while (entry) {
            rn_entry_t *next = entry->next;
            free(entry);
            entry = next;
        }
    }
    for (size_t i = 0; i < RN_LOCAL_BUCKETS; i++) {
        rn_local_count_t *entry = table->locals[i];
        while (entry) {
            rn_local_count_t *next = entry->next;
            free(entry);
            entry = next;
        }
    }
    pthread_mutex_destroy(&table->lock);
    free(table->buckets);
    free(table);
}

static rn_entry_t **
find_slot(rn_table_t *table, const rn_tuple_t *key)
{
    rn_entry_t **slot =
        &table->buckets[tuple_hash(key) & (table->nbuckets - 1)];
    while (*slot && !tuple_equal(&(*slot)->key, key))
        slot = &(*slot)->next;
    return slot;
}

/* Doubles the bucket array; on allocation failure the table stays as it is. */
static void
grow(rn_table_t *table)
{
    size_t nbuckets = table->nbuckets * 2;
    rn_entry_t **buckets = calloc(nbuckets, sizeof(*buckets));
    if (buckets == NULL)
        return;
    for (size_t i = 0; i < table->nbuckets; i++) {
        rn_entry_t *entry = table->buckets[i];
        while (entry) {
            rn_entry_t *next = entry->next;
            size_t index = tuple_hash(&entry->key) & (nbuckets - 1);
            entry->next = buckets[index];
            buckets[index] = entry;
            entry = next;
        }
    }
    free(table->buckets);
    table->buckets = buckets;
    table->nbuckets = nbuckets;
}

/* Finds the entry of (key, value), or the end of key's chain. */
static rn_entry_t **
find_value_slot(rn_table_t *table, const rn_tuple_t *key, const void *value)
{
    rn_entry_t **slot = find_slot(table, key);
    while (*slot && (*slot)->value != value) {
        slot = &(*slot)->next;
        while (*slot && !tuple_equal(&(*slot)->key, key))
            slot = &(*slot)->next;
    }
    return slot;
}

static int
insert(rn_table_t *table, const rn_tuple_t *key, void *value, bool shared)
{
    int rc = 0;
    rn_entry_t *entry = NULL;

    pthread_mutex_lock(&table->lock);
    rn_entry_t **slot = find_slot(table, key);
    if (*slot && !shared) {
        rc = -EEXIST;
        goto done;
    }
    while (*slot) /* the end of the chain */
        slot = &(*slot)->next;
    entry = malloc(sizeof(*entry));
    if (entry == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    rc = local_adjust(table, LOCAL_EXACT, &key->local, +1);
    if (rc < 0)
        goto done;
    rc = local_adjust(table, LOCAL_BY_PORT, &key->local, +1);
    if (rc < 0) {
        local_adjust(table, LOCAL_EXACT, &key->local, -1);
        goto done;
    }
    entry->key = *key;
    entry->value = value;
    entry->next = NULL;
    *slot = entry;
    entry = NULL;
    table->count++;
    if (table->count * 4 > table->nbuckets * 3)
        grow(table);
done:
    pthread_mutex_unlock(&table->lock);
    free(entry);
    return rc;
}

int
rn_table_insert(rn_table_t *table, const rn_tuple_t *key, void *value)
{
    return insert(table, key, value, false);
}

int
rn_table_insert_shared(rn_table_t *table, const rn_tuple_t *key, void *value)
{
    return insert(table, key, value, true);
}

static void
unlink_entry(rn_table_t *table, rn_entry_t **slot)
{
    rn_entry_t *entry = *slot;
    /* Decrements free memory and cannot fail. */
    local_adjust(table, LOCAL_EXACT, &entry->key.local, -1);
    local_adjust(table, LOCAL_BY_PORT, &entry->key.local, -1);
    *slot = entry->next;
    free(entry);
    table->count--;
}

int
rn_table_remove(rn_table_t *table, const rn_tuple_t *key)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&table->lock);
    rn_entry_t **slot = find_slot(table, key);
    if (*slot) {
        unlink_entry(table, slot);
        rc = 0;
    }
    pthread_mutex_unlock(&table->lock);
    return rc;
}

int
rn_table_remove_value(rn_table_t *table, const rn_tuple_t *key,
                      const void *value)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&table->lock);
    rn_entry_t **slot = find_value_slot(table, key, value);
    if (*slot) {
        unlink_entry(table, slot);
        rc = 0;
    }
    pthread_mutex_unlock(&table->lock);
    return rc;
}

void *
rn_table_lookup(rn_table_t *table, const rn_tuple_t *key)
{
    pthread_mutex_lock(&table->lock);
    rn_entry_t *entry = *find_slot(table, key);
    void *value = entry ? entry->value : NULL;
    pthread_mutex_unlock(&table->lock);
    return value;
}

void *
rn_table_lookup_unique(rn_table_t *table, const rn_tuple_t *key)
{
    pthread_mutex_lock(&table->lock);
    rn_entry_t *entry = *find_slot(table, key);
    void *value = NULL;
    if (entry) {
        rn_entry_t *next = entry->next;
        while (next && !tuple_equal(&next->key, key))
            next = next->next;
        value = next ? NULL : entry->value;
    }
    pthread_mutex_unlock(&table->lock);
    return value;
}

bool
rn_table_local_conflict(rn_table_t *table, const rn_tuple_t *key)
{
    const rn_endpoint_t *local = &key->local;
    rn_endpoint_t wildcard = *local;
    bool conflict;

    rn_addr_any(local->addr.family, &wildcard.addr);
    pthread_mutex_lock(&table->lock);
    if (rn_addr_is_any(&local->addr))
        /* A wildcard clashes with anything of its family on its port. */
        conflict = local_count(table, LOCAL_BY_PORT, local) > 0;
    else
        conflict = local_count(table, LOCAL_EXACT, local) > 0 ||
                   local_count(table, LOCAL_EXACT, &wildcard) > 0;
    pthread_mutex_unlock(&table->lock);
    return conflict;
}

size_t
rn_table_count(rn_table_t *table)
{
    pthread_mutex_lock(&table->lock);
    size_t count = table->count;
    pthread_mutex_unlock(&table->lock);
    return count;
}

void
rn_tuple_local(rn_tuple_t *out, const rn_addr_t *addr, uint16_t port)
{
    memset(out, 0, sizeof(*out));
    out->local.addr = *addr;
    out->local.port = port;
}
