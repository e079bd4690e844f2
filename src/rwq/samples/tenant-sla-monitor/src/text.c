/* Text helpers: UTF-8-safe cutting, number and time formats, small UI writers. */
#include "rwq.h"
#include "sla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The length of the longest prefix of s, at most max bytes, that ends on a UTF-8 character
 * boundary: text cut anywhere else is not UTF-8, and the host refuses such output. */
size_t utf8_len(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n <= max) return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--; /* s[max]: a continuation */
    return max;
}

/* Drops an incomplete character at the end of s (text a copy or snprintf cut at the end of
 * its buffer of `size` bytes). */
void utf8_clip(char *s, size_t size) {
    size_t n = strnlen(s, size - 1), lead = n;
    while (lead > 0 && ((unsigned char)s[lead - 1] & 0xC0) == 0x80) lead--;
    if (lead == 0) {
        s[n] = 0;
        return;
    }
    unsigned char c = (unsigned char)s[lead - 1];
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    s[n - (lead - 1) < need ? lead - 1 : n] = 0;
}

/* A JSON string decoded into buf (whole UTF-8 characters only); its length, 0 if none. */
size_t text_of(rwq_json v, char *buf, size_t size) {
    if (!rwq_json_string(v, buf, size)) return 0;
    utf8_clip(buf, size);
    return strlen(buf);
}

void w_fixed(rwq_writer *out, double v, int decimals) {
    char tmp[48];
    if (!isfinite(v)) {
        rwq_w_null(out);
        return;
    }
    int n = snprintf(tmp, sizeof tmp, "%.*f", decimals, v);
    rwq_w_json(out, rwq_json_view(tmp, (uint32_t)n));
}

void w_member_str(rwq_writer *out, const char *key, const char *value) {
    rwq_w_key(out, key);
    rwq_w_string(out, value);
}

void ui_text(rwq_writer *out, const char *text, const char *style) {
    rwq_w_object(out);
    w_member_str(out, "type", "text");
    w_member_str(out, "text", text);
    if (style) w_member_str(out, "style", style);
    rwq_w_end_object(out);
}

void fmt_pct(char *buf, size_t size, double v) {
    if (isfinite(v)) snprintf(buf, size, "%.1f%%", v);
    else snprintf(buf, size, "-");
}

void fmt_ms(char *buf, size_t size, double v) {
    if (isfinite(v)) snprintf(buf, size, "%.0f ms", v);
    else snprintf(buf, size, "-");
}

void fmt_clock(char *buf, size_t size, int64_t ms) {
    int64_t s = ms / 1000 % 86400;
    snprintf(buf, size, "%02d:%02d:%02d UTC", (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60));
}
