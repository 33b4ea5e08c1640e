/* tools/gpu_check.sh, the one prepared check for a GPU machine, cannot run
 * its real steps here; what can be checked without a GPU is: its plan fits
 * one 5-minute device call, every script it calls parses and starts, and a
 * run that cannot do its work still writes its result files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static char out[16384];

TEST(gpu_check_dry_run_plans_every_step_within_one_device_call) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && bash tools/gpu_check.sh --dry-run", test_root());
    int rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "gpu_check: dry run ok"), "exit %d:\n%s", rc, out);
    static const char *steps[] = {"cuda_tests", "memcheck", "racecheck", "bench_fp32", "bench_tf32",
                                  "peer", "methods", "agreement"};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) CHECKF(strstr(out, steps[i]), "no step %s", steps[i]);
    const char *t = strstr(out, "total budget ");
    int total = 0;
    CHECKF(t && sscanf(t, "total budget %ds", &total) == 1 && total > 0 && total <= 300, "total budget %d s", total);
}

TEST(gpu_check_without_its_build_still_writes_both_result_files) {
    const char *dir = test_tmpdir();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && GPU_BUILD=%s/none GPU_CHECK_BUILD=0 GPU_CHECK_LIMIT=20 bash tools/gpu_check.sh %s/res", test_root(),
             dir, dir);
    int rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc != 0, "a check without binaries succeeded:\n%s", out);
    char path[600];
    snprintf(path, sizeof path, "%s/res/gpu_check.json", dir);
    size_t n = 0;
    unsigned char *json = test_read_bytes(path, &n);
    CHECKF(json && n > 10 && !memcmp(json, "{\"date\":", 8) && strstr((char *)json, "\"step\":\"build\""), "%s: %.*s",
           path, (int)n, json ? (char *)json : "");
    free(json);
    snprintf(path, sizeof path, "%s/res/gpu_check.md", dir);
    unsigned char *md = test_read_bytes(path, &n);
    CHECKF(md && strstr((char *)md, "| build | failed"), "%s missing or without the build row", path);
    free(md);
}
