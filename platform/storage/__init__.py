"""Object storage: one interface, a local-folder store and a MinIO/S3 store; content-addressed keys."""
