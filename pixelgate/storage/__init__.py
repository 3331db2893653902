"""Where result bytes live: local disk now, S3-compatible object storage in a cluster."""

from pixelgate.storage.blobs import BlobNotFound, BlobStore, LocalBlobStore, blob_key

__all__ = ["BlobNotFound", "BlobStore", "LocalBlobStore", "blob_key"]
