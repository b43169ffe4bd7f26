// adam kernels (being written).
