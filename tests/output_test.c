// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * output__text_safe, the one escaping of target-controlled strings in the text outputs: known
 * terminal attacks become visible escapes, valid UTF-8 stays, long strings are cut at a
 * character boundary; and for 200000 random byte strings, nothing a terminal acts on
 * (C0, DEL, C1, bidi overrides) and nothing that is not UTF-8 comes out.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "output.h"

static void check_escape(const char *in, const char *want)
{
	char buf[TEXT_SAFE_MAX];

	output__text_safe(in, buf, sizeof(buf));
	CHECK(!strcmp(buf, want), "\"%s\" -> \"%s\", want \"%s\"", in ? in : "NULL", buf, want);
}

/* What a terminal could act on, or is not UTF-8: the reason, NULL if the text is clean. */
static const char *text__unsafe(const char *text)
{
	const unsigned char *c = (const unsigned char *)text;
	unsigned int cp;
	int len, i;

	for (; *c; c += len) {
		if (*c < 0x80) {
			if (*c < 0x20 || *c == 0x7f)
				return "a C0 control or DEL";
			len = 1;
			continue;
		}
		len = *c >= 0xf0 ? 4 : *c >= 0xe0 ? 3 : *c >= 0xc2 ? 2 : 0;
		if (!len || *c > 0xf4)
			return "a byte that cannot start UTF-8";
		cp = *c & (0x7f >> len);
		for (i = 1; i < len; i++) {
			if ((c[i] & 0xc0) != 0x80)
				return "a cut UTF-8 sequence";
			cp = cp << 6 | (c[i] & 0x3f);
		}
		if (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
		    cp == 0x200e || cp == 0x200f)
			return "a C1 or bidirectional control";
		if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return "an overlong, surrogate or too large code point";
	}
	return NULL;
}

static void check_random(void)
{
	unsigned char in[64];
	char out[48];
	const char *why;
	int round, i, len;

	srand(4242);
	for (round = 0; round < 200000; round++) {
		len = rand() % (int)sizeof(in);
		for (i = 0; i < len; i++) {
			/* Mostly bytes near the interesting ranges: controls, lead and continuation. */
			in[i] = (unsigned char)(rand() % 4 ? 0x80 + rand() % 0x80 : 1 + rand() % 0x7f);
		}
		in[len] = '\0';
		output__text_safe((const char *)in, out, sizeof(out));
		why = text__unsafe(out);
		if (why || strlen(out) >= sizeof(out)) {
			CHECK(0, "random input %d: output has %s", round, why ? why : "no room");
			return;
		}
	}
}

int main(void)
{
	char big[10240], out[TEXT_SAFE_MAX];
	size_t i;

	check_escape("plain_name.py", "plain_name.py");
	check_escape("\x1b[2Jcleared", "\\x1b[2Jcleared");
	check_escape("\x1b]0;title\x07", "\\x1b]0;title\\x07");
	check_escape("a\rb\nc\td", "a\\x0db\\x0ac\\x09d");
	check_escape("del\x7f", "del\\x7f");
	check_escape("\xff\xfe not utf-8", "\\xff\\xfe not utf-8");
	check_escape("\xc0\xaf overlong", "\\xc0\\xaf overlong");
	check_escape("\xed\xa0\x80 surrogate", "\\xed\\xa0\\x80 surrogate");
	check_escape("cut \xe2\x82", "cut \\xe2\\x82");
	check_escape("csi \xc2\x9b" "31m", "csi \\u009b31m");
	check_escape("rlo \xe2\x80\xae" "gnp.exe", "rlo \\u202egnp.exe");
	check_escape("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\x8d", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\x8d");
	check_escape("back\\slash", "back\\\\slash");
	check_escape(NULL, "(null)");
	check_escape("", "");

	/* 10 kB of ESC: cut to the buffer, whole escapes only, marked. */
	memset(big, 0x1b, sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	output__text_safe(big, out, sizeof(out));
	CHECK(strlen(out) < sizeof(out) && !text__unsafe(out), "10 kB of ESC: unsafe output");
	CHECK(strlen(out) >= 3 && !strcmp(out + strlen(out) - 3, "...") &&
	      (strlen(out) - 3) % 4 == 0, "10 kB of ESC: not cut at an escape: ...%s",
	      out + strlen(out) - 8);
	/* 10 kB of a 2-byte character: cut between characters. */
	for (i = 0; i + 2 < sizeof(big); i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[i] = '\0';
	output__text_safe(big, out, sizeof(out));
	CHECK(!text__unsafe(out) && !strcmp(out + strlen(out) - 3, "..."),
	      "10 kB of e-acute: not cut between characters");
	/* A buffer too small for anything but the mark. */
	CHECK(!strcmp(output__text_safe("abcdef", out, 4), "..."), "size 4: %s", out);
	CHECK(!strcmp(output__text_safe("abcdefgh", out, 7), "abc..."), "size 7: %s", out);
	check_random();
	return check__exit("output_test");
}
