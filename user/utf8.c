// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* UTF-8 for the names and strings traced processes control: checked before output, and built
 * from the code points read out of their runtimes' string objects. */
#include <string.h>
#include "utf8.h"

size_t utf8__decode(const unsigned char *text, size_t len, __u32 *cp)
{
	unsigned char c = text[0], lo = 0x80, hi = 0xBF;
	size_t need, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
		need = 1, *cp = c & 0x1f;
	else if (c >= 0xE0 && c <= 0xEF)
		need = 2, *cp = c & 0x0f;
	else if (c >= 0xF0 && c <= 0xF4)
		need = 3, *cp = c & 0x07;
	else
		return 0;
	/* Overlong forms, UTF-16 surrogates and code points above U+10FFFF are invalid. */
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (len < need + 1 || text[1] < lo || text[1] > hi)
		return 0;
	for (i = 1; i <= need; i++) {
		if ((text[i] & 0xC0) != 0x80)
			return 0;
		*cp = *cp << 6 | (text[i] & 0x3f);
	}
	return need + 1;
}

size_t utf8__sequence(const unsigned char *text, size_t len)
{
	__u32 cp;

	return utf8__decode(text, len, &cp);
}

size_t utf8__encode(__u32 cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	if (cp < 0x110000) {
		out[0] = (char)(0xf0 | cp >> 18);
		out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[3] = (char)(0x80 | (cp & 0x3f));
		return 4;
	}
	memcpy(out, UTF8_REPLACEMENT, 3);
	return 3;
}
