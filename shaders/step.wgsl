// step kernels (being written).
