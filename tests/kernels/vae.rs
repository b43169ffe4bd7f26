//! GPU-vs-reference tests for the vae kernels (being written).
