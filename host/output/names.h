/* Output file names: one stem per input, paths of the files a method writes. */
#ifndef ATTRIB_OUTPUT_NAMES_H
#define ATTRIB_OUTPUT_NAMES_H

#include <stddef.h>

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


#endif
