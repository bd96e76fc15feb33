"""The one exception tree of SpineScreen.

Every error the product raises on purpose derives from :class:`SpineScreenError`.
Library errors are wrapped at the boundary (``raise InputRejected(...) from exc``) so a
caller can catch the family it cares about. Messages say what was wrong, with the value,
and what to do about it.
"""


class SpineScreenError(Exception):
    """Base of every error SpineScreen raises deliberately."""

    exit_code = 1


class ConfigError(SpineScreenError):
    """A configuration key is unknown or its value is invalid."""

    exit_code = 2


class InputRejected(SpineScreenError):
    """Input data that cannot be trusted (not HU, missing UIDs, too few slices...).

    The message is the recorded rejection reason, shown to users and in ``status``.
    """


class GeometryError(SpineScreenError):
    """Geometry is inconsistent: orientation, spacing, affine or coordinate systems."""


class ModelError(SpineScreenError):
    """A model cannot be loaded or run: missing weights, checksum mismatch, bad backend."""


class StoreError(SpineScreenError):
    """The spool, index or job store cannot do what was asked."""


class DeliveryError(SpineScreenError):
    """A result could not be delivered to a destination (PACS or folder)."""


class PeerMissing(SpineScreenError):
    """An external program the operation needs (dcmtk, Orthanc, dciodvfy) is not installed."""
