/* ./attrib bench: ms/image, images/s, achieved TFLOP/s and % of peak for the
 * forward, gated forward and forward + gate-backward passes (docs/methods.md#cost-arithmetic). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/clock.h"
#include "core/error.h"
#include "bench_methods.h"
#include "perturb_options.h"
#include "model/random_model.h"

static const char *const HELP =
    "usage: attrib bench [options]\n"
    "Times whole-network passes on random-weight VGG16 (224x224, 1000 classes) and\n"
    "the shipped VGG16-mini, and prints ms/image, images/s, GMAC/image, achieved\n"
    "TFLOP/s (2 FLOP per MAC) and the share of the device's peak. 'backward' is a\n"
    "forward plus a backward to the gates, its work counted as 2 forwards.\n"
    "  --nets LIST         vgg16,mini (default both), resnet50 (random, 224x224), or\n"
    "                      'model' for --model's file\n"
    "  --batch LIST        batch sizes (default 1,8 on CPU, 1,8,32,max on CUDA)\n"
    "  --passes LIST       forward,gated,backward (default all three)\n"
    "  --min-time S        seconds each measurement runs at least (default 1)\n"
    "  --json              one JSON object per measurement\n"
    "  --quiet             no notices on stderr (e.g. why auto chose the CPU)\n"
    "  --method M          time a whole method instead of passes: any explain method\n"
    "                      (scorecam, gradcam, ..., integrated-gradients, smoothgrad, layercam,\n"
    "                      ablation-cam, eigencam, rise, occlusion, meaningful-perturbation), cdrp,\n"
    "                      score-cdrp (s/image, forwards and backwards/image); their options as\n"
    "                      for explain (--rise-n, --occlusion-window, --mp-iterations, --ig-steps, ...)\n"
    "  --images N          images per method measurement (default 4)\n"
    "  --iterations T      CDRP steps for --method cdrp|score-cdrp (default: the preset's 100)\n"
    "  --cic-precision P   score-cdrp: the CIC pass at fp32 | tf32 | fp16 (default --precision)\n";

typedef enum { PASS_FORWARD, PASS_GATED, PASS_BACKWARD } bench_pass;
static const char *pass_names[] = {"forward", "gated", "backward"};

static int run_pass(at_backend *be, bench_pass pass, int n, float *x, float *gates, float *logits, float *dl,
                    float *gg) {
    at_forward_args fa = {.n = n, .input = x, .logits = logits};
    if (pass != PASS_FORWARD) {
        fa.gates = gates;
        fa.gates_per_item = 1;
    }
    fa.keep_for_backward = pass == PASS_BACKWARD;
    if (at_forward(be, &fa)) return AT_ERR;
    if (pass == PASS_BACKWARD) {
        at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_gates = gg};
        return at_backward(be, &ba);
    }
    return AT_OK;
}

static int bench_net(at_backend *be, const char *net, const long *batches, int n_batches, const int *passes,
                     double min_time, int json, double peak) {
    const at_model *m = be->model;
    long in_size = (long)m->in_c * m->in_h * m->in_w;
    for (int bi = 0; bi < n_batches; bi++) {
        int n = (int)batches[bi];
        if (n <= 0) n = at_max_batch(be, 1);
        float *x = malloc(sizeof(float) * in_size * n), *gates = malloc(sizeof(float) * m->n_gates * n),
              *logits = malloc(sizeof(float) * m->n_classes * n), *dl = malloc(sizeof(float) * m->n_classes * n),
              *gg = malloc(sizeof(float) * m->n_gates * n);
        if (!x || !gates || !logits || !dl || !gg) {
            free(x), free(gates), free(logits), free(dl), free(gg);
            return at_fail("bench", "out of memory for batch %d", n);
        }
        at_prng_fill("input", 1, x, in_size * n, 2.0f, 0.0f);
        at_prng_fill("gates", 1, gates, (long)m->n_gates * n, 0.5f, 1.0f);
        at_prng_fill("dlogits", 1, dl, (long)m->n_classes * n, 1.0f, 0.0f);
        for (int p = 0; p < 3; p++) {
            if (!passes[p]) continue;
            if (run_pass(be, p, n, x, gates, logits, dl, gg)) goto fail; /* warm-up */
            int iters = 0;
            double t0 = at_now_s(), t;
            do {
                if (run_pass(be, p, n, x, gates, logits, dl, gg)) goto fail;
                iters++;
                t = at_now_s() - t0;
            } while (t < min_time);
            double ms = 1e3 * t / iters / n;
            /* "backward" is forward + gate-backward, the backward costing about one
             * forward (docs/methods.md#cost-arithmetic): its work is counted as 2
             * forwards, printed and rated alike */
            double macs = m->macs_per_image * (p == PASS_BACKWARD ? 2 : 1), flops = 2.0 * macs;
            double achieved = flops / (ms * 1e-3);
            /* the backend's memory so far (weights + the arena, which only grows): the peak */
            const double mem_mb = at_memory_in_use(be) / 1048576.0;
            if (json)
                printf("{\"net\":\"%s\",\"backend\":\"%s\",\"precision\":\"%s\",\"pass\":\"%s\",\"batch\":%d,"
                       "\"ms_per_image\":%.4f,\"images_per_s\":%.3f,\"gmac_per_image\":%.4f,\"tflops\":%.4f,"
                       "\"peak_pct\":%.2f,\"peak_gflops\":%.1f,\"iters\":%d,\"memory_mb\":%.1f,\"threads\":%d}\n",
                       net, be->name, at_precision_name(be->precision), pass_names[p], n, ms, 1e3 / ms,
                       macs / 1e9, achieved / 1e12, 100 * achieved / peak, peak / 1e9, iters, mem_mb,
                       omp_get_max_threads());
            else
                printf("%-8s %-5s %-5s %-9s batch %4d  %9.3f ms/image  %9.2f images/s  %7.3f GMAC/image  "
                       "%7.4f TFLOP/s  %5.1f%% of peak  %8.1f MB peak memory\n",
                       net, be->name, at_precision_name(be->precision), pass_names[p], n, ms, 1e3 / ms,
                       macs / 1e9, achieved / 1e12, 100 * achieved / peak, mem_mb);
            fflush(stdout);
        }
        free(x), free(gates), free(logits), free(dl), free(gg);
        continue;
    fail:
        free(x), free(gates), free(logits), free(dl), free(gg);
        return AT_ERR;
    }
    return AT_OK;
}

static int parse_list(const char *opt, const char *s, long *out, int cap, int *n) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n >= cap) return at_fail(opt, "too many values");
        if (!strcmp(tok, "max")) out[(*n)++] = 0;
        else if (cli_parse_int(opt, tok, 1, 4096, &out[(*n)++])) return AT_ERR;
    }
    return *n ? AT_OK : at_fail(opt, "empty list");
}

int cmd_bench(int argc, char **argv) {
    if (cli_help_asked(argc, argv, HELP)) return 0;
    cli_common common;
    cli_common_init(&common);
    long batches[16];
    int n_batches = 0, passes[3] = {1, 1, 1}, json = 0, want_vgg16 = 1, want_mini = 1, want_model = 0,
        want_resnet50 = 0;
    double min_time = 1.0;
    const char *method = NULL;
    long images = 4, iterations = -1;
    at_precision cic_prec;
    int cic_set = 0;
    perturb_args perturb;
    perturb_args_init(&perturb);
    for (int i = 1; i < argc; i++) {
        int r = cli_common_parse(&common, argc, argv, &i);
        if (r == AT_ERR) goto usage;
        if (r) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(a, "--quiet")) continue; /* seen by cli_common_parse: no backend notice */
        if (i + 1 >= argc) {
            at_fail(a, strncmp(a, "--", 2) ? "unknown option (see attrib bench --help)" : "needs a value");
            goto usage;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--method")) {
            method = v;
        } else if (!strcmp(a, "--images")) {
            if (cli_parse_int(a, v, 1, 100000, &images)) goto usage;
        } else if (!strcmp(a, "--iterations")) {
            if (cli_parse_int(a, v, 0, 100000, &iterations)) goto usage;
        } else if (!strcmp(a, "--cic-precision")) {
            if (cli_parse_precision(a, v, &cic_prec)) goto usage;
            cic_set = 1;
        } else if (!strcmp(a, "--batch")) {
            if (parse_list(a, v, batches, 16, &n_batches)) goto usage;
        } else if (!strcmp(a, "--min-time")) {
            if (cli_parse_double(a, v, 0, 3600, &min_time)) goto usage;
        } else if (!strcmp(a, "--passes") || !strcmp(a, "--nets")) {
            int is_pass = !strcmp(a, "--passes");
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            if (is_pass) memset(passes, 0, sizeof passes);
            else want_vgg16 = want_mini = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int ok = 0;
                for (int p = 0; is_pass && p < 3; p++)
                    if (!strcmp(tok, pass_names[p])) passes[p] = ok = 1;
                if (!is_pass) {
                    if (!strcmp(tok, "vgg16")) want_vgg16 = ok = 1;
                    if (!strcmp(tok, "mini")) want_mini = ok = 1;
                    if (!strcmp(tok, "model")) want_model = ok = 1;
                    if (!strcmp(tok, "resnet50")) want_resnet50 = ok = 1;
                }
                if (!ok) {
                    at_fail(a, "unknown value '%s'", tok);
                    goto usage;
                }
            }
        } else {
            int r2 = perturb_args_parse(&perturb, a, v);
            if (r2 == AT_ERR) goto usage;
            if (!r2) {
                at_fail(a, "unknown option (see attrib bench --help)");
                goto usage;
            }
        }
    }
    if (!n_batches) {
        int cuda = strcmp(common.be.name, "cpu") != 0 && at_cuda_available(NULL, 0);
        long dflt_cpu[] = {1, 8}, dflt_gpu[] = {1, 8, 32, 0};
        n_batches = cuda ? 4 : 2;
        memcpy(batches, cuda ? dflt_gpu : dflt_cpu, sizeof(long) * n_batches);
    }
    const char *nets[4] = {"vgg16", "mini", "model", "resnet50"};
    int want[4] = {want_vgg16, want_mini, want_model, want_resnet50};
    for (int k = 0; k < 4; k++) {
        if (!want[k]) continue;
        at_model *m = NULL;
        at_backend *be = NULL;
        int rc;
        if (k == 0 || k == 3) {
            at_random_spec spec;
            at_random_spec_standard(&spec, nets[k], 224, 1000);
            rc = at_random_model(&spec, &m);
        } else if (k == 1) {
            rc = at_model_load(cli_default_model(), &m);
        } else
            rc = at_model_load(common.model ? common.model : cli_default_model(), &m);
        if (rc == AT_OK) rc = at_backend_create(m, &common.be, &be);
        at_method pm;
        if (rc == AT_OK && method && at_method_parse(method, &pm) == AT_OK) {
            perturb_args_free(&perturb);
            rc = perturb_args_prepare(&perturb, m, pm);
        }
        if (rc == AT_OK && (k == 0 || k == 3) && be->notice[0] && !common.quiet) fprintf(stderr, "attrib: %s\n", be->notice);
        if (be && !method && be->peak_flops <= 0) be->peak_flops = at_cpu_peak_flops();
        double peak = be ? be->peak_flops : 1;
        static int peak_shown;
        if (rc == AT_OK && !method && !json && !peak_shown++) {
            int cpu = !strcmp(be->name, "cpu");
            printf("%s peak %.1f GFLOP/s%s%s%s\n", be->name, peak / 1e9, cpu ? " (measured: " : "",
                   cpu ? at_cpu_peak_isa() : "", cpu ? " FMA probe on all threads)" : "");
        }
        if (rc == AT_OK)
            rc = method ? bench_method(be, nets[k], method, (int)images, (int)iterations, cic_set ? &cic_prec : NULL,
                                       &perturb.o, json)
                        : bench_net(be, nets[k], batches, n_batches, passes, min_time, json, peak);
        at_backend_destroy(be);
        at_model_free(m);
        if (rc) {
            cli_error();
            return EXIT_BAD_INPUT;
        }
    }
    perturb_args_free(&perturb);
    return 0;
usage:
    cli_error();
    return EXIT_USAGE;
}
