"""Reading data: sources (folder, zip), safe decoding, cached arrays, leakage-free splits."""
