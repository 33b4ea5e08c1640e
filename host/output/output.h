/* The files `explain` and `eval` write (docs/usage.md#explain): output names, results.jsonl
 * lines (a small JSON object builder), resume keys, atomic map/overlay writes
 * and cleanup of in-flight temporary files on SIGINT/SIGTERM.
 *
 * Crash model: a results line is appended with one write() after the image's
 * map files were renamed into place, so an interrupted run leaves every
 * finished image complete, no line for an unfinished one, and at worst a torn
 * last line (from a kill during the write itself), repaired on the next open. */
#ifndef ATTRIB_OUTPUT_H
#define ATTRIB_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

/* ---- output names (docs/usage.md#explain) ----
 * stems[i] (malloc'd, freed by the caller) is the name of paths[i]'s outputs:
 *   1. the file name without its extension ("a/b/cat.png" -> "cat"); a leading
 *      dot is not an extension (".png" -> ".png"), only the last suffix is one
 *      ("x.tar.gz" -> "x.tar");
 *   2. inputs whose names collide (different paths, same name) take the
 *      shortest path suffix that tells them apart: one more trailing
 *      directory at a time, '/' -> "__" ("a/cat.png", "b/cat.png" -> "a__cat",
 *      "b__cat"; "/home/u/data/a/x.png", "data/b/x.png" -> "a__x", "b__x"),
 *      relative and absolute paths alike;
 *   3. inputs that differ only in the extension keep it ("x.png", "x.jpg");
 *   4. still colliding: AT_ERR naming both inputs.
 * Paths are compared lexically, never resolved (no symlinks, no cwd): "./" and
 * "." components and repeated '/' are dropped, ".." is kept as a component; a
 * leading '/' never reaches a name. The same path given twice gets one name (the caller may skip it). */
int at_output_stems(int n, const char *const *paths, char **stems);

/* "dir/stem.method[.param].ext" (malloc'd; NULL and a message when out of
 * memory). param is NULL for methods without one ("r0.50" for pathway-grad). */
char *at_output_path(const char *dir, const char *stem, const char *method, const char *param,
                     const char *ext);

/* mkdir -p dir; AT_ERR naming dir when a component is not a directory or dir
 * is not writable. */
int at_output_dir_prepare(const char *dir);

/* ---- JSON object builder for one results line ----
 * Usage: at_jsonw w; at_jsonw_begin(&w); at_jsonw_str(&w, "image", p); ...;
 * char *line = at_jsonw_end(&w);  Errors (invalid UTF-8, OOM, a raw value
 * that is not JSON, a duplicate key) are sticky: later calls do nothing and
 * at_jsonw_end returns NULL with the first message. */
typedef struct {
    char *buf;
    size_t len, cap;
    int nfields;
    int failed;
} at_jsonw;

void at_jsonw_begin(at_jsonw *w);
void at_jsonw_str(at_jsonw *w, const char *key, const char *value); /* NULL value -> null */
void at_jsonw_int(at_jsonw *w, const char *key, long long value);
void at_jsonw_num(at_jsonw *w, const char *key, double value); /* %.9g; NaN, inf -> null */
void at_jsonw_bool(at_jsonw *w, const char *key, int value);
void at_jsonw_raw(at_jsonw *w, const char *key, const char *json); /* nested array/object */
void at_jsonw_ints(at_jsonw *w, const char *key, const long long *v, int n);
void at_jsonw_nums(at_jsonw *w, const char *key, const double *v, int n);
/* The line "{...}" without newline (malloc'd), checked by parsing it back, or
 * NULL and a message. Always releases w's buffer. */
char *at_jsonw_end(at_jsonw *w);

/* ---- results.jsonl / eval.<metric>.jsonl ----
 * Resume key = (image path as given, name, layer, class option) read from
 * the members "image", "method" (strings, required), "settings" (string;
 * absent, null or "" = default settings), "layer" (string; absent or null =
 * "") and "class_option" (string or integer; absent or null = ""); name is
 * "method" or "method.settings", the part of the output file names after the
 * stem, so two lines with one key describe the same file.
 * A NULL layer or class_opt argument means "". A line whose "error" member
 * is present and not null records a failed image and gives no key, so
 * --resume retries it. Blank lines are skipped. */
typedef struct at_results at_results;

/* Opens dir/name for appending (creating it). A last line without '\n' is
 * from a write cut short: it is dropped, unless it parses as a complete JSON
 * object, which then gets its newline (a line is never lost). A torn tail
 * longer than AT_RESULTS_MAX_LINE is not ours and is refused, not truncated.
 * With load_keys (--resume), the keys of the existing lines are loaded. */
#define AT_RESULTS_MAX_LINE (1 << 20)
int at_results_open(at_results **out, const char *dir, const char *name, int load_keys);
/* Appends json_line + '\n' with one write() (no stdio buffer to lose); on a
 * short write (disk full) the file is cut back so no half line stays. The
 * line must not contain '\n'. Does not add the key: see at_results_add_key. */
int at_results_append(at_results *r, const char *json_line);
/* Adds the keys of every line of path (any results-style file) to r.
 * Tolerates a partial last line; a malformed complete line is an error
 * "path:LINE: ...". */
int at_results_load_keys(at_results *r, const char *path);
int at_results_add_key(at_results *r, const char *image, const char *method, const char *layer,
                       const char *class_opt);
int at_results_has(const at_results *r, const char *image, const char *method, const char *layer,
                   const char *class_opt);
size_t at_results_nkeys(const at_results *r);
const char *at_results_path(const at_results *r);
/* Bytes of a torn last line dropped by at_results_open (0 if none), so the
 * CLI can say so. */
long at_results_dropped_bytes(const at_results *r);
/* Rewrites the file keeping only the last line of every key (an --overwrite
 * run appends its lines first, so an interruption loses nothing); lines
 * without a key stay. *merged: lines dropped. Atomic: temp file + rename. */
int at_results_compact(at_results *r, long *merged);
/* Results lines appended since at_output_install_signal_cleanup (the
 * interruption message says how many). */
long at_results_appended(void);
void at_results_close(at_results *r);

/* ---- atomic writes and interruption ----
 * The writers put data in a temporary file beside the target and rename it.
 * A tracked temporary file is removed by the handler that
 * at_output_install_signal_cleanup() installs for SIGINT and SIGTERM, which
 * then says how many results lines the run appended and exits with 130 /
 * 143: Ctrl-C leaves no half-written file and keeps every results line
 * already appended. Tracking is thread-safe and lock-free
 * (the handler may run at any instruction); AT_OUTPUT_MAX_INFLIGHT files at
 * once. */
#define AT_OUTPUT_MAX_INFLIGHT 64
#define AT_OUTPUT_PATH_MAX 4096
int at_output_install_signal_cleanup(void);
/* Registers tmp_path; returns a slot id >= 0 for at_output_untrack, or AT_ERR. */
int at_output_track(const char *tmp_path);
void at_output_untrack(int slot);
/* at_npy_write_f32 / at_image_write_png with their temporary file tracked. */
int at_output_write_npy(const char *path, const float *data, int ndim, const int64_t *shape);
int at_output_write_png(const char *path, int w, int h, const unsigned char *rgb);

#endif
