// activation kernels (being written).
