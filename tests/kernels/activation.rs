//! GPU-vs-reference tests for the activation kernels (being written).
