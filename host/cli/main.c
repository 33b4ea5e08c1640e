/* attrib: forward inference and attribution maps for VGG-family networks. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/affinity.h"
#include "version.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *what;
} commands[] = {
    {"predict", cmd_predict, "top-k classes of images"},
    {"explain", cmd_explain,
     "attribution maps: Score-CAM, Grad-CAM, Grad-CAM++, saliency, contrastive\n"
     "            gradient, guided backprop, deconvnet, guided Grad-CAM, input x gradient,\n"
     "            integrated gradients, SmoothGrad; routing paths: CDRP, Score-CDRP,\n"
     "            path Score-CAM, pathway gradient"},
    {"eval", cmd_eval, "metrics of the maps: confidence, AD/IC, pointing games, deletion"},
    {"info", cmd_info, "describe a weights file"},
    {"bench", cmd_bench, "time forward / gated / backward passes"},
    {"reproduce", cmd_reproduce, "the Score-CDRP paper's tables and figures from a config"},
};

static void usage(FILE *f) {
    fprintf(f, "attrib %s: explain CNN decisions (Score-CAM, Grad-CAM, CDRP paths) at GPU speed\n\n"
               "usage: attrib COMMAND [options]   (attrib COMMAND --help for details)\n\ncommands:\n",
            ATTRIB_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].what);
    fprintf(f, "\nErrors print one line 'attrib: FILE: problem'; exit 1 = bad input, 2 = bad usage.\n");
}

/* libgomp busy-waits at every barrier by default; on a machine whose cores
 * are shared (CI runners, a desktop) that turns a 7 ms forward into 700 ms.
 * Passive waiting costs little on an idle machine, so it is our default: the
 * policy is read when libgomp loads, hence the one-time re-exec. Setting
 * OMP_WAIT_POLICY yourself (e.g. active for benchmarks) skips this. */
static void prefer_passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    /* with OMP_PROC_BIND set, libgomp has bound this thread to its first
     * place, and exec would keep that one place (core/affinity.h) */
    at_widen_cpus_for_child(NULL);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
}

int main(int argc, char **argv) {
    /* Large buffers (maps, noise, per-batch inputs) from the heap and kept
     * there, not mapped and unmapped per call: each fresh mapping is zeroed
     * page by page on first touch (6 % of a short SmoothGrad run). */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    prefer_passive_openmp(argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("attrib %s\n", ATTRIB_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "attrib: %s: unknown command (see attrib --help)\n", argv[1]);
    return EXIT_USAGE;
}
