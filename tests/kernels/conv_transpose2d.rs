//! GPU-vs-reference tests for the conv_transpose2d kernels (being written).
