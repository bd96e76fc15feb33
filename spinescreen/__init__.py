"""SpineScreen: opportunistic vertebral compression fracture screening beside a PACS.

NOT FOR CLINICAL USE: the shipped models are trained on synthetic phantoms and must be
validated on local data before any clinical use.

This package holds what every part of the product shares: the exception tree
(:mod:`spinescreen.errors`), the configuration flow (:mod:`spinescreen.config`),
logging (:mod:`spinescreen.logs`) and the ``spinescreen`` command line.
"""

from spinescreen.errors import (
    ConfigError,
    DeliveryError,
    GeometryError,
    InputRejected,
    ModelError,
    PeerMissing,
    SpineScreenError,
    StoreError,
)

__version__ = "0.1.0"

CLINICAL_DISCLAIMER = (
    "NOT FOR CLINICAL USE: models trained on synthetic phantoms, not validated on patients."
)

__all__ = [
    "CLINICAL_DISCLAIMER",
    "ConfigError",
    "DeliveryError",
    "GeometryError",
    "InputRejected",
    "ModelError",
    "PeerMissing",
    "SpineScreenError",
    "StoreError",
    "__version__",
]
