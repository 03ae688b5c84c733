from .kmeans import KMeans, MiniBatchKMeans, StandardScaler  # noqa: F401
