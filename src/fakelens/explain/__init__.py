"""Why a verdict: heatmaps of the pixels the model looked at (Grad-CAM, occlusion)."""
