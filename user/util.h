/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef UTIL_H
#define UTIL_H

#define ARRAY_SIZE(array) (sizeof(array) / sizeof((array)[0]))

#endif
