/*
 * conf_int.h - what the files of conf/ share besides the typed readers
 * (conf_read.h): the loaders of the groups that live in their own file.
 * Not for use outside conf/. Errors as in conf_read.h.
 */
#ifndef TERN_CONF_CONF_INT_H
#define TERN_CONF_CONF_INT_H

#include "conf/conf_read.h"

/* tls = { ... } (conf_tls.c). */
int conf_load_tls(const struct conf_ctx *x, struct conf *c, const config_setting_t *root);
/* realms = ( ... ) (conf_realm.c); the default realm must be loaded. */
int conf_load_realms(const struct conf_ctx *x, struct conf *c, const config_setting_t *root);
void conf_realms_free(struct conf *c);
/* oauth = { ... } (conf_oauth.c), after the realms. */
int conf_load_oauth(const struct conf_ctx *x, struct conf *c, const config_setting_t *root);
/* relay.offload and relay.offload_interfaces (conf_offload.c), from the
 * relay group g. */
int conf_load_offload(const struct conf_ctx *x, struct conf *c, const config_setting_t *g);

#endif
