// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * CPython line tables, decoded the way each version's Objects/codeobject.c does. Lines are
 * summed in unsigned arithmetic: a hostile table can overflow an int, and CPython's own
 * int sums wrap the same way on the machines it runs on.
 */
#include "linetable.h"

/*
 * 3.8/3.9 co_lnotab: (u8 bytecode delta, s8 line delta) pairs. A pair's line delta applies
 * from the address reached after its bytecode delta, and the last line extends to the end.
 */
static int lnotab_line(int firstlineno, const unsigned char *t, size_t len, unsigned int offset)
{
	unsigned int line = (unsigned int)firstlineno;
	size_t addr = 0, i;

	for (i = 0; i + 1 < len; i += 2) {
		addr += t[i];
		if (addr > offset)
			break;
		line += (unsigned int)(signed char)t[i + 1];
	}
	return (int)line;
}

/*
 * 3.10 co_linetable (PEP 626): (u8 range length in bytes, s8 line delta) pairs, each range
 * starting where the previous one ended; -128 means "no line" and does not move the line.
 * Zero-length ranges only carry line deltas too big for one s8.
 */
static int linetable310_line(int firstlineno, const unsigned char *t, size_t len,
			     unsigned int offset)
{
	unsigned int line = (unsigned int)firstlineno;
	size_t end = 0, i;

	for (i = 0; i + 1 < len; i += 2) {
		signed char delta = (signed char)t[i + 1];

		end += t[i];
		if (delta != -128)
			line += (unsigned int)delta;
		if (offset < end)
			return delta == -128 ? -1 : (int)line;
	}
	return -1;
}

/*
 * Byte i of a table, or 0 past its end: a varint cut short by the end of the table makes
 * CPython read the NUL that terminates every bytes object, which ends the varint.
 */
static unsigned int byte_at(const unsigned char *t, size_t len, size_t i)
{
	return i < len ? t[i] : 0;
}

/* PEP 657 signed varint: 6 bits per byte, little end first, bit 6 = more, bit 0 = sign. */
static int signed_varint(const unsigned char *t, size_t len, size_t i)
{
	unsigned int b = byte_at(t, len, i), val = b & 63, shift = 0;

	while (b & 64) {
		b = byte_at(t, len, ++i);
		shift += 6;
		/* Bits beyond 32 cannot come from a real table; dropping them avoids a UB shift. */
		if (shift < 32)
			val |= (b & 63) << shift;
	}
	return val & 1 ? -(int)(val >> 1) : (int)(val >> 1);
}

/*
 * 3.11+ location table (PEP 657): each entry starts with a byte 1cccclll and covers l+1 code
 * units. Codes 0-9 (short form) keep the line, 10-12 (one-line forms) add 0/1/2, 13 (no
 * columns) and 14 (long form) add the signed varint that follows, 15 means no location.
 * CPython finds the next entry by skipping bytes with bit 7 clear rather than by parsing
 * the column varints, and so does this: the two differ only on corrupt tables.
 */
static int location_table_line(int firstlineno, const unsigned char *t, size_t len,
			       unsigned int offset)
{
	unsigned int line = (unsigned int)firstlineno;
	size_t end = 0, i = 0;

	while (i < len) {
		unsigned int head = t[i], code = (head >> 3) & 15;

		if (code == 13 || code == 14)
			line += (unsigned int)signed_varint(t, len, i + 1);
		else if (code == 11 || code == 12)
			line += code - 10;
		end += ((head & 7) + 1) * 2;
		if (offset < end)
			/* All five top bits, as CPython's is_no_line_marker() tests. */
			return head >> 3 == 0x1f ? -1 : (int)line;
		do
			i++;
		while (i < len && !(t[i] & 128));
	}
	return -1;
}

int linetable__line(int minor, int firstlineno, const unsigned char *table, size_t len,
		    unsigned int offset)
{
	if (minor == 8 || minor == 9)
		return lnotab_line(firstlineno, table, len, offset);
	if (minor == 10)
		return linetable310_line(firstlineno, table, len, offset);
	/*
	 * PEP 657's location table, the same from 3.11 through 3.15 (the newest this was checked
	 * with); a newer minor is assumed to keep it, as its _Py_DebugOffsets keeps co_linetable.
	 */
	if (minor >= 11)
		return location_table_line(firstlineno, table, len, offset);
	return -1;
}
