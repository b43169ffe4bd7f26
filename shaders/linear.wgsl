// linear kernels (being written).
