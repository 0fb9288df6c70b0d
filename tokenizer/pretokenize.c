/* The GPT-2 pre-tokenizer regex, hand-compiled:
 *
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * with the leftmost-first alternation and backtracking of a regex engine (Oniguruma in
 * Hugging Face tokenizers). The one non-obvious case is a whitespace run followed by a
 * non-space character: `\s+(?!\S)` backtracks one character, so the run minus its last
 * character is a piece and the last character starts the next one (" word" if it is a
 * plain space, else it stands alone via `\s+`).
 *
 * Bytes that are not part of well-formed UTF-8 each count as one character of class
 * "other" (not letter, number or space); they group with punctuation. */
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

static sb_uclass ascii_class[128];
static int ascii_ready;

static void init_ascii(void) {
    /* benign race: every thread writes the same values */
    for (int c = 0; c < 128; c++) {
        sb_uclass k = SB_UCLASS_OTHER;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) k = SB_UCLASS_LETTER;
        else if (c >= '0' && c <= '9') k = SB_UCLASS_NUMBER;
        else if (c == ' ' || (c >= 0x09 && c <= 0x0D)) k = SB_UCLASS_SPACE;
        ascii_class[c] = k;
    }
    __atomic_store_n(&ascii_ready, 1, __ATOMIC_RELEASE);
}

static int in_ranges(const sb_unicode_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

sb_uclass sb_unicode_class(uint32_t cp) {
    if (cp < 128) {
        if (!__atomic_load_n(&ascii_ready, __ATOMIC_ACQUIRE)) init_ascii();
        return ascii_class[cp];
    }
    if (cp == UINT32_MAX) return SB_UCLASS_OTHER;
    if (in_ranges(sb_unicode_letter, sb_unicode_letter_count, cp)) return SB_UCLASS_LETTER;
    if (in_ranges(sb_unicode_number, sb_unicode_number_count, cp)) return SB_UCLASS_NUMBER;
    if (in_ranges(sb_unicode_space, sb_unicode_space_count, cp)) return SB_UCLASS_SPACE;
    return SB_UCLASS_OTHER;
}

static inline int is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

int sb_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp) {
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    *cp = UINT32_MAX;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (len < 2 || !is_cont(s[1])) return 1;
        *cp = ((uint32_t)(b0 & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (len < 3 || !is_cont(s[1]) || !is_cont(s[2])) return 1;
        if (b0 == 0xE0 && s[1] < 0xA0) return 1; /* overlong */
        if (b0 == 0xED && s[1] > 0x9F) return 1; /* surrogate */
        *cp = ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (len < 4 || !is_cont(s[1]) || !is_cont(s[2]) || !is_cont(s[3])) return 1;
        if (b0 == 0xF0 && s[1] < 0x90) return 1; /* overlong */
        if (b0 == 0xF4 && s[1] > 0x8F) return 1; /* > U+10FFFF */
        *cp = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
              ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return 4;
    }
    return 1;
}

/* Class and byte length of the character at s[pos]. */
static inline sb_uclass char_at(const uint8_t *s, size_t len, size_t pos, int *clen) {
    uint8_t b = s[pos];
    if (b < 0x80) {
        *clen = 1;
        if (!__atomic_load_n(&ascii_ready, __ATOMIC_ACQUIRE)) init_ascii();
        return ascii_class[b];
    }
    uint32_t cp;
    *clen = sb_utf8_decode(s + pos, len - pos, &cp);
    return sb_unicode_class(cp);
}

/* End of the run of characters of class k starting at pos. */
static size_t run_end(const uint8_t *s, size_t len, size_t pos, sb_uclass k) {
    while (pos < len) {
        uint8_t b = s[pos];
        if (b < 0x80) { /* ASCII fast path */
            if (ascii_class[b] != k) break;
            pos++;
            continue;
        }
        int cl;
        if (char_at(s, len, pos, &cl) != k) break;
        pos += (size_t)cl;
    }
    return pos;
}

size_t sb_pretokenize_next(const uint8_t *s, size_t len, size_t pos) {
    if (!__atomic_load_n(&ascii_ready, __ATOMIC_ACQUIRE)) init_ascii();
    if (pos >= len) return len;
    uint8_t b = s[pos];
    /* 's|'t|'re|'ve|'m|'ll|'d (case-sensitive) */
    if (b == '\'' && pos + 1 < len) {
        uint8_t c = s[pos + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return pos + 2;
        if (pos + 2 < len) {
            uint8_t d = s[pos + 2];
            if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return pos + 3;
        }
    }
    int cl;
    sb_uclass k = char_at(s, len, pos, &cl);
    /* ` ?X+`: an optional plain space glued to a following letter/number/other run */
    if (b == ' ' && pos + 1 < len) {
        int cl1;
        sb_uclass k1 = char_at(s, len, pos + 1, &cl1);
        if (k1 != SB_UCLASS_SPACE) return run_end(s, len, pos + 1 + (size_t)cl1, k1);
    }
    if (k != SB_UCLASS_SPACE) return run_end(s, len, pos + (size_t)cl, k);
    /* whitespace: \s+(?!\S) | \s+ */
    size_t last = pos, end = pos + (size_t)cl;
    int nchars = 1;
    while (end < len) {
        int c2;
        if (char_at(s, len, end, &c2) != SB_UCLASS_SPACE) break;
        last = end;
        end += (size_t)c2;
        nchars++;
    }
    if (end == len || nchars == 1) return end;
    return last; /* leave the last whitespace character for the next piece */
}
