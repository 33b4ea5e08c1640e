/* REPORT.md and the qualitative grids of ./attrib reproduce. Every number
 * comes from the per-image lines eval wrote (OUT/maps/eval.<metric>.jsonl),
 * matched by image, so paired differences (Score-CDRP minus CDRP on the same
 * image) get their own bootstrap CI: the paper's gaps are small (docs/methods.md#metrics-common-rules). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "io/image.h"
#include "io/json.h"
#include "metrics/metrics.h"
#include "output/output.h"
#include "reproduce/internal.h"
#include "io/sha256.h"
#include "version.h"

/* docs/methods.md#the-papers-numbers: the paper's numbers (VGG16, ImageNet); seed 004's table is in
 * seed004.c. */
static const double PAPER_T1[3] = {71.59, 67.65, 68.41};    /* original, CDRP, Score-CDRP, % */
static const double PAPER_T2[3] = {0.4054, 0.3802, 0.3956}; /* Score-CAM, CDRP path, Score-CDRP path */

/* --------------------------------------------------- per-image values */

static int cmp_index(const void *a, const void *b, void *imgs) {
    const at_paths *p = imgs;
    return strcmp(p->paths[*(const int *)a], p->paths[*(const int *)b]);
}

int rp_line_image(const at_json *j, const char *method, const char *key, const at_paths *imgs, const int *order) {
    const at_json *im = at_json_get(j, "image"), *me = at_json_get(j, "method"), *ko = at_json_get(j, "class_option");
    if (!im || !me || im->type != AT_JSON_STRING || me->type != AT_JSON_STRING || strcmp(me->string, method) ||
        (key && (!ko || ko->type != AT_JSON_STRING || strcmp(ko->string, key))))
        return -1;
    if (!order) {
        for (int k = 0; k < imgs->n; k++)
            if (!strcmp(imgs->paths[k], im->string)) return k;
        return -1;
    }
    int lo = 0, hi = imgs->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(im->string, imgs->paths[order[mid]]);
        if (!c) return order[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

typedef struct {
    const char *method, *key;
    const at_paths *imgs;
    const int *order;
    int n_terms;
    const char *const *terms;
    double *out;
} values_ctx;

static int values_line(const at_json *j, void *ctx) {
    const values_ctx *c = ctx;
    int i = rp_line_image(j, c->method, c->key, c->imgs, c->order);
    for (int t = 0; i >= 0 && t < c->n_terms; t++) {
        const at_json *v = at_json_get(j, c->terms[t]);
        c->out[(long)t * c->imgs->n + i] = v && v->type == AT_JSON_NUMBER ? v->number : NAN;
    }
    return AT_OK;
}

int rp_load_values(const char *file, const char *method, const char *key, const at_paths *imgs, int n_terms,
                   const char *const *terms, double *out) {
    for (long i = 0; i < (long)n_terms * imgs->n; i++) out[i] = NAN;
    int *order = malloc(sizeof(int) * (imgs->n ? imgs->n : 1));
    if (!order) return at_fail(file, "out of memory");
    for (int i = 0; i < imgs->n; i++) order[i] = i;
    qsort_r(order, imgs->n, sizeof *order, cmp_index, (void *)imgs);
    values_ctx c = {method, key, imgs, order, n_terms, terms, out};
    int rc = at_jsonl_each(file, values_line, &c);
    free(order);
    return rc;
}

rp_stat rp_stat_of(const at_reproduce_config *c, const double *a, const double *b, int n) {
    rp_stat s = {NAN, NAN, NAN, 0};
    double *x = malloc(sizeof(double) * (n ? n : 1)), *y = malloc(sizeof(double) * (n ? n : 1));
    if (x && y) {
        double sum = 0;
        for (int i = 0; i < n; i++)
            if (isfinite(a[i]) && (!b || isfinite(b[i]))) {
                x[s.n] = a[i], y[s.n] = b ? b[i] : 0;
                sum += a[i] - (b ? b[i] : 0);
                s.n++;
            }
        if (s.n) {
            s.mean = sum / s.n;
            at_bootstrap_ci(x, b ? y : NULL, s.n, c->boot_reps, c->boot_seed, 0.95, &s.lo, &s.hi);
        }
    }
    free(x), free(y);
    return s;
}

const char *rp_fmt(char *buf, size_t cap, rp_stat s, int dec, int sign) {
    if (!s.n) snprintf(buf, cap, "–");
    else snprintf(buf, cap, sign ? "%+.*f [%+.*f, %+.*f]" : "%.*f [%.*f, %.*f]", dec, s.mean, dec, s.lo, dec, s.hi);
    return buf;
}

/* Verdict on a paired difference where `better` = +1 (higher is better) or -1. */
static const char *verdict(rp_stat d, int better) {
    if (!d.n) return "no data";
    if (better > 0 ? d.lo > 0 : d.hi < 0) return "Score-CDRP better (CI excludes 0)";
    if (better > 0 ? d.hi < 0 : d.lo > 0) return "CDRP better (CI excludes 0)";
    return "no significant difference (CI includes 0)";
}

/* ----------------------------------------------------------- tables */

#define BUF 96

static int table1(FILE *f, const rp_run *r, const char *dir) {
    const at_reproduce_config *c = r->cfg;
    const at_paths *im = &r->path;
    int n = im->n;
    char file[4300], b1[BUF], b2[BUF];
    snprintf(file, sizeof file, "%s/eval.confidence.jsonl", dir);
    double *v = malloc(sizeof(double) * 4 * n);
    static const char *const terms[] = {"orig_conf", "path_conf"};
    if (!v || rp_load_values(file, "cdrp", NULL, im, 2, terms, v) ||
        rp_load_values(file, "score-cdrp", NULL, im, 2, terms, v + 2 * n)) {
        free(v);
        return AT_ERR;
    }
    const double *orig = v, *cdrp = v + n, *score = v + 3 * n;
    rp_stat so = rp_stat_of(c, orig, NULL, n), sc = rp_stat_of(c, cdrp, NULL, n), ss = rp_stat_of(c, score, NULL, n);
    rp_stat d = rp_stat_of(c, score, cdrp, n);
    fprintf(f, "## Table 1: average prediction confidence (%%)\n\n"
               "p^c of the original network and of each image's gated network f(x; v) for the\n"
               "original predicted class c, mean over images with its 95 %% bootstrap CI.\n\n"
               "| network | paper (VGG16, NIPS 2017, 1000 images) | ours: mean [95 %% CI] | images |\n"
               "|---|---:|---:|---:|\n");
    fprintf(f, "| original | %.2f | %s | %d |\n", PAPER_T1[0], rp_fmt(b1, BUF, so, 2, 0), so.n);
    fprintf(f, "| CDRP path | %.2f | %s | %d |\n", PAPER_T1[1], rp_fmt(b1, BUF, sc, 2, 0), sc.n);
    fprintf(f, "| Score-CDRP path | %.2f | %s | %d |\n", PAPER_T1[2], rp_fmt(b1, BUF, ss, 2, 0), ss.n);
    fprintf(f, "| Score-CDRP − CDRP (paired) | %+.2f | %s | %d |\n\n", PAPER_T1[2] - PAPER_T1[1],
            rp_fmt(b2, BUF, d, 2, 1), d.n);
    fprintf(f, "Paper: Score-CDRP keeps more confidence than CDRP. Ours: **%s**.\n\n", verdict(d, +1));
    free(v);
    return AT_OK;
}

static int table2(FILE *f, const rp_run *r, const char *dir) {
    const at_reproduce_config *c = r->cfg;
    const at_paths *im = &r->path;
    int n = im->n;
    char file[4300], b1[BUF];
    snprintf(file, sizeof file, "%s/eval.energy-pg.jsonl", dir);
    static const char *const methods[3] = {"scorecam", "path-scorecam.cdrp", "path-scorecam.score-cdrp"};
    static const char *const names[3] = {"Score-CAM (original network)", "CDRP path heatmap",
                                         "Score-CDRP path heatmap"};
    static const char *const term[] = {"energy"};
    double *v = malloc(sizeof(double) * 3 * n);
    if (!v) return at_fail("reproduce", "out of memory");
    for (int m = 0; m < 3; m++)
        if (rp_load_values(file, methods[m], NULL, im, 1, term, v + (long)m * n)) {
            free(v);
            return AT_ERR;
        }
    fprintf(f, "## Table 2: energy-based pointing game\n\n"
               "Share of the heatmap's energy inside the ground-truth boxes (Eq. 7), maps of the\n"
               "predicted class, last conv layer, mean over the same images.\n\n"
               "| heatmap | paper (VGG16, 500 ILSVRC2012 val) | ours: mean [95 %% CI] | images |\n"
               "|---|---:|---:|---:|\n");
    for (int m = 0; m < 3; m++) {
        rp_stat s = rp_stat_of(c, v + (long)m * n, NULL, n);
        fprintf(f, "| %s | %.4f | %s | %d |\n", names[m], PAPER_T2[m], rp_fmt(b1, BUF, s, 4, 0), s.n);
    }
    rp_stat d = rp_stat_of(c, v + 2L * n, v + n, n);
    fprintf(f, "| Score-CDRP − CDRP (paired) | %+.4f | %s | %d |\n\n", PAPER_T2[2] - PAPER_T2[1],
            rp_fmt(b1, BUF, d, 4, 1), d.n);
    fprintf(f, "Paper: Score-CDRP's path heatmap points better than CDRP's. Ours: **%s**.\n\n", verdict(d, +1));
    free(v);
    return AT_OK;
}

static int fig7(FILE *f, const rp_run *r, const char *dir, const char *report_dir) {
    const at_reproduce_config *c = r->cfg;
    const at_paths *im = &r->path;
    int n = im->n, np = c->n_props;
    char file[4300], b1[BUF], b2[BUF], b3[BUF];
    snprintf(file, sizeof file, "%s/eval.ad-ic.jsonl", dir);
    char names[2 * AT_REPRODUCE_MAX_PROPS][24];
    const char *terms[2 * AT_REPRODUCE_MAX_PROPS];
    for (int p = 0; p < np; p++) {
        snprintf(names[2 * p], 24, "AD@%g", c->props[p]);
        snprintf(names[2 * p + 1], 24, "IC@%g", c->props[p]);
        terms[2 * p] = names[2 * p], terms[2 * p + 1] = names[2 * p + 1];
    }
    double *v = malloc(sizeof(double) * 4 * np * n);
    if (!v) return at_fail("reproduce", "out of memory");
    double *vc = v, *vs = v + 2L * np * n;
    if (rp_load_values(file, "path-scorecam.cdrp", r->eval_key_fig7, im, 2 * np, terms, vc) ||
        rp_load_values(file, "path-scorecam.score-cdrp", r->eval_key_fig7, im, 2 * np, terms, vs)) {
        free(v);
        return AT_ERR;
    }
    fprintf(f, "## Fig. 7: AD and IC of the path heatmaps by top-pixel proportion\n\n"
               "Keep the top p %% pixels of each path heatmap, set the rest to the mean colour,\n"
               "score with the %s network (%s); AD lower is better, IC higher is better.\n"
               "Δ = Score-CDRP − CDRP per image (paired). Paper: Score-CDRP better than CDRP at\n"
               "every proportion (no numbers printed in the paper).\n\n"
               "| p %% | AD CDRP | AD Score-CDRP | ΔAD | IC CDRP | IC Score-CDRP | ΔIC |\n"
               "|---:|---:|---:|---:|---:|---:|---:|\n",
            c->scorer_path ? "gated (path)" : "original", c->fig7_logit ? "logits" : "softmax probabilities");
    int wins_ad = 0, wins_ic = 0, sig_ad = 0, sig_ic = 0, images = 0;
    for (int p = 0; p < np; p++) {
        const double *adc = vc + (2L * p) * n, *icc = vc + (2L * p + 1) * n;
        const double *ads = vs + (2L * p) * n, *ics = vs + (2L * p + 1) * n;
        rp_stat a1 = rp_stat_of(c, adc, NULL, n), a2 = rp_stat_of(c, ads, NULL, n), da = rp_stat_of(c, ads, adc, n);
        rp_stat i1 = rp_stat_of(c, icc, NULL, n), i2 = rp_stat_of(c, ics, NULL, n), di = rp_stat_of(c, ics, icc, n);
        wins_ad += da.n && da.mean < 0, wins_ic += di.n && di.mean > 0;
        sig_ad += da.n && da.hi < 0, sig_ic += di.n && di.lo > 0;
        images = da.n > images ? da.n : images;
        fprintf(f, "| %g | %s | %s | %s |", c->props[p], rp_fmt(b1, BUF, a1, 1, 0), rp_fmt(b2, BUF, a2, 1, 0),
                rp_fmt(b3, BUF, da, 1, 1));
        fprintf(f, " %s | %s | %s |\n", rp_fmt(b1, BUF, i1, 1, 0), rp_fmt(b2, BUF, i2, 1, 0), rp_fmt(b3, BUF, di, 1, 1));
    }
    fprintf(f, "\n%d images. Score-CDRP has the lower mean AD at %d of %d proportions (CI excludes 0 at %d)\n"
               "and the higher mean IC at %d of %d (CI excludes 0 at %d).\n\n",
            images, wins_ad, np, sig_ad, wins_ic, np, sig_ic);
    rp_figure_link(f, report_dir, r->fig7_png, "Fig. 7: AD and IC vs proportion, 95 % CI bands", r->fig7_note,
                   "the table above holds the same numbers");
    free(v);
    return AT_OK;
}

/* ------------------------------------------------------------ grids */

typedef struct {
    char *image, *method, *overlay;
} overlay_entry;

static overlay_entry *overlays;
static int n_overlays, cap_overlays;

static int overlay_line(const at_json *j, void *ctx) {
    const char *dir = ctx;
    const at_json *im = at_json_get(j, "image"), *me = at_json_get(j, "method"), *ov = at_json_get(j, "overlay");
    if (!im || !me || !ov || im->type != AT_JSON_STRING || me->type != AT_JSON_STRING || ov->type != AT_JSON_STRING)
        return AT_OK;
    if (n_overlays == cap_overlays) {
        int cap = cap_overlays ? 2 * cap_overlays : 256;
        overlay_entry *ne = realloc(overlays, sizeof *ne * cap);
        if (!ne) return at_fail(dir, "out of memory");
        overlays = ne, cap_overlays = cap;
    }
    /* overlays lie in the maps folder: found there even if OUT was moved */
    const char *base = strrchr(ov->string, '/');
    char *path = malloc(strlen(dir) + strlen(ov->string) + 2);
    if (path) sprintf(path, "%s/%s", dir, base ? base + 1 : ov->string);
    overlays[n_overlays++] = (overlay_entry){strdup(im->string), strdup(me->string), path};
    return AT_OK;
}

static int read_overlays(const char *dir) {
    char file[4300];
    snprintf(file, sizeof file, "%s/results.jsonl", dir);
    return at_jsonl_each(file, overlay_line, (void *)dir);
}

static const char *find_overlay(const char *image, const char *method) {
    for (int i = n_overlays - 1; i >= 0; i--)
        if (!strcmp(overlays[i].image, image) && !strcmp(overlays[i].method, method)) return overlays[i].overlay;
    return NULL;
}

/* Copies img into a cell x cell tile at (x0, y0): scaled to cover the cell
 * (nearest neighbour) and centre-cropped, as the preprocessing does. */
static void blit(unsigned char *canvas, int cw, const at_image *img, int x0, int y0, int cell) {
    double scale = (double)cell / (img->w < img->h ? img->w : img->h);
    double ox = (img->w * scale - cell) / 2, oy = (img->h * scale - cell) / 2;
    for (int y = 0; y < cell; y++)
        for (int x = 0; x < cell; x++) {
            int sx = (int)((x + ox + 0.5) / scale), sy = (int)((y + oy + 0.5) / scale);
            sx = sx < img->w ? sx : img->w - 1, sy = sy < img->h ? sy : img->h - 1;
            memcpy(canvas + 3 * ((long)(y0 + y) * cw + x0 + x), img->rgb + 3 * ((long)sy * img->w + sx), 3);
        }
}

/* Tiles rows x cols PNG files (NULL: a blank tile) into one PNG. */
static int write_grid(const char *out, int rows, int cols, const char **cells, int cell) {
    const int gap = 4;
    int w = cols * cell + (cols + 1) * gap, h = rows * cell + (rows + 1) * gap;
    unsigned char *canvas = malloc((size_t)w * h * 3);
    if (!canvas) return at_fail(out, "out of memory");
    memset(canvas, 255, (size_t)w * h * 3);
    int rc = AT_OK;
    for (int i = 0; i < rows * cols && rc == AT_OK; i++) {
        if (!cells[i]) continue;
        at_image img = {0};
        if ((rc = at_image_load(cells[i], &img))) break;
        blit(canvas, w, &img, gap + (i % cols) * (cell + gap), gap + (i / cols) * (cell + gap), cell);
        at_image_free(&img);
    }
    if (rc == AT_OK) rc = at_output_write_png(out, w, h, canvas);
    free(canvas);
    return rc;
}

static int figures(FILE *f, const rp_run *r, const char *report_dir) {
    const at_reproduce_config *c = r->cfg;
    const at_paths *im = &r->figure;
    if (read_overlays(r->maps)) return AT_ERR;
    int cell = 0;
    const char *probe = im->n ? find_overlay(im->paths[0], "scorecam") : NULL;
    at_image first = {0};
    if (probe && at_image_load(probe, &first) == AT_OK) cell = first.w < first.h ? first.w : first.h;
    at_image_free(&first);
    if (!cell) {
        if (probe) return AT_ERR; /* the overlay exists in results.jsonl but does not load */
        fprintf(f, "## Qualitative figures\n\nNo overlays to tile (no Score-CAM of the first grid image).\n\n");
        return AT_OK;
    }
    int cols = 4, nr = c->n_rates + 1, rc = AT_OK;
    const char **cells = calloc((size_t)im->n * 2 * nr + (size_t)im->n * cols, sizeof *cells);
    if (!cells) return at_fail("reproduce", "out of memory");
    char out[4400], tag[64];
    static const char *const methods[3] = {"scorecam", "path-scorecam.cdrp", "path-scorecam.score-cdrp"};
    for (int i = 0; i < im->n; i++) {
        cells[i * cols] = im->paths[i];
        for (int m = 0; m < 3; m++) cells[i * cols + 1 + m] = find_overlay(im->paths[i], methods[m]);
    }
    const char *base;
    rp_figure_path(c, "fig3-4_6_path_heatmaps.png", out, sizeof out, &base);
    if ((rc = write_grid(out, im->n, cols, cells, cell))) goto done;
    fprintf(f, "## Qualitative figures\n\n"
               "Figs. 3-4 and 6: per row one image; columns: input | Score-CAM of the original\n"
               "network | CDRP path heatmap | Score-CDRP path heatmap (jet, 50 %% over the input).\n\n"
               "![Figs. 3-4, 6](%s)\n\n", base);
    for (int i = 0; i < im->n; i++)
        for (int p = 0; p < 2; p++) {
            const char **row = cells + ((long)i * 2 + p) * nr;
            row[0] = im->paths[i];
            for (int k = 0; k < c->n_rates; k++) {
                snprintf(tag, sizeof tag, "pathway-grad.%s.r%.2f", p ? "score-cdrp" : "cdrp", c->rates[k]);
                row[1 + k] = find_overlay(im->paths[i], tag);
            }
        }
    rp_figure_path(c, "fig5_pathway_gradients.png", out, sizeof out, &base);
    if ((rc = write_grid(out, im->n * 2, nr, cells, cell))) goto done;
    fprintf(f, "Fig. 5: pathway gradients (saliency of the network pruned by the path); per\n"
               "image a CDRP row then a Score-CDRP row; columns: input | prune rate");
    for (int k = 0; k < c->n_rates; k++) fprintf(f, "%s %g", k ? "," : "", c->rates[k]);
    fprintf(f, ".\n\n![Fig. 5](%s)\n\nImages:", base);
    for (int i = 0; i < im->n; i++) fprintf(f, " `%s`", im->paths[i]);
    fprintf(f, "\n\n");
done:
    free(cells);
    return rc;
}

/* ------------------------------------------------------------ report */

/* Backend and precision the maps were made with (the first results line). */
static void backend_used(const char *dir, char *out, size_t cap) {
    char file[4300], line[8192];
    snprintf(file, sizeof file, "%s/results.jsonl", dir);
    snprintf(out, cap, "unknown");
    FILE *f = fopen(file, "r");
    if (!f) return;
    at_json *j = NULL;
    if (fgets(line, sizeof line, f) && at_json_parse(line, strcspn(line, "\n"), &j) == AT_OK) {
        const at_json *b = at_json_get(j, "backend"), *p = at_json_get(j, "precision");
        if (b && p && b->type == AT_JSON_STRING && p->type == AT_JSON_STRING)
            snprintf(out, cap, "%s (%s)", b->string, p->string);
    }
    at_json_free(j);
    fclose(f);
}

static void header(FILE *f, const rp_run *r) {
    const at_reproduce_config *c = r->cfg;
    char be[64], date[64];
    backend_used(r->maps, be, sizeof be);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    fprintf(f, "# %s\n\n"
               "Reproduction of Zhu et al. 2024, \"Score-CDRP\" (docs/methods.md#the-papers-numbers) by `attrib reproduce`.\n"
               "The paper's numbers are VGG16 on ImageNet; ours are this run's model and data,\n"
               "so compare directions and gaps, not absolute values (docs/reproduce.md).\n\n",
            c->title);
    fprintf(f, "| | |\n|---|---|\n| config | `%s` |\n| model | `%s` |\n| model SHA-256 | `%s` |\n"
               "| engine | attrib %s |\n| backend | %s |\n| date | %s |\n",
            c->config_path, r->model_path, r->model_sha, ATTRIB_VERSION, be, date);
    fprintf(f, "| data | `%s`%s |\n", c->list ? c->list : c->images_dir, c->generate ? " (generated)" : "");
    fprintf(f, "| maps and per-image values | `%s` |\n", r->maps);
    fprintf(f, "| images | %d (CAM comparison), first %d of them for the paths, %d in the grids |\n",
            r->cam.n, r->path.n, r->figure.n);
    fprintf(f, "| CDRP / Score-CDRP options |");
    if (!c->n_path_opts) fprintf(f, " defaults (zhu2024)");
    for (int i = 0; i < c->n_path_opts; i++) fprintf(f, " %s", c->path_opts[i]);
    fprintf(f, " |\n| confidence intervals | 95 %% percentile bootstrap, %d resamples, seed %llu; paired "
               "over images for differences |\n| wall time | %.0f s this run |\n\n",
            c->boot_reps, (unsigned long long)c->boot_seed, r->wall_total_s);
}

static void steps_table(FILE *f, const rp_run *r) {
    fprintf(f, "## Steps and wall time\n\n"
               "Every step ran with `--resume`: a step finished earlier only re-reads its\n"
               "results; \"all runs\" adds the earlier invocations (OUT/steps.jsonl).\n\n"
               "| step | this run (s) | all runs (s) |\n|---|---:|---:|\n");
    for (int i = 0; i < r->n_steps; i++)
        fprintf(f, "| %s | %.1f | %.1f |\n", r->steps[i].name, r->steps[i].wall_s, r->steps[i].total_s);
    fprintf(f, "\nCommands are in OUT/logs/ (each step's stdout; eval's JSON summaries cover only\n"
               "the images that invocation scored, which is why this report recomputes from the\n"
               "per-image eval files).\n");
}

void rp_figure_link(FILE *f, const char *report_dir, const char *png, const char *alt, const char *note,
                    const char *same) {
    if (!png[0]) {
        fprintf(f, "Plot %s; %s.\n\n", note, same);
        return;
    }
    size_t ld = strlen(report_dir);
    if (!strncmp(png, report_dir, ld) && png[ld] == '/') png += ld + 1;
    fprintf(f, "![%s](%s)\n\n", alt, png);
}

void rp_figure_path(const at_reproduce_config *c, const char *name, char *path, size_t cap, const char **base) {
    size_t n = strlen(c->report);
    if (n > 3 && !strcmp(c->report + n - 3, ".md")) n -= 3;
    snprintf(path, cap, "%.*s.%s", (int)n, c->report, name);
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
}

int rp_write_report(const rp_run *r) {
    const at_reproduce_config *c = r->cfg;
    char dir[4200], tmp[4300];
    snprintf(dir, sizeof dir, "%s", c->report);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    if (at_output_dir_prepare(dir)) return AT_ERR;
    snprintf(tmp, sizeof tmp, "%s.tmp", c->report);
    int slot = at_output_track(tmp);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        if (slot >= 0) at_output_untrack(slot);
        return at_fail(tmp, "%s", strerror(errno));
    }
    header(f, r);
    int rc = AT_OK;
    if (c->table1 && !rc) rc = table1(f, r, r->maps);
    if (c->table2 && !rc) rc = table2(f, r, r->maps);
    if (c->fig7 && !rc) rc = fig7(f, r, r->maps, dir);
    if (c->seed004 && !rc) rc = rp_seed004_report(f, r);
    if (c->mprt && !rc) rc = rp_mprt_report(f, r, dir);
    if (c->methods && !rc) rc = rp_methods_report(f, r);
    if (c->lcam && !rc) rc = rp_lcam_report(f, r);
    if (c->figures && !rc) rc = figures(f, r, dir);
    if (!rc) steps_table(f, r);
    if (fclose(f) && !rc) rc = at_fail(tmp, "write error");
    if (!rc && rename(tmp, c->report)) rc = at_fail(c->report, "%s", strerror(errno));
    if (rc) unlink(tmp);
    if (slot >= 0) at_output_untrack(slot);
    for (int i = 0; i < n_overlays; i++) free(overlays[i].image), free(overlays[i].method), free(overlays[i].overlay);
    free(overlays);
    overlays = NULL, n_overlays = cap_overlays = 0;
    return rc;
}

