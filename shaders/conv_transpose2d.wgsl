// conv_transpose2d kernels (being written).
