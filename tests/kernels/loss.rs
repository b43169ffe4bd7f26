//! GPU-vs-reference tests for the loss kernels (being written).
