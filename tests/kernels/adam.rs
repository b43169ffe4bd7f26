//! GPU-vs-reference tests for the adam kernels (being written).
