/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef UTF8_H
#define UTF8_H

#include <stddef.h>
#include <linux/types.h>

#define UTF8_REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */

/* Length of the valid UTF-8 sequence at text (at most len bytes), 0 if it is not one (RFC 3629:
 * no overlong forms, surrogates or code points above U+10FFFF). */
size_t utf8__sequence(const unsigned char *text, size_t len);
/* utf8__sequence, and the sequence's code point in *cp. */
size_t utf8__decode(const unsigned char *text, size_t len, __u32 *cp);
/* Code point cp as UTF-8 into out: how many bytes (1 to 4). A value that is no code point
 * (above U+10FFFF) becomes U+FFFD. */
size_t utf8__encode(__u32 cp, char out[4]);

#endif
