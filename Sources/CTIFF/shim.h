// libtiff's TIFFGetField/TIFFSetField are variadic, which Swift cannot call.
// These typed wrappers are the whole shim; all logic lives in Swift (DataIO/TIFF.swift).
#ifndef UNET_CTIFF_SHIM_H
#define UNET_CTIFF_SHIM_H
#include <stdint.h>
#include <tiffio.h>

static inline int ctiff_get_u16(TIFF *tif, uint32_t tag, uint16_t *value) {
    return TIFFGetField(tif, tag, value);
}
static inline int ctiff_get_u32(TIFF *tif, uint32_t tag, uint32_t *value) {
    return TIFFGetField(tif, tag, value);
}
static inline int ctiff_get_defaulted_u16(TIFF *tif, uint32_t tag, uint16_t *value) {
    return TIFFGetFieldDefaulted(tif, tag, value);
}
static inline int ctiff_set_u16(TIFF *tif, uint32_t tag, uint16_t value) {
    return TIFFSetField(tif, tag, (int)value);
}
static inline int ctiff_set_u32(TIFF *tif, uint32_t tag, uint32_t value) {
    return TIFFSetField(tif, tag, value);
}
#endif
