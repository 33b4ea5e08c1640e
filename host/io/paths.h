/* Lists of image paths: given one by one, read from a list file (one path a
 * line, '#' comments) or found under a folder (.png / .jpg / .jpeg,
 * recursively, sorted). */
#ifndef ATTRIB_IO_PATHS_H
#define ATTRIB_IO_PATHS_H

typedef struct {
    char **paths;
    int n, cap;
} at_paths;

int at_paths_add(at_paths *p, const char *path);
int at_paths_add_list(at_paths *p, const char *list_file); /* AT_ERR naming the file */
int at_paths_add_dir(at_paths *p, const char *dir);        /* AT_ERR naming the folder */
void at_paths_free(at_paths *p);

#endif
