// data kernels (being written).
