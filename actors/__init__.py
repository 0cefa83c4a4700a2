"""Model engines (text layer, OCR, ...) and their Ray actor wrappers."""
