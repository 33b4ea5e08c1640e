/* The documentation as a user meets it: every section a help text, message,
 * doc or code comment cites exists; nothing cites the design notes the
 * repository does not ship; documented commands run (issue 13 items 16, 17
 * and "every documented command run by a test"). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/npy.h"
#include "test.h"

static char out[1 << 16];

/* The tracked files under the given paths (git ls-files), one per line, in
 * a malloc'ed buffer; NULL when git cannot list them. */
static char *tracked_files(const char *paths) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && git ls-files -z -- %s 2>/dev/null | tr '\\0' '\\n'", test_root(), paths);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (size_t n; buf && (n = fread(buf + len, 1, cap - len - 1, p)) > 0;) {
        len += n;
        if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    if (pclose(p) != 0 || !buf || len == 0) {
        free(buf);
        return NULL;
    }
    buf[len] = 0;
    return buf;
}

static char *read_text(const char *rel, size_t *n) {
    char *s = (char *)test_read_bytes(test_path(rel), n);
    if (!s) return NULL;
    char *t = realloc(s, *n + 1);
    if (!t) {
        free(s);
        return NULL;
    }
    t[*n] = 0;
    return t;
}

/* GitHub's heading anchors: lower case, spaces to '-', other punctuation
 * except '-' and '_' dropped (non-ASCII bytes kept, as GitHub keeps letters). */
static void slugify(const char *heading, size_t len, char *slug, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)heading[i];
        if (c == ' ') slug[k++] = '-';
        else if (isalnum(c) || c == '-' || c == '_' || c >= 0x80) slug[k++] = (char)tolower(c);
    }
    slug[k] = 0;
}

/* 1 when doc (the text of a file under docs/) has a heading whose anchor is slug. */
static int has_anchor(const char *doc, const char *slug) {
    for (const char *line = doc; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (*line != '#') continue;
        const char *h = line;
        while (*h == '#') h++;
        while (*h == ' ') h++;
        size_t len = strcspn(h, "\n");
        char s[256];
        slugify(h, len, s, sizeof s);
        if (!strcmp(s, slug)) return 1;
    }
    return 0;
}

/* The design notes are not in the repository: their section sign must not
 * be cited anywhere (the pattern is built so this file does not match). */
TEST(no_tracked_file_cites_the_unshipped_design_notes) {
    char *files = tracked_files("host kernels tests tools docs reproduce README.md Makefile");
    if (!files) SKIP("not a git checkout: cannot list the tracked files");
    char sect[16], notes[16];
    snprintf(sect, sizeof sect, "%s \xc2\xa7", "SPEC");
    snprintf(notes, sizeof notes, "%s.md", "SPEC");
    int checked = 0;
    for (char *f = strtok(files, "\n"); f; f = strtok(NULL, "\n")) {
        if (strstr(f, "/goldens/")) continue; /* data */
        size_t n;
        char *text = read_text(f, &n);
        if (!text) continue;
        checked++;
        if (strlen(text) != n) { /* binary */
            free(text);
            continue;
        }
        for (const char *pat[] = {sect, notes}, **p = pat; p < pat + 2; p++) {
            const char *hit = strstr(text, *p);
            if (hit) {
                int line = 1;
                for (const char *c = text; c < hit; c++) line += *c == '\n';
                test_fail_at(f, line, "cites '%s': cite docs/methods.md#<section> or the paper", *p);
            }
        }
        free(text);
    }
    free(files);
    CHECK(checked > 100);
}

/* The library names subjects (the layer, the file, the value); only the CLI
 * knows flags, and only the CLI and the output writers print. */
TEST(library_errors_name_no_flag_and_the_library_prints_nothing) {
    char *files = tracked_files("host kernels");
    if (!files) SKIP("not a git checkout: cannot list the tracked files");
    int checked = 0;
    for (char *f = strtok(files, "\n"); f; f = strtok(NULL, "\n")) {
        size_t n = strlen(f);
        int source = (n > 2 && !strcmp(f + n - 2, ".c")) || (n > 3 && !strcmp(f + n - 3, ".cu"));
        if (!strncmp(f, "host/cli/", 9) || !source) continue;
        char *text = read_text(f, &n);
        if (!text) continue;
        checked++;
        int line = 1;
        for (const char *c = text; *c; c++) {
            if (*c == '\n') line++;
            if (!strncmp(c, "at_fail(\"--", 11)) test_fail_at(f, line, "a library error names a flag");
            /* printing goes through a caller's stream (progress, results files) */
            int word = c == text || !(isalnum((unsigned char)c[-1]) || c[-1] == '_');
            if ((word && (!strncmp(c, "printf(", 7) || !strncmp(c, "puts(", 5))) ||
                !strncmp(c, "fprintf(stderr", 14) || !strncmp(c, "fprintf(stdout", 14))
                test_fail_at(f, line, "the library prints");
        }
        free(text);
    }
    free(files);
    CHECK(checked > 30);
}

/* Every "docs/NAME.md#anchor" (and, inside docs/, "NAME.md#anchor" and
 * "(#anchor)") in a tracked file names an existing heading. */
TEST(every_cited_doc_section_exists) {
    char *files = tracked_files("host kernels tests tools docs reproduce README.md Makefile");
    if (!files) SKIP("not a git checkout: cannot list the tracked files");
    int cited = 0, methods_cited = 0;
    for (char *f = strtok(files, "\n"); f; f = strtok(NULL, "\n")) {
        if (strstr(f, "/goldens/") || !strcmp(f, "tests/test_docs.c")) continue; /* data; the patterns here */
        size_t n;
        char *text = read_text(f, &n);
        if (!text || strlen(text) != n) {
            free(text);
            continue;
        }
        for (const char *p = text; (p = strstr(p, ".md#")) != NULL; p += 4) {
            const char *b = p; /* back to the start of the file name */
            while (b > text && (isalnum((unsigned char)b[-1]) || b[-1] == '_' || b[-1] == '-' || b[-1] == '/')) b--;
            char name[128], slug[128], doc[160];
            snprintf(name, sizeof name, "%.*s", (int)(p - b), b);
            size_t sl = 0;
            for (const char *s = p + 4; (isalnum((unsigned char)*s) || *s == '-' || *s == '_') && sl + 1 < sizeof slug; s++)
                slug[sl++] = *s;
            slug[sl] = 0;
            const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
            snprintf(doc, sizeof doc, "docs/%s.md", base);
            size_t dn;
            char *d = read_text(doc, &dn);
            int line = 1;
            for (const char *c = text; c < p; c++) line += *c == '\n';
            if (!d) test_fail_at(f, line, "cites %s.md#%s: no %s", name, slug, doc);
            else if (!has_anchor(d, slug)) test_fail_at(f, line, "cites %s#%s: no such heading in %s", doc, slug, doc);
            cited++;
            methods_cited += !strcmp(base, "methods");
            free(d);
        }
        if (!strncmp(f, "docs/", 5)) /* in-page links */
            for (const char *p = text; (p = strstr(p, "](#")) != NULL; p += 3) {
                char slug[128];
                size_t sl = 0;
                for (const char *s = p + 3; *s && *s != ')' && sl + 1 < sizeof slug; s++) slug[sl++] = *s;
                slug[sl] = 0;
                int line = 1;
                for (const char *c = text; c < p; c++) line += *c == '\n';
                if (!has_anchor(text, slug)) test_fail_at(f, line, "links #%s: no such heading", slug);
                cited++;
            }
        free(text);
    }
    free(files);
    CHECKF(methods_cited > 30, "only %d citations of docs/methods.md sections", methods_cited);
    CHECK(cited > methods_cited);
}

/* The help texts point at docs/methods.md sections that exist (a help text
 * is built at run time, so check what the binary prints). */
TEST(help_texts_cite_existing_method_sections) {
    size_t dn;
    char *doc = read_text("docs/methods.md", &dn);
    REQUIRE(doc);
    const char *cmds[] = {"explain", "eval"};
    for (int i = 0; i < 2; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s/attrib %s --help", test_root(), cmds[i]);
        REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
        int n = 0;
        for (const char *p = out; (p = strstr(p, "methods.md#")) != NULL; p += 11, n++) {
            char slug[128];
            size_t sl = 0;
            for (const char *s = p + 11; (isalnum((unsigned char)*s) || *s == '-') && sl + 1 < sizeof slug; s++)
                slug[sl++] = *s;
            slug[sl] = 0;
            CHECKF(has_anchor(doc, slug), "attrib %s --help cites methods.md#%s: no such heading", cmds[i], slug);
        }
        CHECKF(n > 0, "attrib %s --help cites no docs/methods.md section", cmds[i]);
    }
    free(doc);
}

/* The how-tos run the tools with Debian's interpreter, which has their
 * packages; a bare python3 may be another one (pyenv, conda). bench.md's GPU
 * runs say that the lent machine's interpreter is python3, so it is left out. */
TEST(documented_python_commands_use_usr_bin_python3) {
    char *files = tracked_files("README.md docs/usage.md docs/models.md docs/reproduce.md docs/methods.md");
    if (!files) SKIP("not a git checkout: cannot list the tracked files");
    for (char *f = strtok(files, "\n"); f; f = strtok(NULL, "\n")) {
        size_t n;
        char *text = read_text(f, &n);
        if (!text) continue;
        int line = 1, in_code = 0;
        for (const char *l = text; *l; line++) {
            const char *e = strchr(l, '\n');
            size_t len = e ? (size_t)(e - l) : strlen(l);
            if (!strncmp(l, "```", 3)) in_code = !in_code;
            else if (in_code) {
                const char *s = l;
                while (*s == ' ') s++;
                if (!strncmp(s, "python3 ", 8) || !strncmp(s, "python ", 7))
                    test_fail_at(f, line, "'%.*s': run the tools with /usr/bin/python3", (int)len, l);
            }
            l += len + (e ? 1 : 0);
        }
        free(text);
    }
    free(files);
}

/* Replaces every occurrence of from by to in s (cap bytes). */
static void replace_all(char *s, size_t cap, const char *from, const char *to) {
    char buf[4096];
    size_t fl = strlen(from), k = 0;
    for (const char *p = s; *p && k + 1 < sizeof buf;) {
        if (!strncmp(p, from, fl)) {
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s", to);
            p += fl;
        } else
            buf[k++] = *p++;
    }
    buf[k < sizeof buf ? k : sizeof buf - 1] = 0;
    snprintf(s, cap, "%s", buf);
}

/* Runs the `./attrib ...` lines of doc's sh blocks from the repository root
 * on the shipped model, with placeholders bound to the samples and outputs
 * in a temporary folder; explain gets one image where the doc lists 32
 * (the same options, a fraction of the time). Returns the count run. */
static int run_documented_commands(const char *doc_rel) {
    size_t n;
    char *text = read_text(doc_rel, &n);
    if (!text) {
        test_fail_at(doc_rel, 0, "cannot read");
        return 0;
    }
    const char *tmp = test_tmpdir();
    const char *img = "weights/samples/images/fmscene_test_00000001.png";
    char setup[2048];
    snprintf(setup, sizeof setup, "mkdir -p %s/my_images && cp %s/%s %s/my_images/ && echo %s > %s/one.txt", tmp,
             test_root(), img, tmp, img, tmp);
    if (run_cmd(setup, out, sizeof out) != 0) {
        test_fail_at(doc_rel, 0, "setup failed: %s", out);
        free(text);
        return 0;
    }
    int ran = 0, line = 1, in_sh = 0;
    for (const char *l = text; *l; line++) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "%.*s", (int)len, l);
        l += len + (e ? 1 : 0);
        if (!strncmp(cmd, "```", 3)) {
            in_sh = !in_sh && !strncmp(cmd, "```sh", 5);
            continue;
        }
        if (!in_sh || strncmp(cmd, "./attrib ", 9)) continue;
        char *hash = strstr(cmd, "  #");
        if (hash) *hash = 0;
        /* Not run: real VGG16 weights the repository does not ship; bench
         * (seconds per measurement on a 224 px VGG16); elided commands. */
        if (strstr(cmd, "vgg16.safetensors") || strstr(cmd, "vgg16_random") || strstr(cmd, " bench") ||
            (strstr(cmd, " ...") && !strstr(cmd, "IMAGE...")))
            continue;
        char bound[4096];
        snprintf(bound, sizeof bound, "%s", cmd);
        char sub[1024];
        if (strncmp(bound, "./attrib predict", 16)) {
            snprintf(sub, sizeof sub, "--list %s/one.txt", tmp);
            replace_all(bound, sizeof bound, "--list weights/samples/list.txt", sub);
        }
        replace_all(bound, sizeof bound, "IMAGE...", img);
        replace_all(bound, sizeof bound, "cat.jpg", img);
        snprintf(sub, sizeof sub, "--list %s/one.txt", tmp);
        replace_all(bound, sizeof bound, "--list images.txt", sub);
        snprintf(sub, sizeof sub, "%s/my_images/", tmp);
        replace_all(bound, sizeof bound, "my_images/", sub);
        snprintf(sub, sizeof sub, " %s/out/", tmp);
        replace_all(bound, sizeof bound, " out/", sub);
        const char *cmds[] = {"predict", "explain", "eval", "info", "bench", "reproduce"};
        int reps = strstr(bound, "COMMAND") ? 6 : 1;
        for (int r = 0; r < reps; r++) {
            char full[8192], one[4096];
            snprintf(one, sizeof one, "%s", bound);
            if (reps > 1) replace_all(one, sizeof one, "COMMAND", cmds[r]);
            snprintf(full, sizeof full, "cd %s && %s 2>&1", test_root(), one);
            int rc = run_cmd(full, out, sizeof out);
            if (rc != 0) test_fail_at(doc_rel, line, "exit %d: %s\n%s", rc, one, out);
            ran++;
        }
    }
    free(text);
    return ran;
}

TEST(readme_commands_run) { CHECK(run_documented_commands("README.md") >= 10); }

TEST(usage_md_commands_run) { CHECK(run_documented_commands("docs/usage.md") >= 8); }

/* models.md: only the shipped model's line runs; the others need exported
 * ImageNet or random-init weights (PyTorch), tested by test_cli.c's live test. */
TEST(models_md_commands_run) { CHECK(run_documented_commands("docs/models.md") >= 1); }

/* docs/library.md's program, built from the document: it runs on the
 * shipped model and its map is the one `attrib explain` writes. */
TEST(library_md_program_builds_runs_and_matches_the_cli) {
    char cmd[1024];
    const char *tmp = test_tmpdir();
    int rc = run_cmd("make --no-print-directory -s library-example 2>&1", out, sizeof out);
    CHECKF(rc == 0, "make library-example: %s", out);
    if (rc) return;
    snprintf(cmd, sizeof cmd,
             "build/library_example weights/vgg16_mini.safetensors weights/samples/images/fmscene_test_00000000.png "
             "%s/lib.npy %s/run 2>&1", tmp, tmp);
    rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "class ") && strstr(out, "deletion AUC"), "library example: %s", out);
    /* its run API part: two images (one batch), their progress, the files in the folder */
    CHECKF(strstr(out, "explain: 2/2 images") &&
               strstr(out, "gradcam: 2 written, 0 kept, 0 failed"), "library example's run: %s", out);
    snprintf(cmd, sizeof cmd, "test -s %s/run/results.jsonl && test -s %s/run/fmscene_test_00000001.gradcam.npy", tmp, tmp);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd,
             "./attrib explain --quiet --backend cpu --method gradcam --no-overlay --out %s/cli "
             "weights/samples/images/fmscene_test_00000000.png 2>&1", tmp);
    CHECKF(run_cmd(cmd, out, sizeof out) == 0, "explain: %s", out);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/lib.npy", tmp);
    snprintf(b, sizeof b, "%s/cli/fmscene_test_00000000.gradcam.npy", tmp);
    float *x = NULL, *y = NULL;
    int nx, ny;
    int64_t sx[8], sy[8];
    REQUIRE(at_npy_read_f32(a, &x, &nx, sx) == AT_OK && at_npy_read_f32(b, &y, &ny, sy) == AT_OK);
    CHECK(nx == 2 && ny == 2 && sx[0] == sy[0] && sx[1] == sy[1]);
    long n = (long)sx[0] * sx[1], same = 0;
    for (long i = 0; i < n; i++) same += x[i] == y[i];
    CHECKF(same == n, "%ld of %ld map values equal", same, n);
    free(x), free(y);
}
