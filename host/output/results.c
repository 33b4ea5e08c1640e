/* Results files (output/results.h). */
#include "output/results.h"

#include "core/error.h"
#include "io/json.h"
#include "output/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ======================= resume keys: a hash set ======================= */

typedef struct {
    uint64_t hash;
    size_t len;
    unsigned char *key; /* NULL = empty slot */
} key_entry;

typedef struct {
    key_entry *e;
    size_t cap, n; /* cap a power of two, n <= cap/2 */
} keyset;

/* Four length-prefixed fields, so no choice of bytes can make two keys alias. */
static unsigned char *key_encode(const char *const f[4], const size_t fl[4], size_t *len) {
    size_t n = 0;
    for (int i = 0; i < 4; i++) n += 4 + fl[i];
    unsigned char *k = malloc(n), *p = k;
    if (!k) return NULL;
    for (int i = 0; i < 4; i++) {
        uint32_t l = (uint32_t)fl[i];
        for (int b = 0; b < 4; b++) *p++ = (unsigned char)(l >> (8 * b));
        if (fl[i]) memcpy(p, f[i], fl[i]);
        p += fl[i];
    }
    *len = n;
    return k;
}

static uint64_t key_hash(const unsigned char *k, size_t n) { /* FNV-1a, then a final mix */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 1099511628211ULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}

static key_entry *keyset_find(const keyset *s, uint64_t h, const unsigned char *k, size_t n) {
    if (!s->cap) return NULL;
    for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        key_entry *e = &s->e[i];
        if (!e->key || (e->hash == h && e->len == n && !memcmp(e->key, k, n))) return e;
    }
}

/* Takes ownership of k. */
static int keyset_add(keyset *s, unsigned char *k, size_t n) {
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        keyset g = {calloc(cap, sizeof(key_entry)), cap, s->n};
        if (!g.e) {
            free(k);
            return at_fail(NULL, "out of memory for %zu resume keys", s->n + 1);
        }
        for (size_t i = 0; i < s->cap; i++)
            if (s->e[i].key) *keyset_find(&g, s->e[i].hash, s->e[i].key, s->e[i].len) = s->e[i];
        free(s->e);
        *s = g;
    }
    uint64_t h = key_hash(k, n);
    key_entry *e = keyset_find(s, h, k, n);
    if (e->key) {
        free(k);
        return AT_OK;
    }
    *e = (key_entry){h, n, k};
    s->n++;
    return AT_OK;
}

static void keyset_free(keyset *s) {
    for (size_t i = 0; i < s->cap; i++) free(s->e[i].key);
    free(s->e);
    memset(s, 0, sizeof *s);
}

/* ======================= results files ======================= */

/* Lines appended since the signal handler was installed: the interruption message says it. */
static atomic_long appended_lines;
long at_results_appended(void) { return atomic_load(&appended_lines); }
void at_results_count_from_now(void) { atomic_store(&appended_lines, 0); }

struct at_results {
    int fd;
    char *path;
    keyset keys;
    long dropped;
};

static unsigned char *key_of_args(const char *image, const char *method, const char *layer,
                                  const char *class_opt, size_t *len) {
    const char *f[4] = {image ? image : "", method ? method : "", layer ? layer : "",
                        class_opt ? class_opt : ""};
    size_t fl[4];
    for (int i = 0; i < 4; i++) fl[i] = strlen(f[i]);
    return key_encode(f, fl, len);
}

int at_results_add_key(at_results *r, const char *image, const char *method, const char *layer,
                       const char *class_opt) {
    size_t n;
    unsigned char *k = key_of_args(image, method, layer, class_opt, &n);
    if (!k) return at_fail(r->path, "out of memory");
    return keyset_add(&r->keys, k, n);
}

int at_results_has(const at_results *r, const char *image, const char *method, const char *layer,
                   const char *class_opt) {
    size_t n;
    unsigned char *k = key_of_args(image, method, layer, class_opt, &n);
    if (!k) return 0;
    key_entry *e = keyset_find(&r->keys, key_hash(k, n), k, n);
    free(k);
    return e && e->key;
}

size_t at_results_nkeys(const at_results *r) { return r->keys.n; }
const char *at_results_path(const at_results *r) { return r->path; }
long at_results_dropped_bytes(const at_results *r) { return r->dropped; }

/* One line's key; *key NULL when the line records a failure ("error" member
 * not null), so --resume retries that image. Messages have no subject. */
static int key_of_line(const char *line, size_t len, unsigned char **key, size_t *klen) {
    at_json *j = NULL;
    *key = NULL;
    if (at_json_parse(line, len, &j) != AT_OK) return AT_ERR;
    int rc = AT_ERR;
    const char *names[4] = {"image", "method", "layer", "class_option"};
    const char *f[4];
    size_t fl[4];
    char num[32];
    const at_json *err = at_json_get(j, "error");
    if (j->type != AT_JSON_OBJECT) {
        at_fail(NULL, "not a JSON object");
        goto done;
    }
    for (int i = 0; i < 4; i++) {
        const at_json *v = at_json_get(j, names[i]);
        int64_t iv;
        f[i] = "", fl[i] = 0;
        if (v && v->type == AT_JSON_STRING) f[i] = v->string, fl[i] = v->string_len;
        else if (i == 3 && v && at_json_exact_int(v, &iv))
            f[i] = num, fl[i] = (size_t)snprintf(num, sizeof num, "%lld", (long long)iv);
        else if (i < 2 || (v && v->type != AT_JSON_NULL)) {
            at_fail(NULL, "\"%s\" is %s", names[i], v ? "not a string" : "missing");
            goto done;
        }
    }
    /* the method field is the output name's "method[.settings]" part */
    const at_json *st = at_json_get(j, "settings");
    char *named = NULL;
    if (st && st->type == AT_JSON_STRING && st->string_len) {
        if (!(named = malloc(fl[1] + st->string_len + 2))) {
            at_fail(NULL, "out of memory");
            goto done;
        }
        memcpy(named, f[1], fl[1]);
        named[fl[1]] = '.';
        memcpy(named + fl[1] + 1, st->string, st->string_len);
        f[1] = named, fl[1] += st->string_len + 1;
    }
    rc = AT_OK;
    if (!err || err->type == AT_JSON_NULL) {
        if (!(*key = key_encode(f, fl, klen))) rc = at_fail(NULL, "out of memory");
    }
    free(named);
done:
    at_json_free(j);
    return rc;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r", s[i])) return 0;
    return 1;
}

int at_results_load_keys(at_results *r, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return at_fail(path, "cannot open: %s", strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = AT_OK;
    while (rc == AT_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        int complete = len > 0 && line[len - 1] == '\n';
        size_t n = (size_t)len - (size_t)complete;
        if (blank(line, n)) continue;
        unsigned char *k;
        size_t kn;
        if (key_of_line(line, n, &k, &kn) != AT_OK) {
            if (!complete) { /* a write cut short: that image was not finished */
                at_clear_error();
                break;
            }
            char subject[4200], msg[768];
            snprintf(msg, sizeof msg, "%s", at_last_error());
            snprintf(subject, sizeof subject, "%s:%ld", path, lineno);
            rc = at_fail(subject, "malformed line: %s", msg);
        } else if (k) {
            rc = keyset_add(&r->keys, k, kn);
        }
    }
    if (rc == AT_OK && ferror(f)) rc = at_fail(path, "read error: %s", strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

/* Drops a torn last line (see output.h). */
static int repair_tail(at_results *r, off_t size) {
    char c;
    if (size == 0) return AT_OK;
    if (pread(r->fd, &c, 1, size - 1) != 1) return at_fail(r->path, "read error: %s", strerror(errno));
    if (c == '\n') return AT_OK;
    off_t lo = size > AT_RESULTS_MAX_LINE + 1 ? size - (AT_RESULTS_MAX_LINE + 1) : 0;
    size_t n = (size_t)(size - lo), got = 0;
    char *buf = malloc(n);
    if (!buf) return at_fail(r->path, "out of memory");
    while (got < n) {
        ssize_t k = pread(r->fd, buf + got, n - got, lo + (off_t)got);
        if (k <= 0) {
            free(buf);
            return at_fail(r->path, "read error: %s", k < 0 ? strerror(errno) : "file shrank");
        }
        got += (size_t)k;
    }
    size_t start = n;
    while (start > 0 && buf[start - 1] != '\n') start--;
    if (start == 0 && lo > 0) {
        free(buf);
        return at_fail(r->path, "last line has no newline and is over %d bytes: not a file "
                       "attrib wrote; not changing it", AT_RESULTS_MAX_LINE);
    }
    at_json *j = NULL;
    int whole = at_json_parse(buf + start, n - start, &j) == AT_OK && j->type == AT_JSON_OBJECT;
    at_json_free(j);
    at_clear_error();
    free(buf);
    if (whole) {
        if (write(r->fd, "\n", 1) != 1) return at_fail(r->path, "cannot write: %s", strerror(errno));
    } else {
        if (ftruncate(r->fd, lo + (off_t)start) != 0)
            return at_fail(r->path, "cannot remove the incomplete last line: %s", strerror(errno));
        r->dropped = (long)(n - start);
    }
    return AT_OK;
}

int at_results_open(at_results **out, const char *dir, const char *name, int load_keys) {
    *out = NULL;
    at_results *r = calloc(1, sizeof *r);
    size_t n = strlen(dir) + strlen(name) + 2;
    if (!r || !(r->path = malloc(n))) {
        free(r);
        return at_fail(dir, "out of memory");
    }
    snprintf(r->path, n, "%s/%s", dir, name);
    struct stat st;
    int rc = AT_ERR;
    r->fd = open(r->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (r->fd < 0) at_fail(r->path, "cannot open for appending: %s", strerror(errno));
    else if (fstat(r->fd, &st) != 0) at_fail(r->path, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode)) at_fail(r->path, "not a regular file");
    else if (repair_tail(r, st.st_size) == AT_OK &&
             (!load_keys || at_results_load_keys(r, r->path) == AT_OK))
        rc = AT_OK;
    if (rc != AT_OK) {
        at_results_close(r);
        return AT_ERR;
    }
    *out = r;
    return AT_OK;
}

int at_results_append(at_results *r, const char *json_line) {
    size_t n = strlen(json_line);
    if (!n || memchr(json_line, '\n', n))
        return at_fail(r->path, "a results line must be one non-empty line");
    char *buf = malloc(n + 1);
    if (!buf) return at_fail(r->path, "out of memory");
    memcpy(buf, json_line, n);
    buf[n] = '\n';
    off_t before = lseek(r->fd, 0, SEEK_END);
    size_t done = 0;
    int e = 0;
    while (done < n + 1) {
        ssize_t k = write(r->fd, buf + done, n + 1 - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            e = k < 0 ? errno : EIO;
            break;
        }
        done += (size_t)k;
    }
    free(buf);
    if (done == n + 1) {
        atomic_fetch_add(&appended_lines, 1);
        return AT_OK;
    }
    if (done > 0 && before >= 0 && ftruncate(r->fd, before) != 0) {} /* best effort; open repairs */
    return at_fail(r->path, "cannot append: %s", strerror(e));
}

typedef struct {
    unsigned char *key;
    size_t len;
    long line;
} line_key;

static int line_key_cmp(const void *a, const void *b) {
    const line_key *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    int c = memcmp(x->key, y->key, x->len);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

int at_results_compact(at_results *r, long *merged) {
    *merged = 0;
    FILE *f = fopen(r->path, "rb");
    if (!f) return at_fail(r->path, "cannot open: %s", strerror(errno));
    char **lines = NULL, *line = NULL;
    line_key *keys = NULL;
    long n = 0, cap = 0, nk = 0;
    size_t lcap = 0;
    ssize_t len;
    int rc = AT_OK;
    unsigned char *drop = NULL;
    while (rc == AT_OK && (len = getline(&line, &lcap, f)) >= 0) {
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            char **nl = realloc(lines, sizeof *lines * cap);
            line_key *nkp = realloc(keys, sizeof *keys * cap);
            if (nl) lines = nl;
            if (nkp) keys = nkp;
            if (!nl || !nkp) {
                rc = at_fail(r->path, "out of memory");
                break;
            }
        }
        size_t body = (size_t)len - (len > 0 && line[len - 1] == '\n');
        unsigned char *k = NULL;
        size_t kn = 0;
        if (!blank(line, body) && key_of_line(line, body, &k, &kn) != AT_OK) at_clear_error(); /* kept as is */
        if (k) keys[nk++] = (line_key){k, kn, n};
        if (!(lines[n++] = strdup(line))) rc = at_fail(r->path, "out of memory");
    }
    fclose(f);
    free(line);
    if (rc == AT_OK && !(drop = calloc(n ? (size_t)n : 1, 1))) rc = at_fail(r->path, "out of memory");
    if (rc == AT_OK) {
        qsort(keys, (size_t)nk, sizeof *keys, line_key_cmp);
        for (long i = 0; i + 1 < nk; i++)
            if (keys[i].len == keys[i + 1].len && !memcmp(keys[i].key, keys[i + 1].key, keys[i].len))
                drop[keys[i].line] = 1, (*merged)++;
    }
    if (rc == AT_OK && *merged) {
        char tmp[AT_OUTPUT_PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", r->path, (long)getpid());
        int slot = at_output_track(tmp);
        FILE *o = slot >= 0 ? fopen(tmp, "wb") : NULL;
        if (!o) rc = slot < 0 ? AT_ERR : at_fail(tmp, "cannot create: %s", strerror(errno));
        for (long i = 0; o && i < n; i++)
            if (!drop[i]) fputs(lines[i], o);
        if (o && (fflush(o) || fsync(fileno(o)) || ferror(o))) rc = at_fail(tmp, "write error: %s", strerror(errno));
        if (o && fclose(o) && rc == AT_OK) rc = at_fail(tmp, "write error: %s", strerror(errno));
        if (rc == AT_OK && rename(tmp, r->path)) rc = at_fail(r->path, "cannot replace: %s", strerror(errno));
        if (rc != AT_OK) unlink(tmp);
        at_output_untrack(slot);
        if (rc == AT_OK) { /* later appends go to the new file */
            int fd = open(r->path, O_RDWR | O_APPEND | O_CLOEXEC);
            if (fd < 0) rc = at_fail(r->path, "cannot reopen: %s", strerror(errno));
            else close(r->fd), r->fd = fd;
        }
    }
    for (long i = 0; i < n; i++) free(lines[i]);
    for (long i = 0; i < nk; i++) free(keys[i].key);
    free(lines), free(keys), free(drop);
    return rc;
}

void at_results_close(at_results *r) {
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    keyset_free(&r->keys);
    free(r->path);
    free(r);
}

