// Internal to nn/io: zlib when the library is built with it (gzip-compressed IDX files, the CRC-32
// of safetensors checksums); AG_HAVE_ZLIB says whether it is. Not installed.
#pragma once

#if __has_include(<zlib.h>)
#include <zlib.h>
#define AG_HAVE_ZLIB 1
#else
#define AG_HAVE_ZLIB 0
#endif
