/* Storage planning over a model's graph (host/exec/graph.h).
 *
 * A node shares its input's storage when it cannot change it (BN folded,
 * dropout, flatten: identities) or when it changes it in place and is that
 * input's only reader (a ReLU after its conv). Every other node owns its
 * output. A forward-only pass gives each owned output a slot from the
 * moment it is computed to its last reader, reusing freed slots: a chain
 * needs two (ping-pong), a residual block three. A backward pass holds one
 * gradient buffer per node whose gradient is still being summed; the count
 * comes from a dry run of the executor's walk. */
#include "exec/graph.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define MAX_SLOTS 64

void at_grad_slots_init(grad_slots *gs, int n_slots) {
    gs->n_slots = n_slots;
    gs->in_use = gs->peak = 0;
    gs->free_mask = n_slots >= 64 ? ~0ull : (1ull << n_slots) - 1;
}

int at_grad_slots_take(grad_slots *gs) {
    if (!gs->free_mask) return -1;
    const int s = __builtin_ctzll(gs->free_mask);
    gs->free_mask &= ~(1ull << s);
    if (++gs->in_use > gs->peak) gs->peak = gs->in_use;
    return s;
}

void at_grad_slots_release(grad_slots *gs, int slot) {
    if (slot < 0) return;
    gs->free_mask |= 1ull << slot;
    gs->in_use--;
}

static int is_identity(at_layer_kind k) { return k == AT_L_BATCHNORM || k == AT_L_DROPOUT || k == AT_L_FLATTEN; }

/* A dry run of the backward walk of host/exec/exec.c from the last node to
 * the input: the most gradient buffers held at once. */
static int count_backward_slots(const at_model *m) {
    grad_slots gs;
    at_grad_slots_init(&gs, MAX_SLOTS);
    int *held = malloc(sizeof(int) * (m->n_layers + 1)); /* held[j + 1]: node j's gradient slot; [0] the input's */
    if (!held) return -1;
    for (int i = 0; i <= m->n_layers; i++) held[i] = -1;
    held[m->n_layers] = at_grad_slots_take(&gs);
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const at_layer *l = &m->layers[i];
        int g = held[i + 1];
        if (g < 0) continue;
        held[i + 1] = -1;
        if (l->kind == AT_L_ADD) { /* the second operand gets a copy (or a sum), the first the buffer */
            if (held[l->input2 + 1] < 0) held[l->input2 + 1] = at_grad_slots_take(&gs);
        } else if (!is_identity(l->kind) && l->kind != AT_L_RELU) { /* an op writes the input's gradient anew */
            const int t = at_grad_slots_take(&gs);
            at_grad_slots_release(&gs, g);
            g = t;
        }
        if (held[l->input + 1] < 0) held[l->input + 1] = g;
        else at_grad_slots_release(&gs, g); /* summed into the held one */
    }
    free(held);
    return gs.peak;
}

int at_exec_graph_build(const at_model *m, exec_graph *g) {
    memset(g, 0, sizeof *g);
    const int n = m->n_layers;
    g->consumers = calloc(n, sizeof(int));
    g->alias = malloc(sizeof(int) * n);
    g->root = malloc(sizeof(int) * n);
    g->slot = malloc(sizeof(int) * n);
    g->add_conv = malloc(sizeof(int) * n);
    int *last_use = malloc(sizeof(int) * n), *slot_of_slot = malloc(sizeof(int) * MAX_SLOTS);
    if (!g->consumers || !g->alias || !g->root || !g->slot || !g->add_conv || !last_use || !slot_of_slot) {
        free(last_use), free(slot_of_slot);
        at_exec_graph_free(g);
        return at_fail("executor", "out of host memory");
    }
    int rc = AT_OK;
    for (int i = 0; i < n && rc == AT_OK; i++) {
        const at_layer *l = &m->layers[i];
        if (l->input < -1 || l->input >= i || (l->kind == AT_L_ADD) != (l->input2 >= 0) ||
            l->input2 >= i)
            rc = at_fail(l->name, "reads node %d%s: a node reads earlier nodes only, and only an add reads two", l->input,
                         l->input2 >= 0 ? " and another" : "");
        else if (l->kind == AT_L_ADD &&
                 (l->input < 0 || at_layer_out_size(&m->layers[l->input]) != at_layer_out_size(l) ||
                  at_layer_out_size(&m->layers[l->input2]) != at_layer_out_size(l)))
            rc = at_fail(l->name, "adds operands whose shapes differ from its own");
        if (rc) break;
        if (l->input >= 0) g->consumers[l->input]++;
        if (l->input2 >= 0) g->consumers[l->input2]++;
    }
    for (int i = 0; i < n && rc == AT_OK; i++) {
        const at_layer *l = &m->layers[i];
        const int in_place = l->kind == AT_L_RELU && l->input >= 0 && g->consumers[l->input] == 1;
        g->alias[i] = is_identity(l->kind) || in_place ? l->input : AT_OWN_STORAGE;
        g->root[i] = g->alias[i] == AT_OWN_STORAGE ? i : g->alias[i] < 0 ? -1 : g->root[g->alias[i]];
    }
    for (int j = 0; j < n && rc == AT_OK; j++) {
        const at_layer *l = &m->layers[j];
        g->add_conv[j] = -1;
        if (l->kind != AT_L_ADD || (l->input == j - 1) == (l->input2 == j - 1)) continue;
        int k = j - 1;
        while (k > 0 && m->layers[k].kind == AT_L_BATCHNORM && m->layers[k].input == k - 1 && g->consumers[k] == 1) k--;
        if (m->layers[k].kind == AT_L_CONV && g->consumers[k] == 1) g->add_conv[j] = k;
    }
    /* forward-only slots: an owned output lives until the last reader of any node stored in it */
    for (int i = 0; i < n; i++) last_use[i] = i == n - 1 ? n : i; /* the logits are read at the end */
    for (int i = 0; i < n && rc == AT_OK; i++) {
        const at_layer *l = &m->layers[i];
        const int ins[2] = {l->input, l->input2};
        for (int k = 0; k < 2; k++)
            if (ins[k] >= 0 && g->root[ins[k]] >= 0 && last_use[g->root[ins[k]]] < i) last_use[g->root[ins[k]]] = i;
        if (g->root[i] >= 0 && last_use[g->root[i]] < i) last_use[g->root[i]] = i;
    }
    for (int s = 0; s < MAX_SLOTS; s++) slot_of_slot[s] = -1; /* the node holding each slot */
    for (int i = 0; i < n && rc == AT_OK; i++) {
        g->slot[i] = -1;
        if (g->alias[i] != AT_OWN_STORAGE) continue;
        const int from = g->add_conv[i] >= 0 ? g->add_conv[i] : i; /* a fusable add's slot is written from its conv on */
        int s = 0;
        while (s < MAX_SLOTS && slot_of_slot[s] >= 0 && last_use[slot_of_slot[s]] >= from) s++;
        if (s == MAX_SLOTS) {
            rc = at_fail(m->layers[i].name, "more than %d outputs live at once", MAX_SLOTS);
            break;
        }
        slot_of_slot[s] = i;
        g->slot[i] = s;
        if (s + 1 > g->n_fslots) g->n_fslots = s + 1;
    }
    if (rc == AT_OK && (g->n_bslots = count_backward_slots(m)) < 0) rc = at_fail("executor", "out of host memory");
    free(last_use), free(slot_of_slot);
    if (rc) at_exec_graph_free(g);
    return rc;
}

void at_exec_graph_free(exec_graph *g) {
    free(g->consumers), free(g->alias), free(g->root), free(g->slot), free(g->add_conv);
    memset(g, 0, sizeof *g);
}

size_t at_exec_graph_kept_floats(const at_model *m, const exec_graph *g, int n, int gated, int relus_own) {
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const at_layer *l = &m->layers[i];
        if (g->alias[i] == AT_OWN_STORAGE || (relus_own && l->kind == AT_L_RELU)) total += (size_t)at_layer_out_size(l) * n;
        if (gated && l->gate_offset >= 0) total += (size_t)at_layer_out_size(l) * n;
    }
    return total;
}
