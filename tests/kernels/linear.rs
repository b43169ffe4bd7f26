//! GPU-vs-reference tests for the linear kernels (being written).
