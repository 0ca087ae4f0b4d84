/* Unit tests of the FIFOs in rn_port.c: rn_fifo_t and rn_signal_fifo_t. */
#include "rn_port.h"
#include "rn_test.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>

/* An item as users embed the link: first. */
typedef struct {
    rn_fifo_link_t link;
    int value;
} item_t;

/* Whether fd polls readable now. */
static int
readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN) != 0;
}

RN_TEST(fifo_pops_in_push_order_and_unlinks_anywhere)
{
    rn_fifo_t fifo = {NULL, NULL};
    item_t items[4] = {{.value = 0}, {.value = 1}, {.value = 2}, {.value = 3}};
    for (int i = 0; i < 4; i++)
        rn_fifo_push(&fifo, &items[i].link);
    RN_CHECK_EQ(rn_fifo_unlink(&fifo, &items[3].link), 0); /* the tail */
    RN_CHECK_EQ(rn_fifo_unlink(&fifo, &items[1].link), 0); /* the middle */
    RN_CHECK_EQ(rn_fifo_unlink(&fifo, &items[1].link), -ENOENT);
    rn_fifo_push(&fifo, &items[3].link); /* the tail was kept right */
    RN_CHECK_EQ(((item_t *)rn_fifo_pop(&fifo))->value, 0);
    RN_CHECK_EQ(((item_t *)rn_fifo_pop(&fifo))->value, 2);
    RN_CHECK_EQ(((item_t *)rn_fifo_pop(&fifo))->value, 3);
    RN_CHECK(rn_fifo_pop(&fifo) == NULL);
    RN_CHECK(fifo.head == NULL && fifo.tail == NULL);
}

RN_TEST(signal_fifo_is_readable_exactly_while_it_holds_items)
{
    rn_signal_fifo_t fifo;
    item_t a = {.value = 1}, b = {.value = 2}, c = {.value = 3};
    RN_CHECK_EQ(rn_signal_fifo_init(&fifo), 0);
    RN_CHECK(!readable(fifo.efd));
    RN_CHECK(!rn_signal_fifo_ready(&fifo));
    rn_signal_fifo_push(&fifo, &a.link);
    rn_signal_fifo_push(&fifo, &b.link);
    RN_CHECK(readable(fifo.efd));
    RN_CHECK(rn_signal_fifo_ready(&fifo));

    rn_fifo_link_t *list = rn_signal_fifo_take(&fifo);
    RN_CHECK(list == &a.link && list->next == &b.link && b.link.next == NULL);
    RN_CHECK(!readable(fifo.efd));
    RN_CHECK(rn_signal_fifo_take(&fifo) == NULL);

    /* What comes back goes in front of what was pushed meanwhile. */
    rn_signal_fifo_push(&fifo, &c.link);
    rn_signal_fifo_put_back(&fifo, list);
    RN_CHECK(readable(fifo.efd));
    list = rn_signal_fifo_take(&fifo);
    RN_CHECK(list == &a.link && a.link.next == &b.link &&
             b.link.next == &c.link && c.link.next == NULL);
    RN_CHECK(!readable(fifo.efd));
    rn_signal_fifo_destroy(&fifo);
    RN_CHECK_EQ(fifo.efd, -1);
}

RN_TEST(signal_fifo_put_back_of_nothing_signals_nothing)
{
    rn_signal_fifo_t fifo;
    RN_CHECK_EQ(rn_signal_fifo_init(&fifo), 0);
    rn_signal_fifo_put_back(&fifo, NULL);
    RN_CHECK(!readable(fifo.efd));
    rn_signal_fifo_destroy(&fifo);
}
