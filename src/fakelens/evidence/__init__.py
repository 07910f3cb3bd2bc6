"""What a file says about itself: EXIF, XMP, PNG text and C2PA findings, and what they declare.

No model is involved, so scanning, serving and explaining all read it from here.
"""
