"""Model runners: one BentoML service per model family (OCR, CLIP, faces).

A runner exposes ``batchable=True`` APIs that take and return lists or arrays of preprocessed
inputs, so BentoML's adaptive batcher can merge concurrent requests into one forward pass. It
knows nothing of HTTP or of Immich's contract; ``adapters`` does that.
"""
