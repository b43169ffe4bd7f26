//! GPU-vs-reference tests for the conv2d kernels (being written).
