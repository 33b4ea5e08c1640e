/* Explaining a hidden unit instead of a class logit (docs/methods.md#explaining-a-unit):
 * the unit's spec, its value, and where a backward pass of the explained
 * quantity starts. Every method that backpropagates a signal from the top
 * takes its start from at_explain_start, so a unit reaches all of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"

static int parse_int(const char *s, const char *what, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end) return at_fail("unit", "%s '%s' is not an integer", what, s);
    *out = v;
    return AT_OK;
}

int at_unit_check(const at_model *m, const at_unit *u) {
    if (u->layer < 0 || u->layer >= m->n_layers) return at_fail("unit", "layer index %d out of range", u->layer);
    const at_layer *l = &m->layers[u->layer];
    if (u->channel < 0 || u->channel >= l->out_c)
        return at_fail("unit", "channel %d out of range 0..%d of %s", u->channel, l->out_c - 1, l->name);
    if ((u->x < 0) != (u->y < 0)) return at_fail("unit", "give both x and y, or neither (the channel's sum)");
    if (u->x >= 0 && (u->x >= l->out_w || u->y >= l->out_h))
        return at_fail("unit", "position x %d, y %d outside %s's %dx%d map (x 0..%d, y 0..%d)", u->x, u->y, l->name,
                       l->out_w, l->out_h, l->out_w - 1, l->out_h - 1);
    return AT_OK;
}

int at_unit_parse(const at_model *m, const char *spec, at_unit *out) {
    char buf[128];
    if (!spec || strlen(spec) >= sizeof buf) return at_fail("unit", "expected LAYER,c or LAYER,c,x,y");
    snprintf(buf, sizeof buf, "%s", spec);
    char *part[5];
    int k = 0;
    for (char *p = buf, *comma; k < 5; p = comma + 1) {
        part[k++] = p;
        if (!(comma = strchr(p, ','))) break;
        *comma = 0;
    }
    if (k != 2 && k != 4) return at_fail("unit", "'%s': expected LAYER,c or LAYER,c,x,y", spec);
    int layer = at_model_find_layer(m, part[0]);
    if (layer < 0) {
        const char *msg = at_last_error(), *colon = strstr(msg, ": ");
        char why[400];
        snprintf(why, sizeof why, "%s", colon ? colon + 2 : msg);
        return at_fail("unit", "%s", why);
    }
    long c = 0, x = -1, y = -1;
    if (parse_int(part[1], "channel", &c) || (k == 4 && (parse_int(part[2], "x", &x) || parse_int(part[3], "y", &y))))
        return AT_ERR;
    if (c > 1 << 30 || x > 1 << 30 || y > 1 << 30 || (k == 4 && (x < 0 || y < 0)))
        return at_fail("unit", "'%s': channel and position must be >= 0", spec);
    at_unit u = {layer, (int)c, (int)x, (int)y};
    if (at_unit_check(m, &u)) return AT_ERR;
    *out = u;
    return AT_OK;
}

void at_unit_format(const at_model *m, const at_unit *u, char *buf, size_t cap) {
    if (u->x >= 0) snprintf(buf, cap, "%s,%d,%d,%d", m->layers[u->layer].name, u->channel, u->x, u->y);
    else snprintf(buf, cap, "%s,%d", m->layers[u->layer].name, u->channel);
}

float at_unit_value(const at_model *m, const at_unit *u, const float *layer_out) {
    const at_layer *l = &m->layers[u->layer];
    const long hw = (long)l->out_h * l->out_w;
    const float *ch = layer_out + u->channel * hw;
    if (u->x >= 0) return ch[(long)u->y * l->out_w + u->x];
    double s = 0;
    for (long i = 0; i < hw; i++) s += ch[i];
    return (float)s;
}

long at_explain_start_floats(const at_model *m, const at_explain_options *opt) {
    return opt->unit ? (long)at_layer_out_size(&m->layers[opt->unit->layer]) : m->n_classes;
}

void at_explain_start(const at_model *m, const at_explain_options *opt, const int *cls, int nb, float *buf,
                      at_backward_args *ba) {
    const long per = at_explain_start_floats(m, opt);
    memset(buf, 0, sizeof(float) * per * nb);
    if (!opt->unit) {
        for (int b = 0; b < nb; b++) buf[b * per + cls[b]] = 1.0f;
        ba->dlogits = buf;
        ba->dfrom = NULL;
        return;
    }
    const at_unit *u = opt->unit;
    const at_layer *l = &m->layers[u->layer];
    const long hw = (long)l->out_h * l->out_w;
    for (int b = 0; b < nb; b++) {
        float *ch = buf + b * per + u->channel * hw;
        if (u->x >= 0) ch[(long)u->y * l->out_w + u->x] = 1.0f;
        else
            for (long i = 0; i < hw; i++) ch[i] = 1.0f;
    }
    ba->dlogits = NULL;
    ba->dfrom = buf;
    ba->from_layer = u->layer;
}
