/*
 * fuzz_table.c: libFuzzer target for rn_table, the bookkeeping tables.
 *
 * The input is a sequence of operations (insert, remove, remove_value,
 * lookup, local_conflict) over a small universe of tuples, so that inputs
 * collide often.  Every operation is replayed on a plain array model, and
 * the table must agree with the model on every return value, on every
 * lookup and on the count, after every step.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rn_table.h"

#define FUZZ_CHECK(cond)                                                \
    do {                                                                \
        if (!(cond))                                                    \
            __builtin_trap();                                           \
    } while (0)

/* Indexes 0 and 4 are the wildcards of each family. */
static const char *const LITERALS[] = {
    NULL, "127.0.0.1", "127.0.0.2", "10.1.2.3",
    NULL, "::1", "fd00::1", "2001:db8::7",
};
static const uint16_t PORTS[] = {1, 2, 63100, 65535};
#define MODEL_MAX 512

typedef struct model_entry {
    rn_tuple_t key;
    void *value;
} model_entry_t;

static model_entry_t model[MODEL_MAX];
static size_t model_count;

static void
make_addr(unsigned pick, rn_addr_t *out)
{
    const char *literal = LITERALS[pick % 8];
    sa_family_t family = pick % 8 < 4 ? AF_INET : AF_INET6;
    if (literal == NULL) {
        rn_addr_any(family, out);
        return;
    }
    FUZZ_CHECK(rn_addr_parse(literal, strlen(literal), out) == family);
}

/* Four bytes pick a tuple: local address and port, remote (or none). */
static void
make_tuple(const uint8_t *pick, rn_tuple_t *out)
{
    rn_addr_t local;
    make_addr(pick[0], &local);
    rn_tuple_local(out, &local, PORTS[pick[1] % 4]);
    if (pick[2] % 3 != 0) {
        /* A connection's remote end, of the local end's family. */
        unsigned family_base = local.family == AF_INET ? 0 : 4;
        make_addr(family_base + 1 + pick[2] % 3, &out->remote.addr);
        out->remote.port = PORTS[pick[3] % 4];
    }
}

static bool
same_key(const rn_tuple_t *a, const rn_tuple_t *b)
{
    return rn_addr_equal(&a->local.addr, &b->local.addr) &&
           a->local.port == b->local.port &&
           rn_addr_equal(&a->remote.addr, &b->remote.addr) &&
           a->remote.port == b->remote.port;
}

static model_entry_t *
model_find(const rn_tuple_t *key)
{
    for (size_t i = 0; i < model_count; i++)
        if (same_key(&model[i].key, key))
            return &model[i];
    return NULL;
}

static void
model_drop(model_entry_t *entry)
{
    *entry = model[--model_count];
}

static bool
model_conflict(const rn_tuple_t *key)
{
    const rn_endpoint_t *mine = &key->local;
    for (size_t i = 0; i < model_count; i++) {
        const rn_endpoint_t *theirs = &model[i].key.local;
        if (theirs->addr.family != mine->addr.family ||
            theirs->port != mine->port)
            continue;
        if (rn_addr_equal(&theirs->addr, &mine->addr) ||
            rn_addr_is_any(&theirs->addr) || rn_addr_is_any(&mine->addr))
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rn_table_t *table = rn_table_new();
    if (table == NULL)
        return 0;
    model_count = 0;

    /* Each step: an opcode, four tuple bytes and a value byte. */
    for (size_t at = 0; at + 6 <= size; at += 6) {
        rn_tuple_t key;
        make_tuple(data + at + 1, &key);
        void *value = (void *)(uintptr_t)(data[at + 5] % 4 + 1);
        model_entry_t *found = model_find(&key);

        switch (data[at] % 5) {
        case 0: {
            int rc = rn_table_insert(table, &key, value);
            if (found != NULL) {
                FUZZ_CHECK(rc == -EEXIST);
            } else if (model_count < MODEL_MAX) {
                FUZZ_CHECK(rc == 0);
                model[model_count].key = key;
                model[model_count].value = value;
                model_count++;
            } else {
                /* The model is full: undo so both stay in step. */
                FUZZ_CHECK(rc == 0);
                FUZZ_CHECK(rn_table_remove(table, &key) == 0);
            }
            break;
        }
        case 1:
            FUZZ_CHECK(rn_table_remove(table, &key) == (found ? 0 : -ENOENT));
            if (found)
                model_drop(found);
            break;
        case 2: {
            bool matches = found != NULL && found->value == value;
            FUZZ_CHECK(rn_table_remove_value(table, &key, value) ==
                       (matches ? 0 : -ENOENT));
            if (matches)
                model_drop(found);
            break;
        }
        case 3:
            FUZZ_CHECK(rn_table_lookup(table, &key) ==
                       (found ? found->value : NULL));
            break;
        default:
            FUZZ_CHECK(rn_table_local_conflict(table, &key) ==
                       model_conflict(&key));
            break;
        }
        FUZZ_CHECK(rn_table_count(table) == model_count);
    }

    /* Every entry the model holds is in the table with its value. */
    for (size_t i = 0; i < model_count; i++)
        FUZZ_CHECK(rn_table_lookup(table, &model[i].key) == model[i].value);
    rn_table_free(table);
    return 0;
}
