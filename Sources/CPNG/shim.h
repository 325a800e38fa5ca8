// libpng, through its "simplified API" only (png_image_write_to_file, png_image_begin_read_from_file,
// png_image_finish_read): libpng reports errors in png_image.message and does its setjmp/longjmp
// inside its own frames, so no longjmp ever crosses Swift code. Nothing else is needed from C;
// all logic lives in Swift (Pictures/PNG.swift).
#ifndef UNET_CPNG_SHIM_H
#define UNET_CPNG_SHIM_H
#include <png.h>
#endif
