/* at_explain_run (run/explain.h): the options resolved against the model
 * once, then the images in batches through at_explain (or the routing-path
 * batch, explain_paths.c), each image's files and results line written as
 * it finishes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "io/annotations.h"
#include "io/npy.h"
#include "methods/lcam.h"
#include "methods/relevance.h"
#include "output/colormap.h"
#include "preprocess/pipeline.h"
#include "run/explain_internal.h"
#include "run/explain_names.h"
#include "version.h"

#define MAX_FUSED_LAYERS 16
/* Seconds one batch of a path method should take: long enough to batch many
 * images (the speed lever), short enough that progress moves and an
 * interruption loses little. The batch grows from one image by the measured cost. */
#define PATH_BATCH_TARGET_S 5.0

void at_explain_run_defaults(at_explain_run_options *o) {
    memset(o, 0, sizeof *o);
    o->ex.variant = AT_VARIANT_AUTHORS;
    o->ex.layer = -1;
    o->cls = AT_CLASS_PREDICTED;
    at_cdrp_preset("zhu2024", 0, &o->path.cdrp);
    snprintf(o->path.preset, sizeof o->path.preset, "zhu2024");
    o->path.path_score_weighted = 1;
    o->path.n_rates = 4;
    o->path.rates[0] = 0.3, o->path.rates[1] = 0.5, o->path.rates[2] = 0.7, o->path.rates[3] = 0.9;
}

int explain_write_map(const char *dir, const char *stem, const char *tag, const char *param, const float *map, int w,
                      int h, const unsigned char *rgb, int no_overlay, char **npy_path, char **png_path) {
    *npy_path = at_output_path(dir, stem, tag, param, "npy");
    *png_path = no_overlay ? NULL : at_output_path(dir, stem, tag, param, "png");
    if (!*npy_path || (!no_overlay && !*png_path)) return AT_ERR;
    int64_t shape[2] = {h, w};
    if (at_output_write_npy(*npy_path, map, 2, shape)) return AT_ERR;
    if (!no_overlay && at_overlay_png(*png_path, rgb, map, w, h, 0.5f)) return AT_ERR;
    return AT_OK;
}

void explain_class_fields(at_jsonw *w, const at_model *m, int cls) {
    at_jsonw_int(w, "class", cls);
    at_jsonw_str(w, "label", m->labels[cls].id);
    at_jsonw_str(w, "label_name", m->labels[cls].name);
}

/* The options as the model reads them: layers, L-CAM's module, EB's
 * read-out, RISE's masks, the unit. */
typedef struct {
    at_explain_options ex;
    at_perturb_options perturb;
    float *rise_masks;
    at_lcam *lcam;
    at_unit unit;
    int layers[MAX_FUSED_LAYERS];
    char layer_names[MAX_FUSED_LAYERS * 40];
    const char *layer_name; /* the results line's "layer" */
} resolved;

/* The layer spec as layer indices: one layer, or LayerCAM's list to fuse
 * (names joined by '+' in files and results lines). */
static int resolve_layers(resolved *r, const at_model *m, const char *layer_spec) {
    char spec[512];
    snprintf(spec, sizeof spec, "%s", layer_spec ? layer_spec : "last-conv");
    int n = 0;
    size_t o = 0, cap = sizeof r->layer_names;
    for (char *save = NULL, *tok = strtok_r(spec, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == MAX_FUSED_LAYERS) return at_fail("layer", "more than %d layers", MAX_FUSED_LAYERS);
        if ((r->layers[n] = at_model_find_layer(m, tok)) < 0 || at_explain_check_layer(m, r->ex.method, r->layers[n]))
            return AT_ERR;
        o += snprintf(r->layer_names + o, o < cap ? cap - o : 0, "%s%s", n ? "+" : "", m->layers[r->layers[n]].name);
        n++;
    }
    if (!n) return at_fail("layer", "empty layer list '%s'", layer_spec);
    if (n > 1 && r->ex.method != AT_METHOD_LAYERCAM)
        return at_fail("layer", "several layers are fused by layercam only, not by %s", at_method_name(r->ex.method));
    r->ex.layer = r->layers[0];
    r->ex.n_layers = n;
    r->ex.layers = r->layers;
    return AT_OK;
}

int at_rise_masks_load(const at_model *m, const char *path, int n_given, at_perturb_options *o, float **masks) {
    int nd;
    int64_t shape[AT_NPY_MAX_DIMS];
    *masks = NULL;
    if (at_npy_read_f32(path, masks, &nd, shape)) return AT_ERR;
    if (nd != 3 || shape[1] != m->in_h || shape[2] != m->in_w || shape[0] < 1)
        return at_fail(path, "masks must be [N][%d][%d] for this model", m->in_h, m->in_w);
    if (n_given && shape[0] != o->rise_n)
        return at_fail("RISE N", "%d, but %s holds %lld masks", o->rise_n, path, (long long)shape[0]);
    o->rise_n = (int)shape[0];
    o->rise_masks = *masks;
    return AT_OK;
}

/* *usage: the failure is in the options, not in a file. */
static int resolve(resolved *r, const at_explain_run_options *a, const at_model *m, int *usage) {
    r->ex = a->ex;
    if (a->ex.perturb) r->perturb = *a->ex.perturb;
    else at_perturb_defaults(&r->perturb);
    r->ex.perturb = &r->perturb;
    r->ex.classes = NULL;
    r->layer_name = "";
    *usage = 1;
    if (a->routing) {
        r->ex.layer = -1;
        return AT_OK;
    }
    if (at_method_uses_layer(r->ex.method)) {
        if (resolve_layers(r, m, a->layer)) return AT_ERR;
        r->layer_name = r->layer_names;
    } else {
        r->ex.layer = -1;
    }
    if (r->ex.method == AT_METHOD_LCAM) {
        char dflt[1100];
        at_lcam_default_path(m, dflt, sizeof dflt);
        *usage = 0;
        if (at_lcam_load(m, a->lcam ? a->lcam : dflt, &r->lcam)) return AT_ERR;
        *usage = 1;
        r->ex.lcam = r->lcam;
        snprintf(r->layer_names, sizeof r->layer_names, "%s", r->lcam->layer_name);
        r->layer_name = r->layer_names;
    }
    if (r->ex.method == AT_METHOD_EB || r->ex.method == AT_METHOD_CEB) {
        int readout, ct;
        if (a->layer) r->ex.eb_layer = a->layer;
        if (at_relevance_layers(m, &r->ex, &readout, &ct)) return AT_ERR;
        r->ex.layer = -1;
        r->layer_name = m->layers[readout].name;
    }
    if (a->rise_masks && at_rise_masks_load(m, a->rise_masks, a->rise_n_given, &r->perturb, &r->rise_masks))
        return AT_ERR;
    if (at_perturb_check(m, &r->perturb)) return AT_ERR;
    if (a->cls >= m->n_classes) return at_fail("class", "%ld is out of range 0..%d", a->cls, m->n_classes - 1);
    if (a->unit) {
        if (at_unit_parse(m, a->unit, &r->unit)) return AT_ERR;
        r->ex.unit = &r->unit;
    }
    return at_explain_check_gradient_options(m, &r->ex);
}

static int save_rise_masks(const char *path, const at_model *m, const at_perturb_options *o) {
    long hw = (long)m->in_h * m->in_w;
    float *all = malloc(sizeof(float) * hw * o->rise_n);
    if (!all) return at_fail(path, "out of memory for %d masks", o->rise_n);
    at_rise_masks(m->in_h, m->in_w, o->rise_cells, o->rise_p, o->rise_seed, 0, o->rise_n, all);
    int64_t shape[3] = {o->rise_n, m->in_h, m->in_w};
    int rc = at_npy_write_f32(path, all, 3, shape);
    free(all);
    return rc;
}

static char *results_line(const at_explain_run_options *a, const resolved *rs, const at_backend *be,
                          const char *tag, const char *settings, const char *image, const char *cls_opt,
                          const at_explain_result *r, const char *npy, const char *png, double ms, int batch) {
    const at_model *m = be->model;
    at_jsonw w;
    at_jsonw_begin(&w);
    at_jsonw_str(&w, "image", image);
    at_jsonw_str(&w, "method", tag);
    at_jsonw_str(&w, "settings", settings);
    at_jsonw_str(&w, "variant", at_variant_name(rs->ex.variant));
    at_jsonw_str(&w, "layer", rs->layer_name);
    at_jsonw_str(&w, "class_option", cls_opt);
    explain_class_fields(&w, m, r->cls);
    at_jsonw_num(&w, "prob", r->prob);
    at_jsonw_num(&w, "logit", r->logit);
    at_jsonw_int(&w, "predicted", r->predicted);
    at_jsonw_str(&w, "map", npy);
    at_jsonw_str(&w, "overlay", png);
    at_jsonw_bool(&w, "flat_map", r->flat_map);
    if (rs->ex.method == AT_METHOD_SCORECAM) at_jsonw_int(&w, "flat_channels", r->flat_channels);
    if (rs->ex.lcam) at_jsonw_str(&w, "lcam_module", rs->ex.lcam->path);
    at_jsonw_int(&w, "forwards", r->forwards);
    grad_results_fields(&w, m, &rs->ex, r);
    at_jsonw_num(&w, "ms", ms); /* the batch's wall time per image */
    at_jsonw_int(&w, "batch", batch);
    at_jsonw_str(&w, "backend", be->name);
    at_jsonw_str(&w, "precision", at_precision_name(be->precision));
    at_jsonw_str(&w, "model", m->name);
    at_jsonw_str(&w, "model_sha256", m->sha256);
    at_jsonw_str(&w, "engine", "attrib " ATTRIB_VERSION);
    (void)a;
    return at_jsonw_end(&w);
}

/* The images without repeats (as given, the first kept): one results line
 * per image and key. */
static int cmp_index_path(const void *x, const void *y, void *paths) {
    int a = *(const int *)x, b = *(const int *)y;
    int c = strcmp(((const char *const *)paths)[a], ((const char *const *)paths)[b]);
    return c ? c : a - b;
}

static const char **distinct_images(const char *const *images, int n, int *kept) {
    const char **out = malloc(sizeof *out * (n ? n : 1));
    int *order = malloc(sizeof(int) * (n ? n : 1));
    char *dup = calloc(n ? n : 1, 1);
    if (!out || !order || !dup) {
        free(out), free(order), free(dup);
        return NULL;
    }
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, n, sizeof(int), cmp_index_path, (void *)images);
    for (int i = 1; i < n; i++)
        if (!strcmp(images[order[i]], images[order[i - 1]])) dup[order[i]] = 1;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!dup[i]) out[k++] = images[i];
    *kept = k;
    free(order), free(dup);
    return out;
}

static int is_perturbation(at_method m) {
    return m == AT_METHOD_RISE || m == AT_METHOD_OCCLUSION || m == AT_METHOD_MEANINGFUL;
}

typedef struct {
    int index;    /* into the images */
    at_image rgb; /* preprocessed RGB8, for the overlay */
} loaded_image;

int at_explain_run(at_backend *be, const at_explain_run_options *a, const char *const *images_given, int n_given,
                   const at_run_callbacks *cb, at_explain_summary *out) {
    memset(out, 0, sizeof *out);
    const at_model *m = be->model;
    const char *out_dir = a->out_dir ? a->out_dir : "out";
    resolved rs;
    memset(&rs, 0, sizeof rs);
    run_report rep = {.cb = cb};
    at_results *res = NULL;
    char **stems = NULL;
    path_reuse reuse = {0};
    at_annotations ann = {0};
    int have_ann = 0, rc = AT_ERR, n = 0;
    int *indices = NULL, *classes = NULL;
    at_image *rgbs = NULL;
    float *inputs = NULL, *maps = NULL;
    loaded_image *loaded = NULL;
    at_explain_result *results = NULL;
    const char **images = distinct_images(images_given, n_given, &n);
    if (!images) return at_fail(NULL, "out of memory");
    out->images = n;
    out->repeated = n_given - n;
    if (!n) {
        rc = at_fail("images", "none given");
        goto out;
    }
    if (a->cls == AT_CLASS_TRUTH && !a->annotations) {
        out->bad_option = 1;
        rc = at_fail("class", "truth needs annotations");
        goto out;
    }
    int usage;
    if (resolve(&rs, a, m, &usage)) {
        out->bad_option = usage;
        goto out;
    }
    char tag[64], settings[200];
    if (a->routing) {
        path_method_tag(a->path_method, &a->path, tag, sizeof tag);
        path_settings(a->path_method, &a->path, be->precision, settings, sizeof settings);
        out->path_kind = a->path_method == AT_PATH_SCORE_CDRP ||
                                 (a->path_method >= AT_PATH_SCORECAM && a->path.path_score_weighted)
                             ? "score-cdrp" : "cdrp";
    } else {
        explain_method_tag(&rs.ex, tag, sizeof tag);
        explain_map_settings(a, &rs.ex, m, be->precision, rs.layer_names, settings, sizeof settings);
    }
    const char *name = out->name;
    results_key_name(tag, settings, out->name, sizeof out->name);
    /* keys this run writes per image; pathway-grad writes one per rate and
     * its last rate's line marks an image done */
    int n_keys = a->routing && a->path_method == AT_PATH_PATHWAY_GRAD ? a->path.n_rates : 1;
    char keys[AT_MAX_RATES][320];
    for (int k = 0; k < n_keys; k++) {
        char method[96];
        if (a->routing && a->path_method == AT_PATH_PATHWAY_GRAD)
            snprintf(method, sizeof method, "%s.r%.2f", tag, a->path.rates[k]);
        else
            snprintf(method, sizeof method, "%s", tag);
        results_key_name(method, settings, keys[k], sizeof keys[k]);
    }
    const char *done_key = keys[n_keys - 1];
    char cls_opt[32];
    if (a->cls >= 0) snprintf(cls_opt, sizeof cls_opt, "%ld", a->cls);
    else snprintf(cls_opt, sizeof cls_opt, a->cls == AT_CLASS_TRUTH ? "truth" : "predicted");
    const char *key_cls = a->routing ? "predicted" : cls_opt, *key_layer = a->routing ? "" : rs.layer_name;
    stems = calloc(n, sizeof *stems);
    if (!stems || at_output_stems(n, images, stems) || at_output_dir_prepare(out_dir) ||
        (!a->routing && a->rise_save_masks && save_rise_masks(a->rise_save_masks, m, &rs.perturb)) ||
        at_results_open(&res, out_dir, "results.jsonl", 1))
        goto out;
    int existing = 0;
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int k = 0; k < n_keys && !found; k++) found = at_results_has(res, images[i], keys[k], key_layer, key_cls);
        existing += found;
    }
    out->existing = existing;
    if (existing && a->existing == AT_EXISTING_STOP) {
        out->bad_option = 1;
        at_fail(at_results_path(res), "already holds %s results for %d of these %d images", name, existing, n);
        goto out;
    }
    if (at_output_install_signal_cleanup() ||
        (a->routing && a->path_method >= AT_PATH_SCORECAM && !a->path.gates_dir && !a->path.reoptimise &&
         path_reuse_load(&reuse, out_dir, &a->path, m, be->precision)))
        goto out;
    if (out->repeated)
        run_report_message(&rep, AT_RUN_NOTICE, "explain: %d repeated image paths are explained once", out->repeated);
    if (a->annotations) {
        if (at_annotations_load(a->annotations, m, &ann)) goto out;
        have_ann = 1;
    }
    /* gradient methods run images in batches; Score-CAM batches channels,
     * RISE and occlusion masks; meaningful perturbation batches a few images
     * (hundreds of passes each) */
    const at_method me = rs.ex.method;
    int one = !a->routing && (me == AT_METHOD_SCORECAM || me == AT_METHOD_RISE || me == AT_METHOD_OCCLUSION);
    int cap = one ? 1 : at_max_batch(be, 1);
    if (cap > 32) cap = 32;
    if (!a->routing && me == AT_METHOD_MEANINGFUL && cap > 8) cap = 8;
    if (cap < 1) cap = 1;
    int chunk = a->routing ? 1 : cap;
    long in_size = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w;
    indices = malloc(sizeof(int) * cap);
    rgbs = malloc(sizeof(at_image) * cap);
    inputs = malloc(sizeof(float) * in_size * cap), maps = malloc(sizeof(float) * hw * cap);
    loaded = calloc(cap, sizeof *loaded);
    results = calloc(cap, sizeof *results);
    classes = malloc(sizeof(int) * cap);
    if (!inputs || !maps || !loaded || !results || !classes || !indices || !rgbs) {
        at_fail(NULL, "out of memory");
        goto out;
    }
    run_report_start(&rep, cb, n);
    rc = AT_OK;
    for (int next = 0; next < n && !out->stopped;) {
        int nb = 0, skipped = 0;
        for (; next < n && nb < chunk; next++) {
            const char *path = images[next];
            if (a->existing == AT_EXISTING_SKIP && at_results_has(res, path, done_key, key_layer, key_cls)) {
                skipped++;
                continue;
            }
            int bad = at_load_input_rgb(m, path, inputs + in_size * nb, &loaded[nb].rgb, NULL);
            if (!bad) {
                loaded[nb].index = next;
                run_report_notes(&rep, loaded[nb].rgb.notes);
                classes[nb] = (int)a->cls;
            }
            if (!bad && a->cls == AT_CLASS_TRUTH) {
                const at_annotation *an = have_ann ? at_annotations_find(&ann, path) : NULL;
                if (!an || an->cls < 0) {
                    at_fail(path, "no ground-truth class in %s", a->annotations);
                    at_image_free(&loaded[nb].rgb);
                    bad = 1;
                } else {
                    classes[nb] = an->cls;
                }
            }
            if (bad) { /* reported and counted; strict stops the run here */
                run_report_error(&rep, path);
                out->failed++;
                if (a->strict) {
                    out->stopped = 1;
                    break;
                }
                run_report_event(&rep, AT_RUN_DONE, 0, 1);
                continue;
            }
            results[nb] = (at_explain_result){.map = maps + hw * nb};
            nb++;
        }
        out->skipped += skipped;
        if (skipped) run_report_event(&rep, AT_RUN_SKIP, skipped, 0);
        if (!nb) continue;
        double t0 = at_now_s();
        if (a->routing) {
            path_run run = {.method = a->path_method, .p = &a->path, .m = m, .be = be, .tag = tag, .out_dir = out_dir,
                            .settings = settings, .name = name, .reuse = &reuse, .summary = out,
                            .stems = stems, .paths = images, .res = res, .rep = &rep,
                            .no_overlay = a->no_overlay, .skip_existing = a->existing == AT_EXISTING_SKIP};
            for (int j = 0; j < nb; j++) indices[j] = loaded[j].index, rgbs[j] = loaded[j].rgb;
            if (explain_paths_batch(&run, inputs, nb, indices, rgbs)) {
                run_report_error(&rep, images[indices[0]]);
                out->stopped = 1;
            } else {
                out->done += nb;
            }
            for (int j = 0; j < nb; j++) at_image_free(&loaded[j].rgb);
            /* next batch: twice this one at most, and about PATH_BATCH_TARGET_S long */
            double per_image = (at_now_s() - t0) / nb;
            int fit = per_image > 0 ? (int)(PATH_BATCH_TARGET_S / per_image) : cap;
            chunk = 2 * nb < fit ? 2 * nb : fit;
            chunk = chunk < 1 ? 1 : chunk > cap ? cap : chunk;
            continue;
        }
        at_explain_options ex = rs.ex;
        ex.classes = classes;
        run_batch share = {&rep, nb}; /* a perturbation method's progress within the batch */
        if (is_perturbation(me)) rs.perturb.on_progress = run_batch_progress, rs.perturb.progress_ctx = &share;
        if (at_explain(be, &ex, inputs, nb, results)) {
            run_report_error(&rep, images[loaded[0].index]);
            out->stopped = 1;
        }
        rs.perturb.on_progress = NULL;
        double ms = 1e3 * (at_now_s() - t0) / nb;
        int written = 0;
        for (int j = 0; j < nb; j++) {
            if (!out->stopped) {
                const char *path = images[loaded[j].index];
                char *npy = NULL, *png = NULL, *line = NULL;
                if (explain_write_map(out_dir, stems[loaded[j].index], name, NULL, results[j].map, m->in_w, m->in_h,
                                      loaded[j].rgb.rgb, a->no_overlay, &npy, &png) ||
                    !(line = results_line(a, &rs, be, tag, settings, path, cls_opt, &results[j], npy, png, ms, nb)) ||
                    at_results_append(res, line) || at_results_add_key(res, path, name, rs.layer_name, cls_opt)) {
                    run_report_error(&rep, path); /* disk full, permissions: nothing later can succeed */
                    out->stopped = 1;
                } else {
                    written++;
                }
                free(npy), free(png), free(line);
            }
            at_image_free(&loaded[j].rgb);
        }
        out->done += written;
        if (written) run_report_event(&rep, is_perturbation(me) ? AT_RUN_BATCH : AT_RUN_DONE, written, 0);
    }
    run_report_event(&rep, AT_RUN_FINISH, 0, 0);
    if (out->failed)
        run_report_message(&rep, AT_RUN_NOTICE, "explain: %d of %d images could not be read", out->failed, n);
    if (a->existing == AT_EXISTING_REPLACE && existing) {
        if (at_results_compact(res, &out->replaced)) rc = AT_ERR;
        else
            run_report_message(&rep, AT_RUN_NOTICE, "explain: replaced %ld earlier results lines in %s", out->replaced,
                               at_results_path(res));
    }
out:
    if (have_ann) at_annotations_free(&ann);
    free(inputs), free(maps), free(loaded), free(results), free(classes), free(indices), free(rgbs);
    if (stems)
        for (int i = 0; i < n; i++) free(stems[i]);
    free(stems);
    free(images);
    path_reuse_free(&reuse);
    free(rs.rise_masks);
    at_lcam_free(rs.lcam);
    at_results_close(res);
    return rc;
}
