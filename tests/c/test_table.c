/* Unit tests of rn_table.c: the seed-000 bookkeeping tables (D15, D24). */
#include "rn.h"
#include "rn_test.h"

#include <errno.h>
#include <pthread.h>

static rn_tuple_t
listener(const char *ip, uint16_t port)
{
    rn_tuple_t key;
    rn_addr_t addr;
    if (strcmp(ip, "0.0.0.0") == 0)
        rn_addr_any(AF_INET, &addr);
    else if (strcmp(ip, "::") == 0)
        rn_addr_any(AF_INET6, &addr);
    else
        rn_addr_parse(ip, strlen(ip), &addr);
    rn_tuple_local(&key, &addr, port);
    return key;
}

static rn_tuple_t
connection(const char *local, uint16_t lport, const char *remote,
           uint16_t rport)
{
    rn_tuple_t key = listener(local, lport);
    rn_addr_parse(remote, strlen(remote), &key.remote.addr);
    key.remote.port = rport;
    return key;
}

RN_TEST(insert_lookup_remove)
{
    rn_table_t *t = rn_table_new();
    int value = 7;
    rn_tuple_t key = listener("127.0.0.1", 63100);
    RN_CHECK(t != NULL);
    RN_CHECK_EQ(rn_table_insert(t, &key, &value), 0);
    RN_CHECK_EQ(rn_table_count(t), 1);
    RN_CHECK(rn_table_lookup(t, &key) == &value);
    RN_CHECK_EQ(rn_table_insert(t, &key, &value), -EEXIST);
    RN_CHECK_EQ(rn_table_remove(t, &key), 0);
    RN_CHECK_EQ(rn_table_remove(t, &key), -ENOENT);
    RN_CHECK(rn_table_lookup(t, &key) == NULL);
    RN_CHECK_EQ(rn_table_count(t), 0);
    rn_table_free(t);
}

RN_TEST(connection_tuples_match_on_all_four_columns)
{
    rn_table_t *t = rn_table_new();
    int value;
    rn_tuple_t a = connection("127.0.0.1", 63100, "127.0.0.1", 63101);
    rn_tuple_t b = connection("127.0.0.1", 63100, "127.0.0.1", 63102);
    rn_tuple_t c = connection("127.0.0.1", 63100, "127.0.0.2", 63101);
    RN_CHECK_EQ(rn_table_insert(t, &a, &value), 0);
    RN_CHECK_EQ(rn_table_insert(t, &b, &value), 0);
    RN_CHECK_EQ(rn_table_insert(t, &c, &value), 0);
    RN_CHECK_EQ(rn_table_insert(t, &a, &value), -EEXIST);
    RN_CHECK_EQ(rn_table_count(t), 3);
    rn_table_free(t);
}

RN_TEST(addresses_are_keyed_by_value)
{
    rn_table_t *t = rn_table_new();
    int value;
    rn_tuple_t a = listener("::1", 63100);
    rn_tuple_t b = listener("0:0::1", 63100);
    RN_CHECK_EQ(rn_table_insert(t, &a, &value), 0);
    RN_CHECK(rn_table_lookup(t, &b) == &value);
    rn_table_free(t);
}

RN_TEST(remove_value_only_removes_its_own_entry)
{
    rn_table_t *t = rn_table_new();
    int first, second;
    rn_tuple_t key = listener("127.0.0.1", 63100);
    rn_table_insert(t, &key, &first);
    RN_CHECK_EQ(rn_table_remove_value(t, &key, &second), -ENOENT);
    RN_CHECK_EQ(rn_table_count(t), 1);
    RN_CHECK_EQ(rn_table_remove_value(t, &key, &first), 0);
    RN_CHECK_EQ(rn_table_count(t), 0);
    rn_table_free(t);
}

RN_TEST(lookup_unique_finds_only_a_tuple_with_one_entry)
{
    rn_table_t *t = rn_table_new();
    int first, second, other;
    rn_tuple_t key = connection("127.0.0.1", 63100, "127.0.0.1", 63101);
    rn_tuple_t reversed = connection("127.0.0.1", 63101, "127.0.0.1", 63100);
    RN_CHECK(rn_table_lookup_unique(t, &key) == NULL);
    rn_table_insert(t, &key, &first);
    rn_table_insert(t, &reversed, &other);
    RN_CHECK(rn_table_lookup_unique(t, &key) == &first);
    RN_CHECK_EQ(rn_table_insert_shared(t, &key, &second), 0);
    RN_CHECK(rn_table_lookup_unique(t, &key) == NULL);
    RN_CHECK(rn_table_lookup_unique(t, &reversed) == &other);
    RN_CHECK_EQ(rn_table_remove_value(t, &key, &first), 0);
    RN_CHECK(rn_table_lookup_unique(t, &key) == &second);
    rn_table_free(t);
}

RN_TEST(local_conflict_exact_and_wildcard)
{
    rn_table_t *t = rn_table_new();
    int value;
    rn_tuple_t specific = listener("127.0.0.1", 63100);
    rn_tuple_t other_ip = listener("127.0.0.2", 63100);
    rn_tuple_t other_port = listener("127.0.0.1", 63101);
    rn_tuple_t any = listener("0.0.0.0", 63100);
    rn_tuple_t v6 = listener("::1", 63100);
    rn_tuple_t v6any = listener("::", 63100);

    rn_table_insert(t, &specific, &value);
    RN_CHECK(rn_table_local_conflict(t, &specific));
    RN_CHECK(!rn_table_local_conflict(t, &other_ip));
    RN_CHECK(!rn_table_local_conflict(t, &other_port));
    /* A wildcard key clashes with a specific holder of its family... */
    RN_CHECK(rn_table_local_conflict(t, &any));
    /* ...but not across families. */
    RN_CHECK(!rn_table_local_conflict(t, &v6));
    RN_CHECK(!rn_table_local_conflict(t, &v6any));
    rn_table_remove(t, &specific);

    /* A wildcard holder clashes with every specific key of its family. */
    rn_table_insert(t, &any, &value);
    RN_CHECK(rn_table_local_conflict(t, &specific));
    RN_CHECK(rn_table_local_conflict(t, &other_ip));
    RN_CHECK(!rn_table_local_conflict(t, &other_port));
    RN_CHECK(!rn_table_local_conflict(t, &v6));
    rn_table_remove(t, &any);
    RN_CHECK(!rn_table_local_conflict(t, &specific));
    RN_CHECK(!rn_table_local_conflict(t, &any));
    rn_table_free(t);
}

RN_TEST(local_conflict_sees_connections_on_the_local_end)
{
    rn_table_t *t = rn_table_new();
    int value;
    rn_tuple_t conn = connection("127.0.0.1", 63100, "127.0.0.1", 80);
    rn_tuple_t local = listener("127.0.0.1", 63100);
    rn_table_insert(t, &conn, &value);
    RN_CHECK(rn_table_local_conflict(t, &local));
    RN_CHECK(rn_table_lookup(t, &local) == NULL);
    rn_table_remove(t, &conn);
    RN_CHECK(!rn_table_local_conflict(t, &local));
    rn_table_free(t);
}

RN_TEST(many_entries_grow_and_shrink)
{
    rn_table_t *t = rn_table_new();
    int value;
    for (int port = 1; port <= 5000; port++) {
        rn_tuple_t key = connection("127.0.0.1", (uint16_t)port, "::1", 9);
        RN_CHECK_EQ(rn_table_insert(t, &key, &value), 0);
    }
    RN_CHECK_EQ(rn_table_count(t), 5000);
    for (int port = 1; port <= 5000; port++) {
        rn_tuple_t key = connection("127.0.0.1", (uint16_t)port, "::1", 9);
        RN_CHECK(rn_table_lookup(t, &key) == &value);
    }
    for (int port = 1; port <= 5000; port += 2) {
        rn_tuple_t key = connection("127.0.0.1", (uint16_t)port, "::1", 9);
        RN_CHECK_EQ(rn_table_remove(t, &key), 0);
    }
    RN_CHECK_EQ(rn_table_count(t), 2500);
    rn_tuple_t odd = listener("127.0.0.1", 1), even = listener("127.0.0.1", 2);
    RN_CHECK(!rn_table_local_conflict(t, &odd));
    RN_CHECK(rn_table_local_conflict(t, &even));
    rn_table_free(t);
}

struct worker_arg {
    rn_table_t *table;
    int base;
};

static void *
hammer(void *raw)
{
    struct worker_arg *arg = raw;
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 50; i++) {
            rn_tuple_t key = listener("127.0.0.1", (uint16_t)(arg->base + i));
            rn_table_insert(arg->table, &key, arg);
        }
        for (int i = 0; i < 50; i++) {
            rn_tuple_t key = listener("127.0.0.1", (uint16_t)(arg->base + i));
            rn_table_remove(arg->table, &key);
        }
    }
    return NULL;
}

RN_TEST(concurrent_use_from_threads)
{
    rn_table_t *t = rn_table_new();
    pthread_t threads[4];
    struct worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].table = t;
        args[i].base = 1000 + i * 100;
        pthread_create(&threads[i], NULL, hammer, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    RN_CHECK_EQ(rn_table_count(t), 0);
    rn_table_free(t);
}

/* getconnection: Linux may hand a new connection the 4-tuple of one still
 * in the table; both keep an entry and each close removes its own. */
RN_TEST(shared_tuple_keeps_both_entries_and_removes_by_value)
{
    rn_table_t *t = rn_table_new();
    int old_socket, new_socket;
    rn_tuple_t key = connection("127.0.0.1", 63100, "127.0.0.1", 63101);
    RN_CHECK_EQ(rn_table_insert_shared(t, &key, &old_socket), 0);
    RN_CHECK_EQ(rn_table_insert_shared(t, &key, &new_socket), 0);
    RN_CHECK_EQ(rn_table_count(t), 2);
    RN_CHECK(rn_table_local_conflict(t, &key));
    /* Removing a value the tuple does not map to changes nothing. */
    int stranger;
    RN_CHECK_EQ(rn_table_remove_value(t, &key, &stranger), -ENOENT);
    RN_CHECK_EQ(rn_table_remove_value(t, &key, &old_socket), 0);
    RN_CHECK_EQ(rn_table_count(t), 1);
    RN_CHECK(rn_table_lookup(t, &key) == &new_socket);
    RN_CHECK_EQ(rn_table_remove_value(t, &key, &old_socket), -ENOENT);
    RN_CHECK(rn_table_local_conflict(t, &key));
    RN_CHECK_EQ(rn_table_remove_value(t, &key, &new_socket), 0);
    RN_CHECK_EQ(rn_table_count(t), 0);
    RN_CHECK(!rn_table_local_conflict(t, &key));
    RN_CHECK(rn_table_lookup(t, &key) == NULL);
    rn_table_free(t);
}

/* The second of two shared entries is found even behind other tuples of
 * the same bucket (here: many tuples, then a removal of the newer). */
RN_TEST(shared_tuple_removal_of_the_newer_entry_among_many)
{
    rn_table_t *t = rn_table_new();
    int values[200];
    rn_tuple_t keys[200];
    for (int i = 0; i < 200; i++) {
        keys[i] =
            connection("127.0.0.1", 63100, "127.0.0.1", (uint16_t)(1000 + i));
        RN_CHECK_EQ(rn_table_insert_shared(t, &keys[i], &values[i]), 0);
    }
    int twin;
    RN_CHECK_EQ(rn_table_insert_shared(t, &keys[57], &twin), 0);
    RN_CHECK_EQ(rn_table_remove_value(t, &keys[57], &twin), 0);
    RN_CHECK(rn_table_lookup(t, &keys[57]) == &values[57]);
    for (int i = 0; i < 200; i++)
        RN_CHECK_EQ(rn_table_remove_value(t, &keys[i], &values[i]), 0);
    RN_CHECK_EQ(rn_table_count(t), 0);
    rn_table_free(t);
}
