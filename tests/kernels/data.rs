//! GPU-vs-reference tests for the data kernels (being written).
