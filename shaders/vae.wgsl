// vae kernels (being written).
