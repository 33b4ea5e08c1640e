#include "metrics/gate_stats.h"

int gate_layer_stats(const at_model *m, const float *g, double *mn, double *mean, double *below) {
    int L = m->n_convs < GATE_STATS_MAX_LAYERS ? m->n_convs : GATE_STATS_MAX_LAYERS;
    for (int k = 0; k < L; k++) {
        int lo = m->layers[m->gate_layer[k]].gate_offset;
        int hi = k + 1 < m->n_convs ? m->layers[m->gate_layer[k + 1]].gate_offset : m->n_gates;
        double s = 0, lowest = g[lo];
        long n_below = 0;
        for (int i = lo; i < hi; i++) {
            s += g[i];
            lowest = g[i] < lowest ? g[i] : lowest;
            n_below += g[i] < 0.5f;
        }
        mn[k] = lowest, mean[k] = s / (hi - lo), below[k] = (double)n_below / (hi - lo);
    }
    return L;
}

void gate_summary_add(gate_summary *s, const at_model *m, const float *g) {
    double mn[GATE_STATS_MAX_LAYERS], mean[GATE_STATS_MAX_LAYERS], below[GATE_STATS_MAX_LAYERS];
    int L = gate_layer_stats(m, g, mn, mean, below);
    for (int k = 0; k < L; k++) {
        s->min[k] = s->paths == 0 || mn[k] < s->min[k] ? mn[k] : s->min[k];
        s->mean[k] += mean[k], s->below[k] += below[k];
    }
    s->paths++;
}
