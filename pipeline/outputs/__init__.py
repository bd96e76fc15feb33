"""DICOM results: TID 1500 SR, SEG and the sagittal key image, marked as AI output."""
