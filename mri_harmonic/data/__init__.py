"""Data in: the phantom data set, BraTS layout discovery, preprocessing into a slice store, and Datasets."""
