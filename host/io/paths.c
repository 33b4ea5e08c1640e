#include "io/paths.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"

int at_paths_add(at_paths *p, const char *path) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        char **np = realloc(p->paths, sizeof *np * cap);
        if (!np) return at_fail(NULL, "out of memory");
        p->paths = np;
        p->cap = cap;
    }
    p->paths[p->n] = strdup(path);
    if (!p->paths[p->n]) return at_fail(NULL, "out of memory");
    p->n++;
    return AT_OK;
}

int at_paths_add_list(at_paths *p, const char *list_file) {
    FILE *f = fopen(list_file, "r");
    if (!f) return at_fail(list_file, "%s", strerror(errno));
    char line[4096];
    int rc = AT_OK;
    while (rc == AT_OK && fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = 0;
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (!*s || *s == '#') continue;
        rc = at_paths_add(p, s);
    }
    if (ferror(f)) rc = at_fail(list_file, "read error");
    fclose(f);
    return rc;
}

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int at_paths_add_dir(at_paths *p, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return at_fail(dir, "%s", strerror(errno));
    at_paths found = {0};
    struct dirent *e;
    int rc = AT_OK;
    while (rc == AT_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st)) continue;
        if (S_ISDIR(st.st_mode)) rc = at_paths_add_dir(&found, path);
        else if (S_ISREG(st.st_mode) && has_image_ext(e->d_name)) rc = at_paths_add(&found, path);
    }
    closedir(d);
    qsort(found.paths, found.n, sizeof *found.paths, cmp_str);
    for (int i = 0; rc == AT_OK && i < found.n; i++) rc = at_paths_add(p, found.paths[i]);
    at_paths_free(&found);
    return rc;
}

void at_paths_free(at_paths *p) {
    for (int i = 0; i < p->n; i++) free(p->paths[i]);
    free(p->paths);
    memset(p, 0, sizeof *p);
}
