//! GPU-vs-reference tests for the pool kernels (being written).
