/*
 * perm.c - the permissions and channel bindings of an allocation (RFC 8656
 * sections 9 and 12): small arrays that grow on demand up to their maxima,
 * entries stamped with their expiry and checked when used.
 */
#include <stdlib.h>
#include <string.h>

#include "server/core/net.h"
#include "server/relay/relay_int.h"

static void to_mapped(const struct sockaddr *sa, struct in6_addr *out)
{
    if (sa->sa_family == AF_INET6) {
        *out = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        return;
    }
    memset(out, 0, sizeof *out);
    out->s6_addr[10] = out->s6_addr[11] = 0xFF;
    memcpy(&out->s6_addr[12], &((const struct sockaddr_in *)sa)->sin_addr, 4);
}

int alloc_perm_add(struct alloc *a, const struct sockaddr *peer)
{
    uint32_t now = relay_now(a->t);
    struct in6_addr ip;
    to_mapped(peer, &ip);
    struct perm *free_slot = NULL;
    for (unsigned i = 0; i < a->n_perms; i++) {
        struct perm *p = &a->perms[i];
        if (memcmp(&p->ip, &ip, sizeof ip) == 0) {
            p->expires = now + ALLOC_PERM_LIFETIME;
            relay_offload_perm(a, &ip);
            return 0;
        }
        if (!free_slot && p->expires <= now)
            free_slot = p;
    }
    if (!free_slot) {
        if (a->n_perms >= ALLOC_MAX_PERMS)
            return 508;
        if (a->n_perms == a->cap_perms) {
            uint16_t cap = a->cap_perms ? a->cap_perms * 2 : 2;
            struct perm *p = realloc(a->perms, cap * sizeof *p);
            if (!p)
                return 508;
            a->perms = p;
            a->cap_perms = cap;
        }
        free_slot = &a->perms[a->n_perms++];
    }
    free_slot->ip = ip;
    free_slot->expires = now + ALLOC_PERM_LIFETIME;
    relay_offload_perm(a, &ip);
    return 0;
}

/* The packet path reads the clock once per batch, not per check, and
 * compares addresses as two words rather than through memcmp. */
bool relay_perm_ok_at(const struct alloc *a, const struct sockaddr *peer, uint32_t now)
{
    struct in6_addr ip;
    to_mapped(peer, &ip);
    uint64_t want[2], have[2];
    memcpy(want, &ip, sizeof want);
    for (unsigned i = 0; i < a->n_perms; i++) {
        memcpy(have, &a->perms[i].ip, sizeof have);
        if (have[0] == want[0] && have[1] == want[1] && a->perms[i].expires > now)
            return true;
    }
    return false;
}

bool alloc_perm_ok(const struct alloc *a, const struct sockaddr *peer)
{
    return relay_perm_ok_at(a, peer, relay_now(a->t));
}

unsigned alloc_count_perms(const struct alloc *a)
{
    uint32_t now = relay_now(a->t);
    unsigned n = 0;
    for (unsigned i = 0; i < a->n_perms; i++)
        n += a->perms[i].expires > now;
    return n;
}

unsigned alloc_count_chans(const struct alloc *a)
{
    uint32_t now = relay_now(a->t);
    unsigned n = 0;
    for (unsigned i = 0; i < a->n_chans; i++)
        n += a->chans[i].expires > now;
    return n;
}

bool alloc_is_own_relay(const struct alloc *a, const struct sockaddr *addr)
{
    for (unsigned i = 0; i < a->n_relay; i++)
        if (net_addr_equal((const struct sockaddr *)&a->relay[i].addr, addr))
            return true;
    return false;
}

static bool chan_peer_is(const struct chan *c, const struct sockaddr *peer)
{
    return net_addr_equal((const struct sockaddr *)&c->peer, peer);
}

/*
 * The permission is installed before anything about the channel changes:
 * a ChannelBind refused for want of a permission slot (508) must leave the
 * channel table exactly as it was, not a half-built entry with no expiry.
 */
int alloc_chan_bind(struct alloc *a, uint16_t number, const struct sockaddr *peer)
{
    uint32_t now = relay_now(a->t);
    struct chan *slot = NULL, *free_slot = NULL;
    for (unsigned i = 0; i < a->n_chans; i++) {
        struct chan *c = &a->chans[i];
        bool held = c->expires + ALLOC_CHANNEL_QUARANTINE > now;
        if (!held) {
            if (!free_slot)
                free_slot = c;
            continue;
        }
        bool same_num = c->number == number, same_peer = chan_peer_is(c, peer);
        /* RFC 8656 section 11.2: a number maps to one peer and back, also
         * for 5 minutes after the binding expires. */
        if (same_num != same_peer)
            return 400;
        if (same_num)
            slot = c;
    }
    if (!slot && !free_slot && a->n_chans >= ALLOC_MAX_CHANNELS)
        return 508;
    int rc = alloc_perm_add(a, peer);
    if (rc)
        return rc;
    if (!slot) {
        if (!free_slot) {
            if (a->n_chans == a->cap_chans) {
                uint16_t cap = a->cap_chans ? a->cap_chans * 2 : 1;
                struct chan *ch = realloc(a->chans, cap * sizeof *ch);
                if (!ch)
                    return 508;
                a->chans = ch;
                a->cap_chans = cap;
            }
            free_slot = &a->chans[a->n_chans++];
            free_slot->off_slot = 0;
        }
        slot = free_slot;
        if (slot->off_slot)
            relay_offload_drop(a, slot);
        slot->number = number;
        memset(&slot->peer, 0, sizeof slot->peer);
        memcpy(&slot->peer, peer, net_addr_len(peer));
    }
    slot->expires = now + ALLOC_CHANNEL_LIFETIME;
    relay_offload_chan(a, slot);
    return 0;
}

const struct chan *relay_chan_by_number(const struct alloc *a, uint16_t number, uint32_t now)
{
    for (unsigned i = 0; i < a->n_chans; i++)
        if (a->chans[i].number == number && a->chans[i].expires > now)
            return &a->chans[i];
    return NULL;
}

const struct chan *relay_chan_by_peer(const struct alloc *a, const struct sockaddr *peer,
                                      uint32_t now)
{
    for (unsigned i = 0; i < a->n_chans; i++)
        if (a->chans[i].expires > now && chan_peer_is(&a->chans[i], peer))
            return &a->chans[i];
    return NULL;
}
