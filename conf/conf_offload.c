/*
 * conf_offload.c - relay.offload = "auto" | "tc" | "off" and
 * relay.offload_interfaces = [ "eth0", ... ]: whether established UDP
 * channels are relayed by a tc program in the kernel (server/relay/offload.h).
 *
 * Names are checked for form here; whether an interface exists is a start
 * error, since a configuration may be checked on another host.
 */
#include <string.h>

#include "conf/conf.h"
#include "conf/conf_int.h"

static bool ifname_ok(const char *s)
{
    if (!*s || strlen(s) >= CONF_IFNAME)
        return false;
    for (; *s; s++)
        if (*s == '/' || *s == ':' || *s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

int conf_load_offload(const struct conf_ctx *x, struct conf *c, const config_setting_t *g)
{
    char path[128];
    const config_setting_t *m = config_setting_get_member(g, "offload");
    if (m) {
        static const char *const names[] = { "auto", "tc", "off" };
        const char *v = config_setting_get_string(m);
        size_t i = 0;
        while (v && i < 3 && strcmp(v, names[i]) != 0)
            i++;
        if (!v || i == 3)
            return conf_fail(x, m, "'%s' must be \"auto\", \"tc\" or \"off\"", CONF_PATH(m, path));
        c->offload = (enum conf_offload)i;
    }
    config_setting_t *l;
    if (conf_take_seq(x, g, "offload_interfaces", CONF_MAX_OFFLOAD_IFS, &l) < 0)
        return -1;
    for (int i = 0; l && i < config_setting_length(l); i++) {
        const config_setting_t *e = config_setting_get_elem(l, i);
        const char *v = config_setting_get_string(e);
        if (!v || !ifname_ok(v))
            return conf_fail(x, e, "'%s' must be an interface name (1 to %d characters, no '/', "
                             "':' or spaces)", CONF_PATH(e, path), CONF_IFNAME - 1);
        for (size_t k = 0; k < c->n_offload_ifs; k++)
            if (strcmp(c->offload_ifs[k], v) == 0)
                return conf_fail(x, e, "'%s': interface \"%s\" is listed twice", CONF_PATH(e, path), v);
        strcpy(c->offload_ifs[c->n_offload_ifs++], v);
    }
    return 0;
}
