/*
 * fuzz_binding - libFuzzer target for the Binding service (server/stun/binding.c)
 * as a whole: any datagram, from an IPv4 or IPv6 client, with or without
 * RFC 5780, must be answered within the amplification bound or dropped, and
 * an answer must itself decode as a STUN response with our transaction ID.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "proto/stun.h"
#include "server/stun/binding.h"

static void env_init(struct binding_env *env, bool v6, bool rfc5780, unsigned self)
{
    memset(env, 0, sizeof *env);
    env->software = "ternd-fuzz";
    env->software_len = strlen(env->software);
    env->rfc5780 = rfc5780;
    env->self = self & 3;
    for (unsigned i = 0; i < 4; i++) {
        if (v6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&env->addrs[i];
            a->sin6_family = AF_INET6;
            inet_pton(AF_INET6, (i & 2) ? "2001:db8::2" : "2001:db8::1", &a->sin6_addr);
            a->sin6_port = htons((i & 1) ? 3479 : 3478);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&env->addrs[i];
            a->sin_family = AF_INET;
            inet_pton(AF_INET, (i & 2) ? "192.0.2.2" : "192.0.2.1", &a->sin_addr);
            a->sin_port = htons((i & 1) ? 3479 : 3478);
        }
    }
    env->local = env->addrs[env->self];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    data++;
    size--;
    struct binding_env env;
    env_init(&env, flags & 1, flags & 2, flags >> 2);
    env.stream = flags & 0x40;
    struct sockaddr_storage client;
    memset(&client, 0, sizeof client);
    if (flags & 1) {
        struct sockaddr_in6 *c = (struct sockaddr_in6 *)&client;
        c->sin6_family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8::99", &c->sin6_addr);
        c->sin6_port = htons(5000);
    } else {
        struct sockaddr_in *c = (struct sockaddr_in *)&client;
        c->sin_family = AF_INET;
        inet_pton(AF_INET, "198.51.100.7", &c->sin_addr);
        c->sin_port = htons(5000);
    }
    /* the request in its own exact-size allocation: ASan sees any overread */
    uint8_t *req = malloc(size ? size : 1);
    memcpy(req, data, size);
    uint8_t out[4096];
    struct binding_route route;
    size_t n = binding_handle(&env, req, size, (struct sockaddr *)&client, out, sizeof out, &route,
                              NULL);
    if (n) {
        if (n > size + BINDING_MAX_GROWTH)
            abort(); /* amplification bound broken */
        struct stun_msg m;
        if (stun_msg_decode(&m, out, n) < 0 || m.cls < STUN_CLASS_SUCCESS)
            abort(); /* we answered with something that is not a response */
        if (route.from > 3)
            abort();
    }
    free(req);
    return 0;
}
