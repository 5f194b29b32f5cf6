"""One exception tree for facematch.

FacematchError
├── UsageError          the caller asked for something that cannot work
├── NoKnownFacesError   the known folder yielded no face at all
├── ModelError          a model file is missing, truncated or foreign
├── ClusterError        the Dask cluster cannot be reached or a worker does not match
├── LibraryError        a face library file is missing, corrupt, foreign or too new
├── OutputError         an output file cannot be written (a full disk, no permission)
├── ImageError          one image could not be read (reported per image, never fatal)
└── MetadataError       a photo's XMP (sidecar or embedded) cannot be read or written (per photo)
"""

from __future__ import annotations


class FacematchError(Exception):
    """Base class of every error facematch raises on purpose."""


class UsageError(FacematchError):
    """The arguments or inputs cannot work (missing folder, nothing to do)."""


class NoKnownFacesError(FacematchError):
    """No face was found in any photo of the known folder."""


class ModelError(FacematchError):
    """A model file is missing, truncated, or not the model we expect."""


class ClusterError(FacematchError):
    """The Dask scheduler cannot be reached, has no workers, or a worker runs other versions."""


class LibraryError(FacematchError):
    """A face library cannot be used: missing, corrupt, not ours, or made by a newer facematch."""


class OutputError(FacematchError):
    """An output file (a copy, a crop, a page, an export) could not be written: the run stops."""


class ImageError(FacematchError):
    """One image could not be read or is unusable; its message says why in one line."""


class MetadataError(FacematchError):
    """A photo's XMP metadata (a sidecar, or the packet inside the file) cannot be read or
    written; its message says why in one line, and it is reported per photo, never fatal."""
