//! GPU-vs-reference tests for the step kernels (being written).
