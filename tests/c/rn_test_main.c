/*
 * rn_test_main.c: the runner for tests/c binaries.
 *
 * `binary --list` prints one test name a line; `binary NAME` runs that one
 * test and exits 0 when it passed, RN_TEST_SKIPPED (77) when it skipped
 * itself; `binary` alone runs them all and ends with an
 * "N passed, N failed, N skipped" line.
 */
#include "rn_test.h"
#include "rn_test_asock.h"
#include "rn_test_support.h"

#include <stdlib.h>

#define RN_TEST_MAX 1024

static struct {
    const char *name;
    rn_test_fn fn;
} tests[RN_TEST_MAX];
static int test_count;
static int failures;
static const char *skip_reason;

void
rn_test_register(const char *name, rn_test_fn fn)
{
    if (test_count == RN_TEST_MAX) {
        fprintf(stderr, "rn_test: more than %d tests\n", RN_TEST_MAX);
        exit(2);
    }
    tests[test_count].name = name;
    tests[test_count].fn = fn;
    test_count++;
}

void
rn_test_fail(const char *file, int line, const char *message)
{
    fprintf(stderr, "%s:%d: %s\n", file, line, message);
    failures++;
}

void
rn_test_skip(const char *reason)
{
    skip_reason = reason;
}

int
rn_test_failed(void)
{
    return failures > 0;
}

/* The exit status of one test: 0 passed, 1 failed, RN_TEST_SKIPPED. */
static int
run(int index)
{
    int before = failures;
    skip_reason = NULL;
    test_support_reset();
    cb_reset();
    tests[index].fn();
    if (failures != before)
        return 1;
    if (skip_reason != NULL) {
        printf("skipped: %s\n", skip_reason);
        return RN_TEST_SKIPPED;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < test_count; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    if (argc == 2) {
        for (int i = 0; i < test_count; i++)
            if (strcmp(tests[i].name, argv[1]) == 0)
                return run(i);
        fprintf(stderr, "rn_test: no test named %s\n", argv[1]);
        return 2;
    }
    int passed = 0, skipped = 0;
    for (int i = 0; i < test_count; i++) {
        int status = run(i);
        if (status == 0)
            passed++;
        else if (status == RN_TEST_SKIPPED)
            skipped++;
        else
            fprintf(stderr, "FAILED %s\n", tests[i].name);
    }
    int failed = test_count - passed - skipped;
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed == 0 ? 0 : 1;
}
