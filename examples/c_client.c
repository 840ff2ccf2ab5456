/* c_client: the C API against a running cluster. Writes a key, reads it back, runs a
 * transaction whose guard holds and one whose guard fails, and watches a prefix from the first
 * write's revision, printing one line per step. Exits 0 only if every step behaved.
 *
 *   cc examples/c_client.c -Iinclude -Ltarget/release -l:libharness.a -lpthread -ldl -lm -o c_client
 *   ./c_client 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
 *   ./c_client 127.0.0.1:7101,... cluster.key [encrypt]     (members run with --key-file)
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static int fail(const char *step, int code) {
    fprintf(stderr, "c_client: %s: %s (%s)\n", step, harness_strerror(code), harness_last_error());
    return 1;
}

struct seen {
    int events;
    char last_key[64];
};

static int on_event(void *ctx, uint64_t revision, int is_delete, const uint8_t *key, size_t key_len,
                    const uint8_t *value, size_t value_len) {
    struct seen *seen = ctx;
    printf("watch: %s %.*s %.*s (revision %llu)\n", is_delete ? "DELETE" : "PUT", (int)key_len,
           (const char *)key, (int)value_len, (const char *)value, (unsigned long long)revision);
    seen->events += 1;
    snprintf(seen->last_key, sizeof seen->last_key, "%.*s", (int)key_len, (const char *)key);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4 || (argc == 4 && strcmp(argv[3], "encrypt") != 0)) {
        fprintf(stderr, "usage: c_client HOST:PORT,HOST:PORT,... [KEY_FILE [encrypt]]\n");
        return 2;
    }
    harness_client *client = argc == 2 ? harness_connect(argv[1], 2000)
                                       : harness_connect_keyed(argv[1], 2000, argv[2], NULL, argc == 4);
    if (client == NULL) {
        fprintf(stderr, "c_client: connect: %s\n", harness_last_error());
        return 1;
    }
    const char *key = "c/greeting";
    const char *value = "hello from C";
    uint64_t first = 0;
    int code = harness_put(client, (const uint8_t *)key, strlen(key), (const uint8_t *)value,
                           strlen(value), &first);
    if (code != HARNESS_OK) return fail("put", code);
    printf("put: %s = %s (revision %llu)\n", key, value, (unsigned long long)first);

    uint8_t *read = NULL;
    size_t read_len = 0;
    uint64_t mod_revision = 0;
    code = harness_get(client, (const uint8_t *)key, strlen(key), 0, &read, &read_len, &mod_revision);
    if (code != HARNESS_OK) return fail("get", code);
    int same = read_len == strlen(value) && memcmp(read, value, read_len) == 0;
    printf("get: %.*s (mod revision %llu)\n", (int)read_len, (const char *)read,
           (unsigned long long)mod_revision);
    harness_free(read, read_len);
    if (!same || mod_revision != first) {
        fprintf(stderr, "c_client: get returned another value or revision\n");
        return 1;
    }

    code = harness_get(client, (const uint8_t *)"c/missing", 9, 1, &read, &read_len, NULL);
    if (code != HARNESS_NOT_FOUND) return fail("get of a missing key", code);
    printf("get c/missing: %s\n", harness_strerror(code));

    uint64_t revision = 0;
    code = harness_txn(client, "if c/greeting = hello from C\nthen put c/state moved\n", &revision);
    if (code != HARNESS_OK) return fail("txn", code);
    printf("txn: guard held (revision %llu)\n", (unsigned long long)revision);
    code = harness_txn(client, "if c/greeting missing\nthen put c/state wrong\nelse get c/state\n", &revision);
    if (code != HARNESS_GUARD_FAILED) return fail("txn with a failing guard", code);
    printf("txn: %s as expected (revision %llu)\n", harness_strerror(code), (unsigned long long)revision);

    code = harness_txn(client, "when nothing", NULL);
    if (code != HARNESS_BAD_ARGUMENT) return fail("malformed txn", code);
    printf("bad txn: %s: %s\n", harness_strerror(code), harness_last_error());

    struct seen seen = {0, ""};
    code = harness_watch(client, (const uint8_t *)"c/", 2, first, 5000, 2, on_event, &seen);
    if (code != HARNESS_OK) return fail("watch", code);
    if (seen.events != 2 || strcmp(seen.last_key, "c/state") != 0) {
        fprintf(stderr, "c_client: watch saw %d events, last %s\n", seen.events, seen.last_key);
        return 1;
    }
    harness_close(client);
    printf("c_client: ok\n");
    return 0;
}
