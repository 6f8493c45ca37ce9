/*
 * check_list.c - tests for wharf_list.h, the intrusive circular list that
 * the framework and the handlers share: empty heads, insertion at the head,
 * the tail and after an element, removal of the first, last and a middle
 * element, removal while walking (the _safe walk), removing twice, first and
 * last, the reverse walk, and a static head.
 */
#include "check_main.h"
#include "wharf_list.h"

#include <check.h>
#include <stddef.h>

struct item {
    int value;
    struct wharf_list link;
};

/* Writes the values of h, first to last, into out; returns how many (at
 * most max).  Also checks that every link's neighbours point back at it. */
static size_t values(const struct wharf_list *h, int *out, size_t max)
{
    size_t n = 0;
    const struct wharf_list *it;
    for (it = h->next; it != h && n < max; it = it->next) {
        ck_assert_ptr_eq(it->next->prev, it);
        ck_assert_ptr_eq(it->prev->next, it);
        out[n++] = wharf_list_entry(it, struct item, link)->value;
    }
    ck_assert_ptr_eq(h->next->prev, h);
    ck_assert_ptr_eq(h->prev->next, h);
    return n;
}

#define ck_assert_list(h, ...)                                                             \
    do {                                                                                   \
        static const int want_[] = {__VA_ARGS__};                                          \
        int got_[16];                                                                      \
        size_t n_ = values((h), got_, 16);                                                 \
        ck_assert_uint_eq(n_, sizeof want_ / sizeof want_[0]);                             \
        for (size_t i_ = 0; i_ < n_; i_++)                                                 \
            ck_assert_int_eq(got_[i_], want_[i_]);                                         \
    } while (0)

/* A list holding items[0..n) in order, inserted at the tail. */
static void fill(struct wharf_list *h, struct item *items, int n)
{
    wharf_list_init(h);
    for (int i = 0; i < n; i++) {
        items[i].value = i;
        wharf_list_insert_tail(h, &items[i].link);
    }
}

START_TEST(test_empty)
{
    struct wharf_list h;
    wharf_list_init(&h);
    ck_assert(wharf_list_empty(&h));
    ck_assert_ptr_null(wharf_list_first(&h));
    ck_assert_ptr_null(wharf_list_last(&h));
    int walked = 0;
    struct wharf_list *it, *tmp;
    wharf_list_foreach(it, &h) walked++;
    wharf_list_foreach_safe(it, tmp, &h) walked++;
    wharf_list_foreach_reverse(it, &h) walked++;
    ck_assert_int_eq(walked, 0);

    /* One in, one out: empty again. */
    struct item a = {.value = 1};
    wharf_list_insert_tail(&h, &a.link);
    ck_assert(!wharf_list_empty(&h));
    ck_assert(wharf_list_linked(&a.link));
    ck_assert_ptr_eq(wharf_list_first(&h), &a.link);
    ck_assert_ptr_eq(wharf_list_last(&h), &a.link);
    wharf_list_remove(&a.link);
    ck_assert(wharf_list_empty(&h));
    ck_assert(!wharf_list_linked(&a.link));
    ck_assert_ptr_eq(h.next, &h);
    ck_assert_ptr_eq(h.prev, &h);
}
END_TEST

START_TEST(test_insert_head_and_tail)
{
    struct wharf_list h;
    struct item it[4] = {{.value = 0}, {.value = 1}, {.value = 2}, {.value = 3}};
    wharf_list_init(&h);
    wharf_list_insert_tail(&h, &it[1].link);
    wharf_list_insert_head(&h, &it[0].link);
    wharf_list_insert_tail(&h, &it[3].link);
    ck_assert_list(&h, 0, 1, 3);
    /* After an element: in the middle, and after the last one. */
    wharf_list_insert_after(&it[1].link, &it[2].link);
    ck_assert_list(&h, 0, 1, 2, 3);
    ck_assert_ptr_eq(wharf_list_first(&h), &it[0].link);
    ck_assert_ptr_eq(wharf_list_last(&h), &it[3].link);
    /* After the head is at the head. */
    struct item z = {.value = -1};
    wharf_list_insert_after(&h, &z.link);
    ck_assert_list(&h, -1, 0, 1, 2, 3);
}
END_TEST

START_TEST(test_remove_head_tail_middle)
{
    struct wharf_list h;
    struct item it[5];
    fill(&h, it, 5);
    ck_assert_list(&h, 0, 1, 2, 3, 4);
    wharf_list_remove(&it[0].link); /* the first */
    ck_assert_list(&h, 1, 2, 3, 4);
    wharf_list_remove(&it[4].link); /* the last */
    ck_assert_list(&h, 1, 2, 3);
    wharf_list_remove(&it[2].link); /* a middle one */
    ck_assert_list(&h, 1, 3);
    ck_assert_ptr_eq(wharf_list_first(&h), &it[1].link);
    ck_assert_ptr_eq(wharf_list_last(&h), &it[3].link);
    /* A removed element points at itself: removing it again changes nothing. */
    ck_assert(!wharf_list_linked(&it[2].link));
    wharf_list_remove(&it[2].link);
    ck_assert_list(&h, 1, 3);
    /* And it can go back in. */
    wharf_list_insert_after(&it[1].link, &it[2].link);
    ck_assert_list(&h, 1, 2, 3);
    wharf_list_remove(&it[1].link);
    wharf_list_remove(&it[2].link);
    wharf_list_remove(&it[3].link);
    ck_assert(wharf_list_empty(&h));
}
END_TEST

START_TEST(test_remove_while_walking)
{
    struct wharf_list h;
    struct item it[6];
    struct wharf_list *e, *tmp;

    /* Every other one. */
    fill(&h, it, 6);
    int seen = 0;
    wharf_list_foreach_safe(e, tmp, &h) {
        struct item *x = wharf_list_entry(e, struct item, link);
        seen++;
        if (x->value % 2 == 0)
            wharf_list_remove(e);
    }
    ck_assert_int_eq(seen, 6);
    ck_assert_list(&h, 1, 3, 5);

    /* All of them (an owner's teardown). */
    seen = 0;
    wharf_list_foreach_safe(e, tmp, &h) {
        wharf_list_remove(e);
        seen++;
    }
    ck_assert_int_eq(seen, 3);
    ck_assert(wharf_list_empty(&h));

    /* Draining from the front, as htimer_stop_all does. */
    fill(&h, it, 6);
    seen = 0;
    while ((e = wharf_list_first(&h)) != NULL) {
        ck_assert_int_eq(wharf_list_entry(e, struct item, link)->value, seen);
        wharf_list_remove(e);
        seen++;
    }
    ck_assert_int_eq(seen, 6);

    /* Inserting at the head while walking forward does not visit the new
     * element (conn_shutdown relies on that). */
    fill(&h, it, 3);
    struct item extra[3];
    seen = 0;
    wharf_list_foreach(e, &h) {
        extra[seen].value = 10 + seen;
        wharf_list_insert_head(&h, &extra[seen].link);
        seen++;
    }
    ck_assert_int_eq(seen, 3);
    ck_assert_list(&h, 12, 11, 10, 0, 1, 2);
}
END_TEST

START_TEST(test_reverse_walk)
{
    struct wharf_list h;
    struct item it[4];
    fill(&h, it, 4);
    int want = 3;
    struct wharf_list *e;
    wharf_list_foreach_reverse(e, &h) {
        ck_assert_int_eq(wharf_list_entry(e, struct item, link)->value, want);
        want--;
    }
    ck_assert_int_eq(want, -1);
}
END_TEST

/* An LRU as the memcache store (mc_store.c) keeps it: use moves to the front, the back goes. */
START_TEST(test_move_to_front)
{
    struct wharf_list h;
    struct item it[4];
    fill(&h, it, 4);
    wharf_list_remove(&it[2].link);
    wharf_list_insert_head(&h, &it[2].link);
    ck_assert_list(&h, 2, 0, 1, 3);
    wharf_list_remove(&it[3].link); /* the last one: the tail moves back */
    wharf_list_insert_head(&h, &it[3].link);
    ck_assert_list(&h, 3, 2, 0, 1);
    ck_assert_ptr_eq(wharf_list_last(&h), &it[1].link);
}
END_TEST

static struct wharf_list static_head = WHARF_LIST_INIT(static_head);

START_TEST(test_static_head)
{
    ck_assert(wharf_list_empty(&static_head));
    struct item a = {.value = 7};
    wharf_list_insert_tail(&static_head, &a.link);
    ck_assert_list(&static_head, 7);
    wharf_list_remove(&a.link);
    ck_assert(wharf_list_empty(&static_head));
}
END_TEST

static Suite *list_suite(void)
{
    Suite *s = suite_create("list");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_insert_head_and_tail);
    tcase_add_test(tc, test_remove_head_tail_middle);
    tcase_add_test(tc, test_remove_while_walking);
    tcase_add_test(tc, test_reverse_walk);
    tcase_add_test(tc, test_move_to_front);
    tcase_add_test(tc, test_static_head);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(list_suite());
}
