"""Type detection and one splitter per modality: objects in, Segments out. No engine is chosen here."""
