/* The network executor: the one walk over the model for every backend
 * (host/exec/ops.h). It validates each call once, plans the call's buffers
 * in one arena of backend memory, builds the network inputs (gathered rows,
 * masks, or the masks fused into the first conv where the backend can),
 * runs forward, gated forward, partial forwards and activation patches,
 * keeps what a backward needs, and runs backward passes from the logits or
 * any layer under per-op rules. Backends only run ops.
 *
 * Buffers follow the layer list: identity modules (BN folded, dropout) and a
 * ReLU share their input's storage; a conv followed (through identity BN) by
 * its ReLU runs as one op whose epilogue applies bias, ReLU and the gates
 * (docs/methods.md, gated network), unless a capture or a patch wants the
 * output in between. A kept gated ReLU also keeps relu(z) before the gate.
 * A conv with no ReLU after it (ResNet's last conv of a block, and its
 * downsample) has its gates at its BN node, applied in the conv's epilogue
 * before the residual add (docs/models.md#resnet). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/state.h"

static void carve(char *base, size_t *cursor, size_t bytes, void **out) {
    const size_t off = *cursor;
    *cursor += (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    *out = base && bytes ? base + off : NULL;
}

/* Lays one call's buffers out at base (NULL: only sizes them). */
static size_t plan_arena(const exec_state *s, const call_shape *cs, char *base, arena_plan *p) {
    const at_model *m = s->m;
    memset(p, 0, sizeof *p);
    const size_t n = (size_t)cs->n, in = (size_t)at_exec_input_floats(m), layer = s->max_layer, f = sizeof(float);
    size_t cur = 0;
    carve(base, &cur, cs->gathered ? (size_t)cs->n_rows * in * f : 0, (void **)&p->rows);
    carve(base, &cur, cs->gathered ? n * sizeof(int) : 0, (void **)&p->index);
    carve(base, &cur, n * (size_t)cs->mask_hw * f, (void **)&p->masks);
    carve(base, &cur, cs->mask_hw ? 2 * n * f : 0, (void **)&p->lohi);
    carve(base, &cur, (size_t)cs->gate_rows * m->n_gates * f, (void **)&p->gates);
    carve(base, &cur, cs->patch_channels ? n * (size_t)cs->patch_channels * f : 0, (void **)&p->patch);
    carve(base, &cur, n * in * f, (void **)&p->input);
    carve(base, &cur, cs->keep ? at_exec_graph_kept_floats(m, &s->g, cs->n, cs->gated_keep, cs->keep_pre) * f : 0, (void **)&p->kept);
    carve(base, &cur, (size_t)s->n_slots * n * layer * f, (void **)&p->slots);
    carve(base, &cur, cs->keep ? n * m->n_gates * f : 0, (void **)&p->grad_gates);
    p->bytes = cur;
    return cur;
}

static size_t mb_up(size_t bytes) { return (bytes + (1u << 20) - 1) >> 20; }

/* The arena at least `bytes`: regrown (the old one freed first) within the
 * memory limit and what the backend can still allocate. */
static int ensure_arena(exec_state *s, size_t bytes, int n) {
    if (bytes <= s->arena_bytes) return AT_OK;
    const size_t avail = s->ops->available(s->ctx) + s->arena_bytes;
    if (bytes > avail)
        return at_fail(s->ops->name, "out of memory: need %zu MB for batch %d, %zu MB available (memory limit %zu MB); "
                       "lower the batch or raise the memory limit", mb_up(bytes), n, avail >> 20, s->mem_limit >> 20);
    if (s->ops->finish(s->ctx)) return AT_ERR;
    if (s->arena) s->ops->release(s->ctx, s->arena);
    s->arena = NULL;
    s->arena_bytes = 0;
    s->kept_valid = 0;
    if (!(s->arena = s->ops->alloc(s->ctx, bytes, "activations"))) return AT_ERR;
    s->arena_bytes = bytes;
    return AT_OK;
}

/* ---- validation --------------------------------------------------------- */

static int validate_forward(const at_model *m, const at_forward_args *a, int first, int last) {
    if (a->n < 1) return at_fail("forward", "batch size %d < 1", a->n);
    for (int i = first; a->start_output && i < last; i++) {
        const at_layer *l = &m->layers[i];
        if (l->input < first - 1 || (l->input2 >= 0 && l->input2 < first - 1))
            return at_fail("forward", "a pass from %s's output cannot run %s: it reads an earlier node's output",
                           m->layers[first - 1].name, l->name);
    }
    if (a->start_output) {
        if (a->start_layer < 0 || a->start_layer >= m->n_layers - 1)
            return at_fail("forward", "start layer %d out of range 0..%d", a->start_layer, m->n_layers - 2);
    } else {
        if (!a->input) return at_fail("forward", "no input");
        if (a->masks && (a->mask_h < 1 || a->mask_w < 1 || a->mask_h > m->in_h || a->mask_w > m->in_w))
            return at_fail("forward", "mask %dx%d must be between 1x1 and the input size %dx%d", a->mask_h, a->mask_w,
                           m->in_h, m->in_w);
        for (int b = 0; a->input_index && b < a->n; b++)
            if (a->input_index[b] < 0) return at_fail("forward", "input index %d of item %d < 0", a->input_index[b], b);
    }
    if (a->end_layer < 0 || a->end_layer > m->n_layers || (a->end_layer && a->end_layer <= first))
        return at_fail("forward", "end layer %d does not follow the start (layers %d..%d)", a->end_layer, first,
                       m->n_layers);
    for (int i = 0; i < a->n_capture; i++) {
        const int c = a->capture_layer ? a->capture_layer[i] : -1;
        if (c < first - 1 || c < 0 || c >= last)
            return at_fail("forward", "capture layer %d out of range %d..%d of this pass", c, first > 0 ? first - 1 : 0,
                           last - 1);
        if (!a->capture_out || !a->capture_out[i]) return at_fail("forward", "capture %d has no output buffer", i);
    }
    if (a->patch_mode != AT_PATCH_NONE) {
        if (a->patch_mode != AT_PATCH_REPLACE && a->patch_mode != AT_PATCH_SCALE_CHANNELS)
            return at_fail("forward", "unknown patch mode %d", (int)a->patch_mode);
        if (!a->patch) return at_fail("forward", "patch mode %d without patch values", (int)a->patch_mode);
        if (a->patch_layer < first || a->patch_layer >= last)
            return at_fail("forward", "patch layer %d out of range %d..%d of this pass", a->patch_layer, first, last - 1);
        if (a->keep_for_backward) return at_fail("forward", "activation patches are forward-only (no keep_for_backward)");
    }
    return AT_OK;
}

/* ---- forward ------------------------------------------------------------ */

/* The distinct input rows the items read, in order of first use, and each
 * item's slot among them: only those rows are uploaded (Score-CAM's 512
 * masks of one image upload one row). */
static int map_rows(exec_state *s, const at_forward_args *a, int *n_rows) {
    if (a->n > s->row_cap) {
        free(s->row_src), free(s->row_slot);
        s->row_src = malloc(sizeof(int) * a->n);
        s->row_slot = malloc(sizeof(int) * a->n);
        s->row_cap = s->row_src && s->row_slot ? a->n : 0;
        if (!s->row_cap) return at_fail("forward", "out of host memory");
    }
    int k = 0;
    for (int b = 0; b < a->n; b++) {
        const int row = a->input_index ? a->input_index[b] : b;
        int slot = b > 0 && s->row_src[s->row_slot[b - 1]] == row ? s->row_slot[b - 1] : -1; /* runs are common */
        for (int j = k - 1; slot < 0 && j >= 0; j--)
            if (s->row_src[j] == row) slot = j;
        if (slot < 0) s->row_src[slot = k++] = row;
        s->row_slot[b] = slot;
    }
    *n_rows = k;
    return AT_OK;
}

static int wants_capture(const at_forward_args *a, int layer) {
    for (int c = 0; c < a->n_capture; c++)
        if (a->capture_layer[c] == layer) return 1;
    return 0;
}

static int capture(exec_state *s, const at_forward_args *a, int layer, const float *data, int n) {
    for (int c = 0; c < a->n_capture; c++)
        if (a->capture_layer[c] == layer &&
            s->ops->download(s->ctx, a->capture_out[c], data, sizeof(float) * at_layer_out_size(&s->m->layers[layer]) * n))
            return AT_ERR;
    return AT_OK;
}

static int is_gated_bn(const at_layer *l) { return l->kind == AT_L_BATCHNORM && l->gate_offset >= 0; }

/* The ReLU conv layer i can fuse (across identity BN), or its gated BN where
 * no ReLU follows; -1 when a capture or a patch wants an output in between,
 * or the pass ends before it. */
static int fusable_relu(const exec_state *s, const at_forward_args *a, int i, int last) {
    const at_model *m = s->m;
    int j = i + 1;
    while (j < last && m->layers[j].kind == AT_L_BATCHNORM && !is_gated_bn(&m->layers[j]) && m->layers[j].input == j - 1)
        j++;
    if (j < last && is_gated_bn(&m->layers[j]) && m->layers[j].input == j - 1) {
        for (int k = i; k < j; k++)
            if (s->g.consumers[k] != 1 || wants_capture(a, k) || (a->patch_mode && a->patch_layer == k)) return -1;
        return j;
    }
    if (j >= last || m->layers[j].kind != AT_L_RELU || m->layers[j].input != j - 1) return -1;
    for (int k = i; k < j; k++) /* the chain conv .. ReLU has no other reader and nobody wants it */
        if (s->g.consumers[k] != 1 || wants_capture(a, k) || (a->patch_mode && a->patch_layer == k)) return -1;
    return s->g.alias[j] == j - 1 ? j : -1;
}

/* The residual add (and the ReLU after it) that conv layer i can take into
 * its epilogue in a forward-only pass: the add of graph.c's add_conv, whose
 * other operand becomes the conv's residual; *relu_out is that ReLU or -1.
 * Returns the add, or -1. The conv then writes the add's storage, which
 * shares nothing live while the conv runs; nothing in between may be wanted
 * by a capture, a patch, a gate or a kept activation. */
static int fusable_add(const exec_state *s, const at_forward_args *a, int i, int last, int *relu_out) {
    const at_model *m = s->m;
    *relu_out = -1;
    if (a->keep_for_backward || !s->ops->fuses_residual_add) return -1;
    int j = i + 1;
    while (j < last && m->layers[j].kind == AT_L_BATCHNORM) j++;
    if (j >= last || s->g.add_conv[j] != i) return -1;
    for (int k = i; k < j; k++)
        if (wants_capture(a, k) || (a->patch_mode && a->patch_layer == k) || (a->gates && is_gated_bn(&m->layers[k])))
            return -1;
    const int r = j + 1;
    if (r < last && m->layers[r].kind == AT_L_RELU && m->layers[r].input == j && s->g.alias[r] == j &&
        s->g.consumers[j] == 1 && !wants_capture(a, j) && !(a->patch_mode && a->patch_layer == j) &&
        !(a->gates && m->layers[r].gate_offset >= 0))
        *relu_out = r;
    return j;
}

/* This call's fused masking of the first conv, if any. */
typedef struct {
    const float *rows, *mask, *ms;
    const int *index;
} fused_masks;

static int run_conv(exec_state *s, int i, const float *x, float *y, int n, int relu_layer, const float *gates,
                    int gate_stride, float *keep, const fused_masks *fm, const float *residual) {
    at_conv_call c;
    memset(&c, 0, sizeof c);
    c.x = x, c.y = y, c.n = n, c.residual = residual;
    if (i == 0 && fm->mask) c.rows = fm->rows, c.row_index = fm->index, c.mask = fm->mask, c.ms = fm->ms;
    if (relu_layer >= 0) {
        const at_layer *r = &s->m->layers[relu_layer];
        c.relu = r->kind == AT_L_RELU;
        c.gates = gates && r->gate_offset >= 0 ? gates + r->gate_offset : NULL;
        c.gate_stride = gate_stride;
        c.keep = keep;
    }
    return s->ops->conv2d_forward(s->ctx, s->conv[i], &c);
}

/* Layer i (not a fused conv) on x into y; y == x for in-place layers. */
static int run_layer(exec_state *s, int i, const float *x, const float *x2, float *y, int n, const float *gates,
                     int gate_stride, float *keep_relu, const fused_masks *fm) {
    const at_layer *l = &s->m->layers[i];
    const at_ops *o = s->ops;
    switch (l->kind) {
    case AT_L_CONV: return run_conv(s, i, x, y, n, -1, NULL, 0, NULL, fm, NULL);
    case AT_L_ADD: return o->add(s->ctx, x, x2, at_layer_out_size(l) * n, y);
    case AT_L_RELU:
        if (y != x && o->copy(s->ctx, y, x, sizeof(float) * at_layer_out_size(l) * n)) return AT_ERR; /* not in place */
        return o->gated_relu_forward(s->ctx, y, n, l->out_c, (long)l->out_h * l->out_w,
                                     l->gate_offset >= 0 && gates ? gates + l->gate_offset : NULL, gate_stride,
                                     keep_relu);
    case AT_L_MAXPOOL: return o->maxpool2d_forward(s->ctx, x, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, l->pad, y);
    case AT_L_ADAPTIVE_AVGPOOL:
        return o->adaptive_avgpool_forward(s->ctx, x, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w, y);
    case AT_L_LINEAR: return o->linear_forward(s->ctx, s->lin[i], x, n, y);
    case AT_L_AVGPOOL:
        return o->avgpool2d_forward(s->ctx, x, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, l->pad, y);
    case AT_L_SOFTMAX: return o->softmax_forward(s->ctx, x, n, at_layer_out_size(l), y);
    case AT_L_BATCHNORM: /* folded; a gate where no ReLU follows */
        if (l->gate_offset < 0 || (!gates && !keep_relu)) return AT_OK;
        if (y != x && o->copy(s->ctx, y, x, sizeof(float) * at_layer_out_size(l) * n)) return AT_ERR;
        return o->gate_forward(s->ctx, y, n, l->out_c, (long)l->out_h * l->out_w, gates ? gates + l->gate_offset : NULL,
                               gate_stride, keep_relu);
    case AT_L_DROPOUT:
    case AT_L_FLATTEN: return AT_OK;
    }
    return at_fail("forward", "layer %s: unknown kind %d", l->name, (int)l->kind);
}

/* Uploads the call's inputs, masks and gates and builds the network input. */
static int stage_inputs(exec_state *s, const at_forward_args *a, const call_shape *cs, const arena_plan *p,
                        fused_masks *fm) {
    const at_model *m = s->m;
    const at_ops *o = s->ops;
    const size_t in = (size_t)at_exec_input_floats(m);
    memset(fm, 0, sizeof *fm);
    if (a->gates && o->upload(s->ctx, p->gates, a->gates, sizeof(float) * cs->gate_rows * m->n_gates)) return AT_ERR;
    if (a->patch_mode == AT_PATCH_SCALE_CHANNELS &&
        o->upload(s->ctx, p->patch, a->patch, sizeof(float) * cs->n * cs->patch_channels))
        return AT_ERR;
    if (a->start_output) return AT_OK;
    if (!cs->gathered) return o->upload(s->ctx, p->input, a->input, sizeof(float) * in * cs->n);
    for (int k = 0, run; k < cs->n_rows; k += run) { /* consecutive source rows go in one copy */
        for (run = 1; k + run < cs->n_rows && s->row_src[k + run] == s->row_src[k] + run; run++) {
        }
        if (o->upload(s->ctx, p->rows + k * in, a->input + (size_t)s->row_src[k] * in, sizeof(float) * in * run))
            return AT_ERR;
    }
    if (o->upload(s->ctx, p->index, s->row_slot, sizeof(int) * cs->n)) return AT_ERR;
    if (a->masks && o->upload(s->ctx, p->masks, a->masks, sizeof(float) * cs->mask_hw * cs->n)) return AT_ERR;
    at_inputs_call mi;
    memset(&mi, 0, sizeof mi);
    mi.rows = p->rows;
    mi.index = p->index;
    mi.masks = a->masks ? p->masks : NULL;
    mi.mh = a->mask_h, mi.mw = a->mask_w, mi.align_corners = a->mask_align_corners;
    mi.norm = a->mask_norm, mi.space = a->mask_space;
    mi.mean_over_std = s->mean_over_std;
    mi.lohi = p->lohi;
    mi.n = cs->n, mi.C = m->in_c, mi.H = m->in_h, mi.W = m->in_w;
    mi.out = p->input;
    if (a->masks && o->fuses_input_masks && m->layers[0].kind == AT_L_CONV) {
        mi.mask_only = 1; /* p->input gets the [n][H][W] masks, the first conv the rest */
        fm->rows = p->rows, fm->index = p->index, fm->mask = p->input;
        fm->ms = a->mask_space == AT_MASK_UNIT ? s->d_mean_over_std : NULL;
    }
    return o->make_inputs(s->ctx, &mi);
}

static int set_call_precision(exec_state *s, at_precision p) {
    if (p == s->prec) return AT_OK;
    if (s->ops->set_precision(s->ctx, p)) return AT_ERR;
    s->prec = p;
    return AT_OK;
}

static int apply_patch(exec_state *s, const at_forward_args *a, const arena_plan *p, int i, float *y, int n) {
    const at_layer *l = &s->m->layers[i];
    if (a->patch_mode == AT_PATCH_REPLACE)
        return s->ops->upload(s->ctx, y, a->patch, sizeof(float) * at_layer_out_size(l) * n);
    return s->ops->scale_channels(s->ctx, y, n, l->out_c, (long)l->out_h * l->out_w, p->patch);
}

int at_forward(at_backend *be, const at_forward_args *a) {
    exec_state *s = be->impl;
    const at_model *m = s->m;
    const at_ops *o = s->ops;
    const int first = a->start_output ? a->start_layer + 1 : 0;
    const int last = a->end_layer > 0 ? a->end_layer : m->n_layers;
    if (validate_forward(m, a, first, last)) return AT_ERR;
    s->kept_valid = 0;
    if (set_call_precision(s, a->precision ? *a->precision : s->precision)) return AT_ERR;
    const int n = a->n;
    call_shape cs;
    memset(&cs, 0, sizeof cs);
    cs.n = n;
    cs.gathered = !a->start_output && (a->masks || a->input_index);
    if (cs.gathered && map_rows(s, a, &cs.n_rows)) return AT_ERR;
    cs.mask_hw = !a->start_output && a->masks ? (long)a->mask_h * a->mask_w : 0;
    cs.gate_rows = a->gates ? (a->gates_per_item ? n : 1) : 0;
    cs.keep = a->keep_for_backward != 0;
    cs.gated_keep = cs.keep && a->gates;
    cs.keep_pre = cs.keep && a->keep_pre_activation;
    cs.patch_channels = a->patch_mode == AT_PATCH_SCALE_CHANNELS ? m->layers[a->patch_layer].out_c : 0;
    arena_plan p;
    if (ensure_arena(s, plan_arena(s, &cs, NULL, &p), n)) return AT_ERR;
    plan_arena(s, &cs, (char *)s->arena, &p);
    fused_masks fm;
    if (stage_inputs(s, a, &cs, &p, &fm)) return AT_ERR;
    const float *gates = a->gates ? p.gates : NULL;
    const int gate_stride = a->gates && a->gates_per_item ? m->n_gates : 0;

    /* where each node's output lives: kept for backward, or a slot of its own-storage node */
    float **where = s->out;
    if (cs.keep) {
        float *next = p.kept;
        for (int i = 0; i < m->n_layers; i++) {
            const at_layer *l = &m->layers[i];
            const int al = cs.keep_pre && l->kind == AT_L_RELU ? AT_OWN_STORAGE : s->g.alias[i];
            s->out[i] = al == AT_OWN_STORAGE ? next : al >= 0 ? s->out[al] : p.input;
            if (al == AT_OWN_STORAGE) next += (size_t)at_layer_out_size(l) * n;
            s->aux[i] = NULL;
            if (cs.gated_keep && l->gate_offset >= 0) {
                s->aux[i] = next;
                next += (size_t)at_layer_out_size(l) * n;
            }
        }
    } else {
        const size_t slot = (size_t)n * s->max_layer;
        for (int i = 0; i < m->n_layers; i++) {
            const int r = s->g.root[i];
            s->out[i] = r < 0 ? p.input : p.slots + slot * s->g.slot[r];
            s->aux[i] = NULL;
        }
    }
    if (a->start_output) {
        const int sl = a->start_layer;
        if (o->upload(s->ctx, where[sl], a->start_output, sizeof(float) * at_layer_out_size(&m->layers[sl]) * n) ||
            capture(s, a, sl, where[sl], n))
            return AT_ERR;
    }
    int fused_until = -1;
    for (int i = first; i < last; i++) {
        const at_layer *l = &m->layers[i];
        float *y = where[i];
        const float *x = l->input >= 0 ? where[l->input] : p.input;
        const float *x2 = l->input2 >= 0 ? where[l->input2] : NULL;
        if (i > fused_until) {
            int ar = -1;
            const int add = l->kind == AT_L_CONV ? fusable_add(s, a, i, last, &ar) : -1;
            const int r = l->kind == AT_L_CONV && !cs.keep_pre && add < 0 ? fusable_relu(s, a, i, last) : -1;
            if (add >= 0) { /* conv (+ identity BNs) + add (+ ReLU) into the add's storage */
                const at_layer *al = &m->layers[add];
                const float *res = where[al->input == add - 1 ? al->input2 : al->input];
                if (run_conv(s, i, x, where[add], n, ar, NULL, 0, NULL, &fm, res)) return AT_ERR;
                fused_until = ar >= 0 ? ar : add;
            } else if (r >= 0) {
                if (run_conv(s, i, x, y, n, r, gates, gate_stride, s->aux[r], &fm, NULL)) return AT_ERR;
                fused_until = r; /* layers i+1..r alias y and are done */
            } else if (run_layer(s, i, x, x2, y, n, gates, gate_stride, s->aux[i], &fm)) {
                return AT_ERR;
            }
        }
        if (a->patch_mode && a->patch_layer == i && apply_patch(s, a, &p, i, y, n)) return AT_ERR;
        if (capture(s, a, i, y, n)) return AT_ERR;
    }
    const float *x = where[last - 1];
    if (a->logits && last == m->n_layers && o->download(s->ctx, a->logits, x, sizeof(float) * n * m->n_classes))
        return AT_ERR;
    if (o->finish(s->ctx)) return AT_ERR;
    if (cs.keep) {
        s->kp = p;
        s->kept_gates = gates;
        s->kept_gate_stride = gate_stride;
        s->kept_n = n;
        s->kept_first = first;
        s->kept_last = last;
        s->kept_valid = 1;
    }
    return AT_OK;
}

/* ---- backward ----------------------------------------------------------- */

int at_backward(at_backend *be, const at_backward_args *a) {
    exec_state *s = be->impl;
    const at_model *m = s->m;
    const at_ops *o = s->ops;
    if (!s->kept_valid) return at_fail("backward", "no forward pass was kept for backward");
    const int n = s->kept_n;
    int top;
    if (a->dfrom) {
        if (a->from_layer < s->kept_first || a->from_layer >= s->kept_last)
            return at_fail("backward", "start layer %d is outside the kept forward (layers %d..%d)", a->from_layer,
                           s->kept_first, s->kept_last - 1);
        top = a->from_layer;
    } else {
        if (!a->dlogits) return at_fail("backward", "no dlogits");
        if (s->kept_last != m->n_layers) return at_fail("backward", "the kept forward stopped before the logits");
        top = m->n_layers - 1;
    }
    if (a->grad_layer >= m->n_layers) return at_fail("backward", "grad layer %d out of range", a->grad_layer);
    if (a->grad_layer >= 0 && (a->grad_layer > top || a->grad_layer < s->kept_first))
        return at_fail("backward", "grad layer %d is not between the kept forward's start %d and the pass's start %d",
                       a->grad_layer, s->kept_first, top);
    if (a->grad_layer >= 0 && !a->grad_layer_out)
        return at_fail("backward", "grad layer %d has no output buffer", a->grad_layer);
    if (a->grad_input && s->kept_first > 0) return at_fail("backward", "the kept forward started after the input");
    if (a->rules.relu < AT_RELU_GRADIENT || a->rules.relu > AT_RELU_DECONVNET)
        return at_fail("backward", "unknown ReLU rule %d", (int)a->rules.relu);
    const arena_plan *p = &s->kp;
    s->rule_gamma = a->rules.gamma;
    /* lowest layer that must be processed (its input gradient or gate gradient is needed) */
    int lowest = top + 1;
    if (a->grad_layer >= 0) lowest = a->grad_layer + 1;
    if (a->grad_gates && m->n_convs > 0) {
        for (int c = 0; c < m->n_convs; c++)
            if (m->gate_layer[c] >= s->kept_first && m->gate_layer[c] <= top && m->gate_layer[c] < lowest) {
                lowest = m->gate_layer[c];
                break;
            }
    }
    if (a->grad_input) lowest = 0;
    if (lowest < s->kept_first) lowest = s->kept_first;
    if (a->grad_gates && o->zero(s->ctx, p->grad_gates, sizeof(float) * m->n_gates * n)) return AT_ERR;
    /* gradient buffers: held[j + 1] is node j's (held[0] the input's), summed
     * over its readers before node j runs; the same take/release order as
     * host/exec/graph.c counts */
    const size_t slot = (size_t)n * s->max_layer;
    grad_slots gsl;
    at_grad_slots_init(&gsl, s->n_slots);
    int *held = s->held;
    for (int i = 0; i <= m->n_layers; i++) held[i] = -1;
#define GBUF(k) (p->slots + slot * (size_t)(k))
    held[top + 1] = at_grad_slots_take(&gsl);
    if (a->dfrom ? o->upload(s->ctx, GBUF(held[top + 1]), a->dfrom, sizeof(float) * at_layer_out_size(&m->layers[top]) * n)
                 : o->upload(s->ctx, GBUF(held[top + 1]), a->dlogits, sizeof(float) * n * m->n_classes))
        return AT_ERR;
    for (int i = top; i >= 0; i--) {
        const at_layer *l = &m->layers[i];
        const long out_n = at_layer_out_size(l) * n;
        int gi = held[i + 1];
        if (i == a->grad_layer) {
            if (gi >= 0 ? o->download(s->ctx, a->grad_layer_out, GBUF(gi), sizeof(float) * out_n) : AT_OK) return AT_ERR;
            if (gi < 0) memset(a->grad_layer_out, 0, sizeof(float) * out_n); /* no gradient reaches it */
        }
        if (i < lowest) break;
        if (gi < 0) continue;
        held[i + 1] = -1;
        float *g = GBUF(gi);
        const float *x = l->input >= 0 ? s->out[l->input] : p->input;
        int rc = AT_OK, t = -1;
        switch (l->kind) {
        case AT_L_RELU: {
            const int gated = l->gate_offset >= 0 && s->kept_gates;
            const float *act = gated ? s->aux[i] : s->out[i];
            rc = o->relu_backward(s->ctx, a->rules.relu, g, act, n, l->out_c, (long)l->out_h * l->out_w,
                                  gated ? s->kept_gates + l->gate_offset : NULL, s->kept_gate_stride, g,
                                  a->grad_gates && l->gate_offset >= 0 ? p->grad_gates + l->gate_offset : NULL,
                                  m->n_gates); /* in place */
            break;
        }
        case AT_L_ADD: { /* both operands get the gradient: the second a copy or a sum */
            int *h2 = &held[l->input2 + 1];
            if (a->rules.add) { /* the add's rule: the first result in place of the signal, the second apart */
                const int fresh = *h2 < 0;
                if (fresh && (*h2 = at_grad_slots_take(&gsl)) < 0)
                    return at_fail("backward", "no gradient buffer left at %s", l->name);
                if (at_exec_rule_scratch_ready(s, n)) return AT_ERR;
                at_rule_call call = {s, i, n, x, g, g, s->out[l->input2],
                                     fresh ? GBUF(*h2) : s->rule_scratch + (size_t)AT_RULE_SCRATCH * n * s->max_layer};
                at_clear_error();
                rc = a->rules.add(&call, a->rules.user);
                if (rc && !at_last_error()[0]) rc = at_fail("backward", "the node rule at %s failed", l->name);
                if (!rc && !fresh) rc = o->add(s->ctx, GBUF(*h2), call.result2, out_n, GBUF(*h2));
                break;
            }
            if (*h2 < 0) {
                *h2 = at_grad_slots_take(&gsl);
                rc = *h2 < 0 ? at_fail("backward", "no gradient buffer left at %s", l->name)
                             : o->copy(s->ctx, GBUF(*h2), g, sizeof(float) * out_n);
            } else {
                rc = o->add(s->ctx, GBUF(*h2), g, out_n, GBUF(*h2));
            }
            break;
        }
        case AT_L_BATCHNORM:
            if (l->gate_offset >= 0) { /* a gate before a residual add: dz = g*dy, dgate = sum dy*z */
                const int gated = s->kept_gates != NULL;
                rc = o->gate_backward(s->ctx, g, gated ? s->aux[i] : s->out[i], n, l->out_c, (long)l->out_h * l->out_w,
                                      gated ? s->kept_gates + l->gate_offset : NULL, s->kept_gate_stride, g,
                                      a->grad_gates ? p->grad_gates + l->gate_offset : NULL, m->n_gates);
            }
            break;
        case AT_L_DROPOUT:
        case AT_L_FLATTEN: break;
        default: /* an op writes the input's gradient into a new buffer */
            if ((t = at_grad_slots_take(&gsl)) < 0) return at_fail("backward", "no gradient buffer left at %s", l->name);
            const int pool = l->kind == AT_L_MAXPOOL || l->kind == AT_L_AVGPOOL || l->kind == AT_L_ADAPTIVE_AVGPOOL;
            const at_node_rule rule = l->kind == AT_L_CONV     ? a->rules.conv
                                      : l->kind == AT_L_LINEAR ? a->rules.linear
                                      : pool                   ? a->rules.pool
                                                               : NULL;
            if (rule) { /* the node's rule instead of its gradient */
                at_rule_call call = {s, i, n, x, g, GBUF(t), NULL, NULL};
                at_clear_error();
                rc = at_exec_rule_scratch_ready(s, n) ? AT_ERR : rule(&call, a->rules.user);
                if (rc && !at_last_error()[0]) rc = at_fail("backward", "the node rule at %s failed", l->name);
            } else switch (l->kind) {
            case AT_L_CONV: rc = o->conv2d_backward_data(s->ctx, s->conv[i], g, n, GBUF(t)); break;
            case AT_L_MAXPOOL:
                rc = o->maxpool2d_backward(s->ctx, x, g, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, l->pad,
                                           GBUF(t));
                break;
            case AT_L_ADAPTIVE_AVGPOOL:
                rc = o->adaptive_avgpool_backward(s->ctx, g, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w, GBUF(t));
                break;
            case AT_L_LINEAR: rc = o->linear_backward_data(s->ctx, s->lin[i], g, n, GBUF(t)); break;
            case AT_L_AVGPOOL:
                rc = o->avgpool2d_backward(s->ctx, g, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, l->pad, GBUF(t));
                break;
            case AT_L_SOFTMAX: rc = o->softmax_backward(s->ctx, s->out[i], g, n, at_layer_out_size(l), GBUF(t)); break;
            default: rc = at_fail("backward", "layer %s: unknown kind %d", l->name, (int)l->kind);
            }
            at_grad_slots_release(&gsl, gi);
            gi = t;
        }
        if (rc) return AT_ERR;
        /* hand the input's gradient on: it becomes the input's buffer, or is summed into it */
        int *h = &held[l->input + 1];
        const long in_n = (long)l->in_c * l->in_h * l->in_w * n;
        if (*h < 0) {
            *h = gi;
        } else {
            if (o->add(s->ctx, GBUF(*h), GBUF(gi), in_n, GBUF(*h))) return AT_ERR;
            at_grad_slots_release(&gsl, gi);
        }
    }
    if (a->grad_input) {
        if (held[0] >= 0 ? o->download(s->ctx, a->grad_input, GBUF(held[0]), sizeof(float) * n * at_exec_input_floats(m)) : AT_OK)
            return AT_ERR;
        if (held[0] < 0) memset(a->grad_input, 0, sizeof(float) * n * at_exec_input_floats(m));
    }
#undef GBUF
    if (a->grad_gates && o->download(s->ctx, a->grad_gates, p->grad_gates, sizeof(float) * m->n_gates * n))
        return AT_ERR;
    return o->finish(s->ctx);
}

/* ---- creation ------------------------------------------------------------ */

/* Per item, the arena of a call with everything in it (a mask as large as
 * the input, per-item gates); a batch of n needs at most n times this. */
static size_t bytes_per_item(const exec_state *s, int with_backward) {
    /* keep_pre_activation passes need more (every ReLU output apart): not planned here */
    call_shape cs = {1, 1, (long)s->m->in_h * s->m->in_w, 1, with_backward, with_backward, 1, 0, 0};
    arena_plan p;
    return plan_arena(s, &cs, NULL, &p);
}

size_t at_memory_in_use(at_backend *be) {
    exec_state *s = be->impl;
    return s->ops->in_use(s->ctx);
}

int at_max_batch(at_backend *be, int with_backward) {
    exec_state *s = be->impl;
    size_t avail = s->ops->available(s->ctx) + s->arena_bytes;
    if (avail > s->mem_limit) avail = s->mem_limit;
    size_t n = avail / bytes_per_item(s, with_backward);
    if (n < 1) n = 1; /* the call itself then reports what it needs */
    if (n > MAX_BATCH) n = MAX_BATCH;
    if (s->ops->batch_cap > 0 && n > (size_t)s->ops->batch_cap) n = (size_t)s->ops->batch_cap;
    return (int)n;
}

void at_exec_destroy(at_backend *be) {
    if (!be) return;
    exec_state *s = be->impl;
    if (s) {
        if (s->ctx) s->ops->destroy(s->ctx); /* frees every buffer it handed out; records no error */
        at_exec_rules_free(s);             /* the host parameters the backend's were prepared from */
        at_exec_extra_free(s);
        free(s->conv), free(s->lin), free(s->out), free(s->aux), free(s->row_src), free(s->row_slot), free(s->held);
        at_exec_graph_free(&s->g);
        free(s);
    }
    free(be);
}

int at_exec_create(const at_model *m, const at_ops *ops, void *ctx, const at_backend_options *opt,
                   double peak_flops, size_t mem_limit, at_backend **out) {
    *out = NULL;
    at_backend *be = calloc(1, sizeof *be);
    exec_state *s = calloc(1, sizeof *s);
    if (!be || !s) {
        free(be), free(s);
        ops->destroy(ctx);
        return at_fail(ops->name, "out of host memory");
    }
    be->impl = s;
    s->m = m, s->ops = ops, s->ctx = ctx, s->mem_limit = mem_limit;
    s->precision = s->prec = opt ? opt->precision : AT_PRECISION_FP32;
    if (m->in_c < 1 || m->in_c > MAX_IN_C) {
        at_exec_destroy(be);
        return at_fail(ops->name, "%d input channels (the executor takes 1..%d)", m->in_c, MAX_IN_C);
    }
    if (at_exec_graph_build(m, &s->g)) {
        at_exec_destroy(be);
        return AT_ERR;
    }
    s->n_slots = s->g.n_fslots > s->g.n_bslots ? s->g.n_fslots : s->g.n_bslots;
    s->max_layer = (size_t)at_exec_input_floats(m);
    for (int i = 0; i < m->n_layers; i++)
        if ((size_t)at_layer_out_size(&m->layers[i]) > s->max_layer) s->max_layer = (size_t)at_layer_out_size(&m->layers[i]);
    if (s->n_slots < 2) s->n_slots = 2;
    if (!(s->conv = calloc(m->n_layers, sizeof *s->conv)) || !(s->lin = calloc(m->n_layers, sizeof *s->lin)) ||
        !(s->out = calloc(m->n_layers, sizeof *s->out)) || !(s->aux = calloc(m->n_layers, sizeof *s->aux)) ||
        !(s->held = calloc(m->n_layers + 1, sizeof *s->held))) {
        at_exec_destroy(be);
        return at_fail(ops->name, "out of host memory");
    }
    if (ops->set_precision(ctx, s->precision)) {
        at_exec_destroy(be);
        return AT_ERR;
    }
    for (int c = 0; c < m->in_c; c++) s->mean_over_std[c] = c < 3 ? m->pre.mean[c] / m->pre.std[c] : 0.0f;
    int rc = AT_OK;
    if (ops->fuses_input_masks) {
        s->d_mean_over_std = ops->alloc(ctx, sizeof(float) * m->in_c, "input normalisation");
        rc = s->d_mean_over_std ? ops->upload(ctx, s->d_mean_over_std, s->mean_over_std, sizeof(float) * m->in_c) : AT_ERR;
    }
    for (int i = 0; i < m->n_layers && rc == AT_OK; i++) {
        const at_layer *l = &m->layers[i];
        if (l->kind == AT_L_CONV)
            rc = ops->prepare_conv(ctx, l->weight, l->bias, l->out_c, l->in_c, l->kernel, l->stride, l->pad, l->in_h,
                                   l->in_w, &s->conv[i]);
        else if (l->kind == AT_L_LINEAR)
            rc = ops->prepare_linear(ctx, l->weight, l->bias, l->out_c, l->in_c, &s->lin[i]);
    }
    if (rc == AT_OK) rc = ops->finish(ctx);
    if (rc) {
        at_exec_destroy(be);
        return AT_ERR;
    }
    be->name = ops->name;
    be->model = m;
    be->precision = s->precision;
    be->peak_flops = peak_flops;
    *out = be;
    return AT_OK;
}
