// loss kernels (being written).
