/* harness.h: the C API of the Harness control plane client (libharness.a / libharness.so).
 *
 * A client talks to any member of a cluster and fails over to another when one fails; every
 * write carries a session so a retried write is applied at most once. Reads are linearizable
 * (ordered through the ring) unless `stale` is set. Every call blocks until it is answered or its
 * time bound passes. Functions return a result code; on failure harness_last_error() gives the
 * detail for the calling thread. No Rust panic crosses this boundary (HARNESS_PANIC instead).
 *
 * Link: cc prog.c -Iinclude -Ltarget/release -l:libharness.a -lpthread -ldl -lm
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HARNESS_OK 0
#define HARNESS_NOT_FOUND 1     /* the key does not exist */
#define HARNESS_GUARD_FAILED 2  /* a transaction guard failed; its else branch ran */
#define HARNESS_NO_QUORUM 3     /* no member is in a primary view */
#define HARNESS_UNREACHABLE 4   /* no member answered in time */
#define HARNESS_BAD_ARGUMENT 5  /* null pointer, bad text, malformed request */
#define HARNESS_COMPACTED 6     /* a watch asked for revisions no longer held */
#define HARNESS_PROTOCOL 7      /* a member sent an invalid answer */
#define HARNESS_TIMEOUT 8       /* a watch saw no change within its timeout */
#define HARNESS_PANIC 9         /* internal error; close the client */
#define HARNESS_NOT_ENOUGH_REPLICAS 10 /* too few members connected for the write quorum W */

typedef struct HarnessClient harness_client;

/* Called once per committed change; return 0 to continue, non-zero to stop. The key and value
 * pointers are valid during the call only. is_delete is 1 for a removal (value is empty). */
typedef int (*harness_watch_cb)(void *ctx, uint64_t revision, int is_delete, const uint8_t *key,
                                size_t key_len, const uint8_t *value, size_t value_len);

/* A client of the members in `cluster` ("HOST:PORT,HOST:PORT,..." or "1=HOST:PORT,..."), each
 * request bounded by timeout_ms per member (0: 5000). NULL on a bad list. Connects lazily. */
harness_client *harness_connect(const char *cluster, uint32_t timeout_ms);
/* As harness_connect, for a cluster whose members run with --key-file: every connection proves
 * the key in key_file (32 bytes, mode 600, from `harness keygen`) bound to cluster_name (NULL:
 * "harness", the members' default --cluster-name), and encrypts every frame if encrypt != 0 (the
 * members' --encrypt). NULL on a bad list or key file; harness_last_error() says what is wrong. */
harness_client *harness_connect_keyed(const char *cluster, uint32_t timeout_ms, const char *key_file,
                                      const char *cluster_name, int encrypt);
/* Frees the client; NULL is ignored. */
void harness_close(harness_client *client);

/* Sets key to value; *revision_out (if not NULL) gets the new revision. */
int harness_put(harness_client *client, const uint8_t *key, size_t key_len, const uint8_t *value,
                size_t value_len, uint64_t *revision_out);
/* Removes key: HARNESS_OK or HARNESS_NOT_FOUND. */
int harness_delete(harness_client *client, const uint8_t *key, size_t key_len, uint64_t *revision_out);
/* Reads key. On HARNESS_OK *value_out is a copy to free with harness_free(*value_out,
 * *value_len_out) (NULL for an empty value) and *mod_revision_out (if not NULL) the revision that
 * last wrote it. stale != 0 reads the answering member's state without the ring. */
int harness_get(harness_client *client, const uint8_t *key, size_t key_len, int stale,
                uint8_t **value_out, size_t *value_len_out, uint64_t *mod_revision_out);
/* Frees bytes returned by harness_get; NULL is ignored. */
void harness_free(uint8_t *ptr, size_t len);

/* Runs a transaction written as for `harness txn`, one clause a line:
 *   if KEY = VALUE | if KEY version|mod =|<|> N | if KEY exists|missing
 *   then|else put KEY VALUE | del KEY | get KEY | range PREFIX [LIMIT]
 * HARNESS_OK if every guard held, HARNESS_GUARD_FAILED if the else branch ran. */
int harness_txn(harness_client *client, const char *text, uint64_t *revision_out);

/* Calls cb for each committed change of a key under prefix from revision from_revision
 * (0: from now on) until cb returns non-zero or max_events (0: no limit) were delivered
 * (HARNESS_OK), or no change came for timeout_ms (HARNESS_TIMEOUT). Survives member failures. */
int harness_watch(harness_client *client, const uint8_t *prefix, size_t prefix_len,
                  uint64_t from_revision, uint32_t timeout_ms, uint32_t max_events,
                  harness_watch_cb cb, void *ctx);

/* A static description of a result code. */
const char *harness_strerror(int code);
/* The detail of the last failure on this thread; valid until the next call on this thread. */
const char *harness_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* HARNESS_H */
