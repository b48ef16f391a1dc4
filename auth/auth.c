/*
 * auth.c - SASLprep (RFC 4013) and long-term credential keys (RFC 8489
 * section 9.2.2), plus USERHASH (RFC 8489 section 14.4).
 *
 * Design: SASLprep is one pass over the UTF-8 input that decodes a code
 * point, maps it (RFC 4013 section 2.1-2.2), appends the result to the
 * output, and then checks the *output* code points for prohibited characters
 * (section 2.3) and the bidi rule (section 2.4, RFC 3454 section 6), since
 * StringPrep prohibits and checks bidi after mapping and normalisation.
 * Tables are const arrays; nothing is allocated and nothing is global.
 *
 * What subset is implemented, and why:
 *  - Mapping, complete: C.1.2 non-ASCII spaces -> U+0020, B.1 "commonly
 *    mapped to nothing" removed. U+200B is in both tables; RFC 4013 section
 *    2.1 lists the space mapping first (and libidn applies it first), so
 *    U+200B becomes a space.
 *  - NFKC, partial: full NFKC needs the Unicode decomposition and composition
 *    tables (thousands of entries) and is out of scope. We apply the NFKC
 *    result of exactly these compatibility characters, which are the ones a
 *    password typed on a common keyboard or copied from a document can hold:
 *      * every NFKC change in the Latin-1 supplement (U+00A8, U+00AA, U+00AF,
 *        U+00B2-U+00B5, U+00B8-U+00BA, U+00BC-U+00BE; U+00A0 is a space);
 *      * U+2126 OHM -> U+03A9, U+212A KELVIN -> 'K', U+212B ANGSTROM ->
 *        U+00C5;
 *      * Roman numerals U+2160-U+217F -> their ASCII letters (needed by the
 *        RFC 5769 section 2.4 vector, "TheM<U+00AA>tr<U+2168>" -> "TheMatrIX");
 *      * full-width ASCII U+FF01-U+FF5E -> U+0021-U+007E.
 *    Canonical composition of decomposed sequences ("A" U+030A -> U+00C5)
 *    is not done. Pure ASCII strings, the overwhelming case, are unchanged by
 *    NFKC and so by us, as RFC 4013 requires, and every string whose NFKC
 *    form only needs the mappings above is prepared exactly.
 *  - Prohibited output, complete for RFC 4013 section 2.3 except A.1
 *    (unassigned code points: we treat every string as a "query", RFC 3454
 *    section 7, which allows them).
 *  - Bidi (RFC 3454 section 6): RandALCat and LCat are approximated by
 *    ranges (Hebrew, Arabic, Syriac, Thaana and the Hebrew/Arabic
 *    presentation forms for RandALCat; ASCII and Latin-1/Latin Extended
 *    letters for LCat) instead of the full Unicode 3.2 bidi tables.
 *  - Invalid UTF-8 (overlong, surrogate, > U+10FFFF, truncated) is
 *    AUTH_ERR_PROHIBITED.
 */
#include "auth/auth.h"

#include <openssl/evp.h>
#include <string.h>

/* Longest prepared password we derive keys from; SASLprep expands at most
 * 5/2 (U+00BC, 2 bytes -> "1" U+2044 "4", 5 bytes). */
#define AUTH_PREP_MAX 1024
/* username ":" realm ":" password, for the one-shot digests. */
#define AUTH_KEY_INPUT_MAX (AUTH_MAX_USERNAME + CONF_STR + AUTH_PREP_MAX + 2)

struct auth_range {
    uint32_t lo, hi;
};

static bool auth_in_ranges(uint32_t cp, const struct auth_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cp >= r[i].lo && cp <= r[i].hi)
            return true;
    return false;
}

#define AUTH_N(a) (sizeof(a) / sizeof((a)[0]))

/* RFC 3454 C.1.2: non-ASCII space characters, mapped to U+0020. */
static const struct auth_range auth_c12[] = {
    {0x00A0, 0x00A0}, {0x1680, 0x1680}, {0x2000, 0x200B},
    {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};

/* RFC 3454 B.1: commonly mapped to nothing. */
static const struct auth_range auth_b1[] = {
    {0x00AD, 0x00AD}, {0x034F, 0x034F}, {0x1806, 0x1806}, {0x180B, 0x180D},
    {0x200B, 0x200D}, {0x2060, 0x2060}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF},
};

/* RFC 4013 section 2.3: C.2.1, C.2.2, C.3, C.4 (U+FDD0-U+FDEF; the
 * U+xFFFE/U+xFFFF ones are tested arithmetically), C.5, C.6, C.7, C.8, C.9.
 * C.1.2 never reaches the check: those characters were mapped to SPACE. */
static const struct auth_range auth_prohibited[] = {
    {0x0000, 0x001F},   {0x007F, 0x009F},   {0x0340, 0x0341},  {0x06DD, 0x06DD},
    {0x070F, 0x070F},   {0x180E, 0x180E},   {0x200C, 0x200F},  {0x2028, 0x202E},
    {0x2060, 0x2063},   {0x206A, 0x206F},   {0x2FF0, 0x2FFB},  {0xD800, 0xDFFF},
    {0xE000, 0xF8FF},   {0xFDD0, 0xFDEF},   {0xFEFF, 0xFEFF},  {0xFFF9, 0xFFFD},
    {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xF0000, 0xFFFFD},
    {0x100000, 0x10FFFD},
};

/* Approximation of bidi category R or AL (RFC 3454 D.1). */
static const struct auth_range auth_randal[] = {
    {0x0590, 0x05FF}, {0x0600, 0x06FF}, {0x0700, 0x074F}, {0x0780, 0x07BF},
    {0xFB1D, 0xFDFF}, {0xFE70, 0xFEFE},
};

/* Approximation of bidi category L (RFC 3454 D.2). */
static const struct auth_range auth_lcat[] = {
    {'A', 'Z'}, {'a', 'z'}, {0x00C0, 0x00D6}, {0x00D8, 0x00F6}, {0x00F8, 0x024F},
};

/* NFKC results of the compatibility characters we normalise (see the file
 * comment), as UTF-8. Roman numerals and full-width ASCII are computed. */
static const struct {
    uint32_t cp;
    const char *to;
} auth_nfkc_table[] = {
    {0x00A8, " \xCC\x88"}, {0x00AA, "a"},     {0x00AF, " \xCC\x84"},
    {0x00B2, "2"},         {0x00B3, "3"},     {0x00B4, " \xCC\x81"},
    {0x00B5, "\xCE\xBC"},  {0x00B8, " \xCC\xA7"}, {0x00B9, "1"},
    {0x00BA, "o"},         {0x00BC, "1\xE2\x81\x84" "4"}, {0x00BD, "1\xE2\x81\x84" "2"},
    {0x00BE, "3\xE2\x81\x84" "4"}, {0x2126, "\xCE\xA9"}, {0x212A, "K"},
    {0x212B, "\xC3\x85"},
};

/* U+2160-U+216F; U+2170-U+217F are the same in lower case. */
static const char *const auth_roman[16] = {
    "I", "II", "III", "IV", "V", "VI", "VII", "VIII",
    "IX", "X", "XI", "XII", "L", "C", "D", "M",
};

/* Decode one UTF-8 code point from s[0..n); returns its byte length, or 0 if
 * the sequence is invalid (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF). */
static size_t auth_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* Append cp as UTF-8 at out[*n]; false if it does not fit (keeping a byte
 * for the NUL). */
static bool auth_utf8_put(char *out, size_t cap, size_t *n, uint32_t cp)
{
    uint8_t b[4];
    size_t len;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp, len = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        len = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        len = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | (cp >> 18));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        len = 4;
    }
    if (*n + len >= cap)
        return false;
    memcpy(out + *n, b, len);
    *n += len;
    return true;
}

/* The NFKC form of cp as UTF-8 if it is one of the non-Roman-numeral
 * characters we normalise, else NULL. buf receives one-character results. */
static const char *auth_nfkc(uint32_t cp, char buf[2])
{
    if (cp >= 0xFF01 && cp <= 0xFF5E) {
        buf[0] = (char)(cp - 0xFF01 + 0x21);
        buf[1] = '\0';
        return buf;
    }
    for (size_t i = 0; i < AUTH_N(auth_nfkc_table); i++)
        if (auth_nfkc_table[i].cp == cp)
            return auth_nfkc_table[i].to;
    return NULL;
}

/* Append an already-mapped UTF-8 string, lower-casing ASCII if asked. */
static bool auth_put_str(char *out, size_t cap, size_t *n, const char *s, bool lower)
{
    for (; *s; s++) {
        if (*n + 1 >= cap)
            return false;
        char ch = *s;
        if (lower && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        out[(*n)++] = ch;
    }
    return true;
}

/* RFC 4013 section 2.3 on one output code point. */
static bool auth_is_prohibited(uint32_t cp)
{
    if ((cp & 0xFFFE) == 0xFFFE) /* C.4: U+xFFFE and U+xFFFF in every plane */
        return true;
    return auth_in_ranges(cp, auth_prohibited, AUTH_N(auth_prohibited));
}

int auth_saslprep(const char *in, char *out, size_t cap)
{
    if (cap == 0)
        return AUTH_ERR_INVALID;
    const uint8_t *s = (const uint8_t *)in;
    size_t in_len = strlen(in), n = 0;

    /* Steps 1-2: map and normalise, input -> out. */
    for (size_t i = 0; i < in_len;) {
        uint32_t cp;
        size_t len = auth_utf8_decode(s + i, in_len - i, &cp);
        if (len == 0)
            return AUTH_ERR_PROHIBITED;
        i += len;
        bool ok;
        char one[2];
        const char *nf;
        if (auth_in_ranges(cp, auth_c12, AUTH_N(auth_c12)))
            ok = auth_utf8_put(out, cap, &n, ' ');
        else if (auth_in_ranges(cp, auth_b1, AUTH_N(auth_b1)))
            ok = true;
        else if (cp >= 0x2160 && cp <= 0x217F) /* NFKC of U+2170 is "i" */
            ok = auth_put_str(out, cap, &n, auth_roman[cp & 0x0F], cp >= 0x2170);
        else if ((nf = auth_nfkc(cp, one)) != NULL)
            ok = auth_put_str(out, cap, &n, nf, false);
        else
            ok = auth_utf8_put(out, cap, &n, cp);
        if (!ok)
            return AUTH_ERR_INVALID; /* out too small */
    }
    out[n] = '\0';

    /* Steps 3-4: prohibited output and the bidi rule, over the output. The
     * output is valid UTF-8 by construction. */
    bool has_randal = false, has_l = false, first_randal = false, last_randal = false;
    bool first = true;
    const uint8_t *o = (const uint8_t *)out;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        i += auth_utf8_decode(o + i, n - i, &cp);
        if (auth_is_prohibited(cp))
            return AUTH_ERR_PROHIBITED;
        bool r = auth_in_ranges(cp, auth_randal, AUTH_N(auth_randal));
        if (r)
            has_randal = true;
        if (auth_in_ranges(cp, auth_lcat, AUTH_N(auth_lcat)))
            has_l = true;
        if (first)
            first_randal = r;
        first = false;
        last_randal = r;
    }
    /* RFC 3454 section 6, rules 2 and 3. */
    if (has_randal && (has_l || !first_randal || !last_randal))
        return AUTH_ERR_PROHIBITED;
    return (int)n;
}

/* digest(user ":" realm ":" SASLprep(password)) into key, md_len bytes. */
static int auth_key_derive(const EVP_MD *md, const char *user, size_t user_len,
                           const char *realm, const char *password, uint8_t *key,
                           unsigned md_len)
{
    char buf[AUTH_KEY_INPUT_MAX];
    size_t realm_len = strlen(realm);
    if (user_len >= AUTH_MAX_USERNAME || realm_len >= CONF_STR)
        return AUTH_ERR_INVALID;
    size_t n = 0;
    memcpy(buf, user, user_len);
    n += user_len;
    buf[n++] = ':';
    memcpy(buf + n, realm, realm_len);
    n += realm_len;
    buf[n++] = ':';
    int p = auth_saslprep(password, buf + n, AUTH_PREP_MAX);
    if (p < 0)
        return p;
    n += (size_t)p;
    unsigned out_len = 0;
    int ok = EVP_Digest(buf, n, key, &out_len, md, NULL);
    OPENSSL_cleanse(buf, sizeof(buf)); /* it held the password */
    return ok == 1 && out_len == md_len ? 0 : AUTH_ERR_INVALID;
}

int auth_key_md5(const char *user, size_t user_len, const char *realm, const char *password,
                 uint8_t key[AUTH_MD5_KEY_LEN])
{
    return auth_key_derive(EVP_md5(), user, user_len, realm, password, key,
                           AUTH_MD5_KEY_LEN);
}

int auth_key_sha256(const char *user, size_t user_len, const char *realm, const char *password,
                    uint8_t key[AUTH_SHA256_KEY_LEN])
{
    return auth_key_derive(EVP_sha256(), user, user_len, realm, password, key,
                           AUTH_SHA256_KEY_LEN);
}

void auth_userhash(const char *user, size_t user_len, const char *realm, uint8_t out[32])
{
    /* Usernames are < 513 bytes (RFC 8489 section 14.3) and realms come from
     * the configuration (< CONF_STR); anything longer is clipped, which can
     * only make a hash that matches no configured user. */
    char buf[AUTH_MAX_USERNAME + CONF_STR + 1];
    size_t realm_len = strlen(realm), n = 0;
    if (user_len > AUTH_MAX_USERNAME)
        user_len = AUTH_MAX_USERNAME;
    if (realm_len >= CONF_STR)
        realm_len = CONF_STR - 1;
    memcpy(buf, user, user_len);
    n += user_len;
    buf[n++] = ':';
    memcpy(buf + n, realm, realm_len);
    n += realm_len;
    unsigned out_len = 0;
    if (EVP_Digest(buf, n, out, &out_len, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32);
}
