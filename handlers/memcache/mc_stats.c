/*
 * mc_stats.c - the memcache handler's statistics: the per-worker counters
 * summed, and the "stats" command's answers in memcached's format.
 */
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "memcache.h"

/* The sum of every worker's counter i, above the last "stats reset". */
uint64_t mc_stats_counter(const struct mc_shared *sh, enum mc_counter i)
{
    uint64_t sum = 0;
    for (unsigned k = 0; k < sh->nworkers; k++)
        sum += atomic_load_explicit(&sh->workers[k].cnt[i], memory_order_relaxed);
    return sum;
}

void mc_stats_command(wharf_conn *c, const struct mc_tok *t, size_t n)
{
    struct mc_listener *l = wharf_listener_data(c);
    struct mc_shared *sh = l->sh;
    uint64_t v[C_COUNT];
    for (int i = 0; i < C_COUNT; i++)
        v[i] = mc_stats_counter(sh, (enum mc_counter)i);
    if (n == 2 && mc_tok_is(&t[1], "reset")) {
        pthread_mutex_lock(&sh->lock);
        for (int i = C_CMD_GET; i < C_COUNT; i++)
            sh->reset_base[i] = v[i];
        pthread_mutex_unlock(&sh->lock);
        REPLY(c, "RESET\r\n");
        return;
    }
    char buf[4096];
    size_t len = 0;
#define STAT(fmt, ...) \
    len += (size_t)snprintf(buf + len, sizeof buf - len, "STAT " fmt "\r\n", __VA_ARGS__)
    if (n == 2 && mc_tok_is(&t[1], "settings")) {
        STAT("maxbytes %zu", mc_store_limit(l->store));
        STAT("item_size_max %zu", mc_store_item_max(l->store));
        STAT("num_threads %u", wharf_worker_count(wharf_conn_worker(c)));
        STAT("evictions %s", "on");
        STAT("cas_enabled %s", "yes");
    } else if (n == 1) {
        pthread_mutex_lock(&sh->lock);
        for (int i = C_CMD_GET; i < C_COUNT; i++)
            v[i] -= sh->reset_base[i];
        pthread_mutex_unlock(&sh->lock);
        struct mc_store_stats st;
        mc_store_stats(l->store, &st);
        int64_t now = (int64_t)time(NULL);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        STAT("pid %ld", (long)getpid());
        STAT("uptime %lld", (long long)(now - sh->started));
        STAT("time %lld", (long long)now);
        STAT("version %s", MC_VERSION);
        STAT("pointer_size %zu", sizeof(void *) * 8);
        STAT("rusage_user %ld.%06ld", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
        STAT("rusage_system %ld.%06ld", (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
        STAT("curr_connections %llu",
             (unsigned long long)(v[C_CONN_OPENED] - v[C_CONN_CLOSED]));
        STAT("total_connections %llu", (unsigned long long)v[C_CONN_OPENED]);
        static const char *const names[C_COUNT] = {
            [C_CMD_GET] = "cmd_get", [C_CMD_SET] = "cmd_set", [C_CMD_FLUSH] = "cmd_flush",
            [C_CMD_TOUCH] = "cmd_touch", [C_GET_HITS] = "get_hits",
            [C_GET_MISSES] = "get_misses", [C_DELETE_MISSES] = "delete_misses",
            [C_DELETE_HITS] = "delete_hits", [C_INCR_MISSES] = "incr_misses",
            [C_INCR_HITS] = "incr_hits", [C_DECR_MISSES] = "decr_misses",
            [C_DECR_HITS] = "decr_hits", [C_CAS_MISSES] = "cas_misses",
            [C_CAS_HITS] = "cas_hits", [C_CAS_BADVAL] = "cas_badval",
            [C_TOUCH_HITS] = "touch_hits", [C_TOUCH_MISSES] = "touch_misses",
            [C_STORE_TOO_LARGE] = "store_too_large", [C_STORE_NO_MEMORY] = "store_no_memory",
            [C_BYTES_READ] = "bytes_read", [C_BYTES_WRITTEN] = "bytes_written",
        };
        for (int i = C_CMD_GET; i < C_COUNT; i++)
            STAT("%s %llu", names[i], (unsigned long long)v[i]);
        STAT("get_expired %llu", (unsigned long long)st.get_expired);
        STAT("get_flushed %llu", (unsigned long long)st.get_flushed);
        STAT("limit_maxbytes %zu", mc_store_limit(l->store));
        STAT("threads %u", wharf_worker_count(wharf_conn_worker(c)));
        STAT("bytes %llu", (unsigned long long)st.bytes);
        STAT("curr_items %llu", (unsigned long long)st.curr_items);
        STAT("total_items %llu", (unsigned long long)st.total_items);
        STAT("expired_unfetched %llu", (unsigned long long)st.expired_unfetched);
        STAT("evicted_unfetched %llu", (unsigned long long)st.evicted_unfetched);
        STAT("evictions %llu", (unsigned long long)st.evictions);
        STAT("reclaimed %llu", (unsigned long long)st.reclaimed);
    } else if (!(n >= 2 && (mc_tok_is(&t[1], "items") || mc_tok_is(&t[1], "slabs") ||
                            mc_tok_is(&t[1], "sizes") || mc_tok_is(&t[1], "conns") ||
                            mc_tok_is(&t[1], "detail")))) {
        REPLY(c, "ERROR\r\n");
        return;
    }
#undef STAT
    mc_send(c, buf, len);
    REPLY(c, "END\r\n");
}
