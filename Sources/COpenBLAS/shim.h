// OpenBLAS's CBLAS interface imports into Swift as it is; no getters needed.
#ifndef UNET_COPENBLAS_SHIM_H
#define UNET_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
