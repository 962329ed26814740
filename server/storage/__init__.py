"""Where images and encoded streams are kept: the image store, the stream cache and the in-memory caches."""
