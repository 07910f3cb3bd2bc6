"""Why a verdict: Grad-CAM heatmaps of the pixels, and the evidence a file's metadata carries."""
