/* What the executor knows about a model's graph before any call
 * (host/exec/graph.c): who reads each node, which nodes share storage, the
 * buffer slots a forward-only pass cycles through, and how many gradient
 * buffers a backward pass holds at once. Private to host/exec. */
#ifndef ATTRIB_EXEC_GRAPH_H
#define ATTRIB_EXEC_GRAPH_H

#include <stddef.h>

#include "model/model.h"

#define AT_OWN_STORAGE (-2)

typedef struct {
    int *consumers;  /* [n] nodes that read each node's output (input or input2) */
    int *alias;      /* [n] the node whose storage this one shares, -1 the network input, AT_OWN_STORAGE */
    int *root;       /* [n] the node with its own storage that holds this output, -1 the network input */
    int *slot;       /* [n] forward-only passes: the buffer slot of each own-storage node, else -1 */
    int *add_conv;   /* [n] for an add whose operand just before it is a conv's output (across identity
                      * BNs, read by nothing else): that conv, which may write the add's output itself
                      * (its slot is free of everything live when the conv runs); else -1 */
    int n_fslots;    /* slots a forward-only pass needs at once */
    int n_bslots;    /* gradient buffers a backward from the logits to the input holds at once */
} exec_graph;

/* Checks the graph (each node reads earlier ones; add's operands match its
 * shape) and plans its storage; AT_ERR naming the node otherwise. */
int at_exec_graph_build(const at_model *m, exec_graph *g);
void at_exec_graph_free(exec_graph *g);
/* Floats a kept forward of n items stores (own-storage outputs, relu(z) of
 * the gated ReLUs when gated, every ReLU's output apart when relus_own). */
size_t at_exec_graph_kept_floats(const at_model *m, const exec_graph *g, int n, int gated, int relus_own);

/* The gradient buffers of a backward pass: slots taken and released in the
 * order the executor's walk does (the same code counts them at build time). */
typedef struct {
    int n_slots, in_use, peak;
    unsigned long long free_mask; /* bit s set: slot s is free */
} grad_slots;
void at_grad_slots_init(grad_slots *gs, int n_slots);
int at_grad_slots_take(grad_slots *gs);          /* -1 when none is free */
void at_grad_slots_release(grad_slots *gs, int slot);

#endif
