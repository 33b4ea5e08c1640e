/* results.jsonl / eval.<metric>.jsonl: appended lines, resume keys, repair
 * and compaction.
 *
 * Crash model: a results line is appended with one write() after the image's
 * map files were renamed into place, so an interrupted run leaves every
 * finished image complete, no line for an unfinished one, and at worst a torn
 * last line (from a kill during the write itself), repaired on the next open. */
#ifndef ATTRIB_OUTPUT_RESULTS_H
#define ATTRIB_OUTPUT_RESULTS_H

#include <stddef.h>

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
void at_results_count_from_now(void);
void at_results_close(at_results *r);


#endif
